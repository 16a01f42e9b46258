"""The projection baseline: the subspace estimate by hand, the weight edit removes the directions exactly."""

from __future__ import annotations

import json

import pytest
import torch

from debias import pipeline, projection
from debias.data import bias_pairs


def test_bias_subspace_by_hand():
    directions, explained = projection.bias_subspace(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), ["a", "b"], 2)
    torch.testing.assert_close(directions.abs(), torch.eye(2))
    assert explained == pytest.approx([0.8, 0.2])  # 4 / 5 and 1 / 5 of the squared singular values


def test_every_bias_type_weighs_the_same():
    # four "a" rows along x, one "b" row along y: scaled by 1/sqrt(4) and 1, both directions carry 1
    diffs = torch.tensor([[1.0, 0.0]] * 4 + [[0.0, 1.0]])
    _, explained = projection.bias_subspace(diffs, ["a"] * 4 + ["b"], 2)
    assert explained == pytest.approx([0.5, 0.5])


def _tiny(tied: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=40,
        hidden_size=16,
        intermediate_size=24,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
        tie_word_embeddings=tied,
    )
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("tied", [True, False])
def test_projected_model_writes_and_reads_nothing_along_the_directions(tmp_path, tied):
    model = _tiny(tied)
    v = projection.orthonormal(torch.randn(2, 16))
    folder = projection.save(tmp_path / "p", v, {"base_weights_sha256": {"m": "x"}})
    assert pipeline.adapter_kind(folder) == "projection"
    assert {p.name for p in pipeline.adapter_files(folder)} == {projection.CONFIG, projection.WEIGHTS}
    ids = torch.tensor([[1, 7, 3, 9, 4]])
    before = model(ids).logits
    projection.apply(model, folder, {"m": "x"})
    out = model(ids, output_hidden_states=True)
    for residual in out.hidden_states[:-1]:  # every residual stream before the final norm
        assert float((residual @ v.T).abs().max()) < 1e-5
    head = model.get_output_embeddings().weight
    assert float((head @ v.T).abs().max()) < 1e-5  # the head reads nothing along v either
    assert not torch.allclose(out.logits, before)
    with pytest.raises(ValueError, match="estimated on base weights"):
        projection.apply(_tiny(tied), folder, {"m": "other"})


def test_rank_one_leaves_the_orthogonal_complement_alone(tmp_path):
    model = _tiny(True)
    v = projection.orthonormal(torch.randn(1, 16))
    embed = model.get_input_embeddings().weight.detach().clone()
    projection.apply(model, projection.save(tmp_path / "p", v, {}))
    after = model.get_input_embeddings().weight.detach()
    torch.testing.assert_close(after, embed - (embed @ v.T) @ v)


def test_not_a_projection_is_one_line(tmp_path):
    (tmp_path / projection.CONFIG).write_text("{not json")
    assert not projection.is_projection(tmp_path)
    with pytest.raises(ValueError, match="not a projection folder"):
        projection.apply(_tiny(True), tmp_path)


def test_prompt_pairs_are_counterfactual_and_cover_every_bias_type():
    pairs = bias_pairs.prompt_pairs("train")
    assert {kind for _, _, kind in pairs} == set(bias_pairs.BIAS_TYPES)
    assert ("People often describe the woman as", "People often describe the man as", "gender") in pairs
    assert all(a != b for a, b, _ in pairs)
    held = bias_pairs.prompt_pairs("heldout", ("gender",))
    assert held and not set(held) & set(pairs)


def test_recipe_on_the_default_model(tmp_path, smollm2, data_dir):
    from debias.methods.project.recipe import ProjectConfig
    from debias.train_and_eval import train_adapter

    out = tmp_path / "project"
    cfg = ProjectConfig(bias_types=("gender",), ranks=(1, 2), select_task="")
    train_adapter("project", cfg, out)
    config = json.loads((out / "config.json").read_text())
    summary = config["training"]
    assert config["method"] == "project" and summary["layer"] == 20 and summary["exact"]
    assert summary["pairs"] == 50 and len(summary["explained_variance"]) == 2  # 5 subjects x 10 frames
    assert summary["chosen_rank"] == 2 and summary["rank"] == 2  # no selection task: the last candidate
    saved = json.loads((out / "adapter" / projection.CONFIG).read_text())
    assert saved["rank"] == 2 and saved["format"] == projection.FORMAT
