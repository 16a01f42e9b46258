"""The GPU benchmarks' own arithmetic and a CPU run of each on a tiny shape (the GPU figures need a GPU)."""

from __future__ import annotations

import json

import benchmark_scripts
import pytest
import torch

_load = benchmark_scripts.load


@pytest.mark.parametrize("shape, published", [("llama3-8b", 8_030_261_248), ("qwen2.5-7b", 7_615_616_512)])
def test_the_7b_shapes_have_the_published_parameter_counts(shape, published):
    """Built on the meta device (no memory): the shapes are the real models', and the FLOP formula's N
    is every parameter except the embeddings and the norms."""
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    gpu_train = _load("gpu_train")
    dims = dict(gpu_train.SHAPES[shape])
    config = {"llama": LlamaConfig, "qwen2": Qwen2Config}[dims.pop("arch")](**dims)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    norms = sum(p.numel() for n, p in model.named_parameters() if "norm" in n)
    biases = sum(p.numel() for n, p in model.named_parameters() if n.endswith(".bias"))
    embeddings = config.vocab_size * config.hidden_size
    assert total == published
    assert gpu_train.matmul_params(config) == total - embeddings - norms - biases


def test_gpu_train_runs_on_a_tiny_shape(tmp_path):
    gpu_train = _load("gpu_train")
    out = tmp_path / "train.json"
    argv = ["--shape", "tiny", "--batch", "4", "--seq", "16", "--micro-batch", "2", "--steps", "2"]
    result = gpu_train.main([*argv, "--device", "cpu", "--gemm-n", "256", "--out", str(out)])
    assert json.loads(out.read_text())["tokens_per_s"] == result["tokens_per_s"] > 0
    assert result["steps_timed"] == 2 and result["mfu_vs_measured_gemm"] > 0
    assert result["device"].endswith(")"), result["device"]  # the CPU model and its vector ISA are named


def test_gpu_eval_runs_on_a_tiny_shape(tmp_path, smollm2, data_dir):
    """The suite and its raw-forward floor over the same tokens, on CPU with 2 documents per task."""
    gpu_eval = _load("gpu_eval")
    out = tmp_path / "eval.json"
    argv = ["--shape", "tiny", "--limit", "2", "--batch-size", "4", "--device", "cpu", "--out", str(out)]
    result = gpu_eval.main(argv)
    assert json.loads(out.read_text())["suite_over_floor"] == result["suite_over_floor"] > 0
    # every task of gee_heldout contributes sequences, the perplexity windows included
    assert result["sequences"] > 2 * 5 and result["tokens"] > result["sequences"]
