"""GEE LoRA training throughput on a 7B-class model: step time, tokens/s, peak memory, MFU.

The GPU machine cannot download weights, so the model is a *randomly initialised* transformers model
with a real 7B-class shape (Llama-3-8B or Qwen2.5-7B; the dimensions below are those models' published
configs). Throughput depends on shapes, not on weight values. Each step is the product's own GEE step
(``debias.methods.gee``): every micro-batch's per-group entropy sums keep their graph, the step-level
group means give the exact surrogate coefficients, one backward; then AdamW. Half the sequences are
group 0, half group 1; the second half of every sequence is scored (teacher-forced continuations).

GPU settings (issue 16): bf16 weights, SDPA attention, TF32 matmuls, fused AdamW, optional gradient
checkpointing, no host sync inside the micro-batch loop (the only syncs are the step's group means).

MFU uses model FLOPs per trained token = 4·N + 12·L·s·d: N the matmul parameters (every linear layer and
the LM head, embeddings excluded), forward 2·N plus the input-gradient half of the backward 2·N (frozen
weights get no weight gradient, so PaLM's 6·N becomes 4·N; LoRA's own FLOPs are < 1 % and not counted),
and attention's score/value matmuls forward and backward (12·L·s·d, no causal discount). Recomputation
under gradient checkpointing is not counted (it is overhead, not model FLOPs). The peak is the device's
dense bf16 spec when known (H100/H200 989 TFLOP/s, A100 312) and, always, the dense GEMM throughput
measured in the same run (a large matmul in the training dtype), so the figure is honest on any device.

Usage (GPU): python benchmarks/gpu_train.py --shape llama3-8b --batch 64 --seq 512 --micro-batch 8
       (CPU check): python benchmarks/gpu_train.py --shape tiny --batch 4 --seq 32 --micro-batch 2 --steps 2
Writes benchmarks/results/gpu_train-<shape>-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"

# Published shapes (config.json of meta-llama/Meta-Llama-3-8B and Qwen/Qwen2.5-7B); "tiny" for CPU tests.
SHAPES: dict[str, dict] = {
    "llama3-8b": {
        "arch": "llama",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
    },
    "qwen2.5-7b": {
        "arch": "qwen2",
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "vocab_size": 152064,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": False,
    },
    "tiny": {
        "arch": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 512,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
    },
}
SPEC_PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12}
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def build_model(
    shape: str, dtype: torch.dtype, device: torch.device, grad_ckpt: bool, lora_r: int, min_vocab: int = 0
):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    dims = dict(SHAPES[shape])
    dims["vocab_size"] = max(dims["vocab_size"], min_vocab)  # the tiny shape must hold a real tokenizer's ids
    config_class = {"llama": LlamaConfig, "qwen2": Qwen2Config}[dims.pop("arch")]
    config = config_class(**dims, max_position_embeddings=8192, attn_implementation="sdpa")
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
    if grad_ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    if lora_r == 0:  # evaluation: the bare model
        return model, config
    lora = LoraConfig(r=lora_r, lora_alpha=2 * lora_r, target_modules=list(LORA_TARGETS), lora_dropout=0.0)
    model = get_peft_model(model, lora)
    model.config.use_cache = False
    return model, config


def matmul_params(config) -> int:
    """Parameters that take part in a matmul per token: every decoder linear layer and the LM head."""
    d, f, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    head_dim = d // config.num_attention_heads
    kv = config.num_key_value_heads * head_dim
    attention = d * d + 2 * d * kv + d * d  # q, k, v, o
    mlp = 3 * d * f  # gate, up, down
    return layers * (attention + mlp) + d * config.vocab_size


def flops_per_token(config, seq: int) -> float:
    """4·N + 12·L·s·d (see the module docstring)."""
    return 4 * matmul_params(config) + 12 * config.num_hidden_layers * seq * config.hidden_size


def measured_gemm_flops(device: torch.device, dtype: torch.dtype, n: int, repeats: int = 5) -> float:
    """Dense GEMM throughput of this device in this dtype (FLOP/s), best of ``repeats``."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model and its widest vector ISA (the machines differ: AVX2 / AVX-512)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.machine()):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = [name for name in ("avx512f", "avx512_bf16", "amx_bf16", "avx2") if name in flags]
    return f"{model} ({', '.join(isa) or 'no AVX2'})"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_batch(batch: int, seq: int, vocab: int, device: torch.device):
    from debias.methods.gee.recipe import Batch

    g = torch.Generator().manual_seed(batch * 1000 + seq)
    ids = torch.randint(0, vocab, (batch, seq), generator=g)
    score = torch.zeros(batch, seq, dtype=torch.long)
    score[:, seq // 2 :] = 1  # the continuation half is scored
    groups = torch.arange(batch) % 2
    return Batch(ids, torch.ones_like(ids), score, groups, torch.ones(batch)).to(device)


def gee_step(model, batch, micro: int, optimizer, cfg) -> dict:
    """One GEE pure-gap step over ``batch`` in micro-batches of ``micro``: the recipe's exact gradient."""
    from debias.methods.gee import losses
    from debias.methods.gee.recipe import Batch, group_sums

    sums_with_graph, counts = [], None
    n = batch.input_ids.shape[0]
    for i in range(0, n, micro):
        part = Batch(
            *(
                t[i : i + micro]
                for t in (
                    batch.input_ids,
                    batch.attention_mask,
                    batch.score_mask,
                    batch.group_ids,
                    batch.weights,
                )
            )
        )
        s, c = group_sums(model, part, 2, cfg)
        sums_with_graph.append(s.float())
        counts = c.float() if counts is None else counts + c.float()
    local = torch.stack(sums_with_graph).sum(0)
    sums = local.detach()
    coefficients = losses.surrogate_coefficients(sums, counts, losses.gap_loss, ["a", "b"])
    losses.surrogate_loss(local, coefficients).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    means = losses.group_means(sums, counts, ["a", "b"])
    return {"gap": float(losses.max_gap(means)), "tokens": int(batch.attention_mask.sum())}


def main(argv: list[str] | None = None) -> dict:
    from debias.atomic import write_json_atomic
    from debias.methods import gee

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama3-8b")
    parser.add_argument("--batch", type=int, default=64, help="sequences per step (effective batch)")
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after --warmup)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--grad-ckpt", action="store_true", help="gradient checkpointing (less memory)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default=None, help="default: bf16 on GPU")
    parser.add_argument("--gemm-n", type=int, default=None, help="matmul size for the GEMM peak")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[
        args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    ]
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats()
    model, config = build_model(args.shape, dtype, device, args.grad_ckpt, args.lora_r)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, fused=device.type == "cuda")
    cfg = gee.GeeConfig()
    batch = make_batch(args.batch, args.seq, config.vocab_size, device)

    for _ in range(args.warmup):
        gee_step(model, batch, args.micro_batch, optimizer, cfg)
    _sync(device)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        record = gee_step(model, batch, args.micro_batch, optimizer, cfg)
        _sync(device)
        times.append(time.perf_counter() - start)

    tokens = args.batch * args.seq
    step_s = sorted(times)[len(times) // 2]
    achieved = flops_per_token(config, args.seq) * tokens / step_s
    gemm = measured_gemm_flops(device, dtype, args.gemm_n or (8192 if device.type == "cuda" else 1024))
    name = device_name(device)
    spec = (
        next((v for k, v in SPEC_PEAK_BF16.items() if k in name), None) if dtype == torch.bfloat16 else None
    )
    result = {
        "what": "GEE LoRA steps (teacher-forced, exact surrogate) on a randomly initialised model",
        "shape": args.shape,
        "matmul_params": matmul_params(config),
        "device": name,
        "dtype": str(dtype).removeprefix("torch."),
        "batch": args.batch,
        "seq": args.seq,
        "micro_batch": args.micro_batch,
        "grad_ckpt": args.grad_ckpt,
        "lora_r": args.lora_r,
        "steps_timed": args.steps,
        "step_s_median": step_s,
        "step_s": times,
        "steps_total_s": sum(times),
        "tokens_per_s": tokens / step_s,
        "peak_memory_gb": torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None,
        "flops_formula": "4*N + 12*L*s*d per token (N: matmul parameters incl. LM head)",
        "achieved_tflops": achieved / 1e12,
        "measured_gemm_tflops": gemm / 1e12,
        "mfu_vs_measured_gemm": achieved / gemm,
        "mfu_vs_spec": achieved / spec if spec else None,
        "last_gap": record["gap"],
    }
    out = Path(args.out) if args.out else RESULTS / f"gpu_train-{args.shape}-{device.type}.json"
    write_json_atomic(out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "step_s"}, indent=2))
    return result


if __name__ == "__main__":
    main()
