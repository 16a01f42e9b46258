"""Equalisation and the retention anchor: hand-computed losses, KL zero at init, finite differences, runs."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file

from debias import anchor, training
from debias.data.sampler import SeededCycle
from debias.methods.equalize import losses
from debias.methods.equalize.recipe import EqualizeConfig, delta_stats

# ------------------------------------------------------------------------------------------ pure math


def test_symmetric_kl_loss_by_hand():
    # Δ = 2: σ(2) = 0.8807971; (0.8807971 − 0.5)·2 = 0.7615942; the same for Δ = −2; 0 at the tie
    out = losses.equalize_loss(torch.tensor([2.0, -2.0, 0.0]), "sym_kl")
    torch.testing.assert_close(out, torch.tensor([0.7615942, 0.7615942, 0.0]))


def test_symmetric_kl_loss_is_the_symmetric_kl_to_the_even_split():
    delta = 1.3
    q = 1 / (1 + math.exp(-delta))
    kl_qu = q * math.log(q / 0.5) + (1 - q) * math.log((1 - q) / 0.5)
    kl_uq = 0.5 * math.log(0.5 / q) + 0.5 * math.log(0.5 / (1 - q))
    assert float(losses.equalize_loss(torch.tensor(delta))) == pytest.approx(kl_qu + kl_uq, rel=1e-6)


def test_squared_loss_and_unknown_kind():
    torch.testing.assert_close(
        losses.equalize_loss(torch.tensor([3.0, -0.5]), "squared"), torch.tensor([9.0, 0.25])
    )
    with pytest.raises(ValueError, match="unknown equalisation loss"):
        losses.equalize_loss(torch.tensor(1.0), "l1")  # type: ignore[arg-type]


def test_mass_loss_by_hand():
    # pair (0.2, 0.1) against base (0.4, 0.2): log 0.3 − log 0.6 = ln ½, squared 0.480453; a pair whose
    # probability only moved between its two continuations (0.5, 0.1) vs (0.1, 0.5) costs nothing
    ln = math.log
    out = losses.mass_loss(
        torch.tensor([ln(0.2), ln(0.5)]),
        torch.tensor([ln(0.1), ln(0.1)]),
        torch.tensor([ln(0.4), ln(0.1)]),
        torch.tensor([ln(0.2), ln(0.5)]),
    )
    torch.testing.assert_close(out, torch.tensor([ln(0.5) ** 2, 0.0]), atol=1e-6, rtol=0)


def test_counterfactual_jsd_by_hand():
    # P = softmax([0, ln 3]) = (¼, ¾), Q = (¾, ¼), M = (½, ½): KL(P‖M) = ¼ ln ½ + ¾ ln 3/2 = 0.1308121,
    # the same for Q, so JSD = 0.1308121; equal rows give 0; near-disjoint rows approach ln 2
    ln3 = math.log(3.0)
    a = torch.tensor([[0.0, ln3], [1.0, 2.0], [0.0, 40.0]])
    b = torch.tensor([[ln3, 0.0], [1.0, 2.0], [40.0, 0.0]])
    out = losses.counterfactual_jsd(a, b)
    expected = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    torch.testing.assert_close(out, torch.tensor([expected, 0.0, math.log(2.0)]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out, losses.counterfactual_jsd(b, a))  # symmetric


def test_mixture_kl_by_hand():
    # base rows (¼, ¾) and (¾, ¼) average to M = (½, ½); tuned a = (¼, ¾): KL(M‖a) = ½ ln 2 + ½ ln ⅔
    # = ½ ln 4/3 = 0.1438410; tuned b = (½, ½): 0. Tuned = base mixture on both sides: 0.
    ln3 = math.log(3.0)
    base_a, base_b = torch.tensor([[0.0, ln3]]), torch.tensor([[ln3, 0.0]])
    out = losses.mixture_kl(base_a, base_b, torch.tensor([[0.0, ln3]]), torch.tensor([[0.0, 0.0]]))
    torch.testing.assert_close(out, torch.tensor([0.5 * math.log(4 / 3)]), atol=1e-6, rtol=0)
    zero = losses.mixture_kl(base_a, base_b, torch.tensor([[5.0, 5.0]]), torch.tensor([[0.0, 0.0]]))
    torch.testing.assert_close(zero, torch.tensor([0.0]), atol=1e-7, rtol=0)


def test_span_logprobs_by_hand():
    # vocab 2; logits at positions 0, 1 predict tokens 1, 2: log_softmax([0, ln 3]) = (ln ¼, ln ¾)
    logits = torch.tensor([[[0.0, math.log(3.0)], [math.log(3.0), 0.0], [0.0, 0.0]]])
    ids = torch.tensor([[0, 1, 0]])
    spans = [(1, 3)]  # tokens 1 and 2 are scored: p(1) = ¾ then p(0) = ¾
    total = training.span_logprobs(logits, ids, spans)
    torch.testing.assert_close(total, torch.tensor([2 * math.log(0.75)]))
    mean = training.span_logprobs(logits, ids, spans, length_normalize=True)
    torch.testing.assert_close(mean, torch.tensor([math.log(0.75)]))
    # a span from token 0 scores from token 1 on: token 0 has nothing to be predicted from
    torch.testing.assert_close(training.span_logprobs(logits, ids, [(0, 3)]), total)


def test_kl_base_tuned_by_hand_and_masked():
    # base (½, ½), tuned (¾, ¼): KL = ½ ln(½/¾) + ½ ln(½/¼) = 0.1438410; the masked position is ignored
    base = torch.tensor([[[0.0, 0.0], [5.0, -5.0]]])
    tuned = torch.tensor([[[math.log(3.0), 0.0], [-5.0, 5.0]]])
    kl = anchor.kl_base_tuned(base, tuned, torch.tensor([[1, 0]]))
    assert float(kl) == pytest.approx(0.1438410, abs=1e-6)
    assert float(anchor.kl_base_tuned(base, base, torch.tensor([[1, 1]]))) == pytest.approx(0.0, abs=1e-7)


def test_delta_stats_by_hand():
    stats = delta_stats([1.0, -3.0, 2.0], ["gender", "race", "gender"])
    assert stats["mean_delta"] == pytest.approx(0.0)
    assert stats["mean_abs_delta"] == pytest.approx(2.0)
    assert stats["stereotype_preferred"] == pytest.approx(2 / 3)
    assert stats["mean_abs_delta_by_bias_type"] == {"gender": 1.5, "race": 3.0}


def test_seeded_cycle_resumes_the_same_order():
    a = SeededCycle(5, seed=3)
    first = a.take(7)
    assert sorted(first[:5]) == [0, 1, 2, 3, 4]  # one whole pass before any repeat
    b = SeededCycle(5, seed=3)
    b.load_state_dict(a.state_dict())
    assert a.take(6) == b.take(6)


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="anchor_weight"):
        EqualizeConfig(anchor_weight=-1)
    with pytest.raises(ValueError, match="loss must be"):
        EqualizeConfig(loss="l1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps must be"):
        EqualizeConfig(steps=0)
    with pytest.raises(ValueError, match="cf_weight must be >= 0"):
        EqualizeConfig(cf_weight=-0.1)
    with pytest.raises(ValueError, match="nothing to debias with"):
        EqualizeConfig(pair_weight=0, cf_weight=0)
    with pytest.raises(ValueError, match="cf_loss must be"):
        EqualizeConfig(cf_loss="kl")


# ------------------------------------------------------------------------------- the anchor on a tiny model


def _tiny_lora(dtype=torch.float64):
    from transformers import LlamaConfig, LlamaForCausalLM

    from debias import training

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=24,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    config._attn_implementation = "sdpa"  # eager attention takes its softmax in float32
    model = LlamaForCausalLM(config)
    for module in model.modules():  # Llama's RMSNorm computes in float32 whatever the input dtype
        if type(module).__name__ == "LlamaRMSNorm":
            module.forward = _float64_rms_norm(module)
    lora = training.add_lora(model, 4, 8, 0.0, ("gate_proj", "up_proj", "down_proj"), layers=[1])
    return lora.to(dtype)  # adapters too: finite differences need float64 end to end


def _float64_rms_norm(norm):
    def forward(x):
        return norm.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)

    return forward


def _batch():
    ids = torch.tensor([[1, 5, 9, 3, 7], [2, 4, 6, 0, 0]])
    attn = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    return anchor.AnchorBatch(ids, attn)


def test_anchor_is_zero_at_initialisation_and_only_late_layers_adapt():
    model = _tiny_lora()
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all(".layers.1." in n for n in names)  # layers=[1]: the last layer only
    kl, tokens = anchor.anchor_loss(model, _batch(), "cpu")
    assert tokens == 4 + 2  # every real position but each row's last
    assert float(kl.detach()) == 0.0
    kl.backward()  # ∂KL/∂logits = p_tuned − p_base = 0 up to float64 rounding of Σ p_base = 1
    assert all(float(p.grad.abs().max()) < 1e-12 for p in model.parameters() if p.requires_grad)


def test_anchor_gradient_matches_finite_differences():
    model = _tiny_lora()
    with torch.no_grad():  # move off the initial point (B = 0), where the KL and its gradient vanish
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.3)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    kl, _ = anchor.anchor_loss(model, _batch(), "cpu")
    assert float(kl) > 0
    kl.backward()
    eps = 1e-6
    for name, p in params[:4]:
        for index in [(0, 0), (1, 2)]:
            with torch.no_grad():
                original = p[index].item()
                p[index] = original + eps
                up = float(anchor.anchor_loss(model, _batch(), "cpu")[0])
                p[index] = original - eps
                down = float(anchor.anchor_loss(model, _batch(), "cpu")[0])
                p[index] = original
            numeric = (up - down) / (2 * eps)
            assert p.grad[index].item() == pytest.approx(numeric, rel=1e-5, abs=1e-9), (name, index)


def test_builtin_anchor_text_is_gsm8k_train_and_mmlu_dev(data_dir):
    texts = anchor.load_texts(anchor.BUILTIN)
    assert len(texts) == 7473 + 285  # GSM8K train solutions + MMLU dev questions (57 subjects × 5)
    assert not any("<<" in t for t in texts)  # calculator annotations removed
    gsm8k_test = (data_dir / "gsm8k" / "test.jsonl").read_text()
    test_questions = {json.loads(line)["question"] for line in gsm8k_test.splitlines() if line.strip()}
    assert not any(t.split("\n", 1)[0] in test_questions for t in texts)  # never a scored item


def test_annotated_anchor_text_is_the_guard_form_of_the_same_items(data_dir):
    """``gsm8k_mmlu_annotated`` reads the texts in ``gee_gsm8k_ppl``'s own form (calculator annotations
    kept), row for row the built-in set, so its held-out side is the guard's and its training side never
    holds a text the guard scores."""
    from harness_tasks.retention import utils

    plain = anchor.load_texts(anchor.BUILTIN)
    annotated = anchor.load_texts(anchor.BUILTIN_ANNOTATED)
    assert len(annotated) == len(plain) and sum("<<" in t for t in annotated) > 7000
    assert [t.split("\n", 1)[0] for t in annotated] == [t.split("\n", 1)[0] for t in plain]
    train, heldout = anchor.split_texts(annotated, anchor.BUILTIN_ANNOTATED)
    assert heldout == utils.neutral_split(utils.neutral_texts(keep_annotations=True))[1]
    assert not set(train) & set(heldout)
    assert anchor.not_held_out(0.3, anchor.BUILTIN_ANNOTATED) == anchor.not_held_out(0.3, anchor.BUILTIN)
    assert anchor.not_held_out(0.3, anchor.BUILTIN_ANNOTATED) and not anchor.not_held_out(0.0, anchor.BUILTIN)


def test_anchor_crop_head_keeps_the_start_chunks_keep_every_token():
    ids = list(range(10))
    assert anchor.cut(ids, 4, "head") == [[0, 1, 2, 3]]
    assert anchor.cut(ids, 4, "chunks") == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert anchor.cut(ids[:3], 4, "chunks") == [[0, 1, 2]]
    with pytest.raises(ValueError, match="anchor crop must be one of head, chunks"):
        anchor.check_crop("tail")
    with pytest.raises(ValueError, match="anchor crop"):
        EqualizeConfig(anchor_crop="tail")


def test_anchor_chunks_are_rows_and_one_token_pieces_are_dropped():
    class Words:  # one token per character: ids are positions in the text
        pad_token_id = 0

        def encode(self, text, add_special_tokens=False):
            return [ord(c) for c in text]

    texts = ["abcdefg", "xy"]
    head = anchor.RetentionAnchor(Words(), texts, batch_size=1, max_tokens=3, seed=0)
    assert sorted(map(tuple, head.rows)) == [(97, 98, 99), (120, 121)]
    chunks = anchor.RetentionAnchor(Words(), texts, batch_size=1, max_tokens=3, seed=0, crop="chunks")
    # "abcdefg" -> abc, def, g (a 1-token piece predicts nothing: dropped); "xy" -> xy
    assert sorted(map(tuple, chunks.rows)) == [(97, 98, 99), (100, 101, 102), (120, 121)]


def test_anchor_text_file_errors_are_one_line(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(ValueError, match=r"empty.txt: no anchor text"):
        anchor.load_texts(str(empty))
    binary = tmp_path / "bad.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ValueError, match=r"bad.txt: cannot read the anchor text"):
        anchor.load_texts(str(binary))


# ------------------------------------------------------------------------------------------ real runs

TINY = dict(
    steps=4,
    check_every=2,
    batch_size=2,
    max_pairs=8,
    heldout_max_pairs=8,
    anchor_batch_size=2,
    anchor_max_tokens=32,
    anchor_probe_batches=1,
    select_task="",
    lr=1e-3,
)


def test_run_on_the_default_model_and_exact_resume(tmp_path, smollm2, data_dir, monkeypatch):
    """A 4-step run with every term on: logs, probes, anchor KL ≥ 0, counterfactual JSD > 0; a run
    killed after step 2 and resumed ends equal (the pair, prompt-pair and anchor orders resume too)."""
    from debias import memory
    from debias.train_and_eval import train_adapter

    cfg = EqualizeConfig(**TINY, cf_weight=10.0, cf_batch_size=2)
    whole = tmp_path / "whole"
    released = []
    monkeypatch.setattr(memory, "release_freed_memory", lambda: released.append(1))
    train_adapter("equalize", cfg, whole)
    assert len(released) >= cfg.steps  # the freed heap goes back to the OS after every step
    lines = [json.loads(line) for line in (whole / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3, 4]
    assert lines[0]["anchor_kl"] == pytest.approx(0.0, abs=1e-6)  # the adapter starts as the identity
    assert all(line["anchor_kl"] >= 0 and line["equalize_loss"] >= 0 for line in lines)
    assert all(0 < line["cf_jsd"] < math.log(2) for line in lines)  # the groups differ a little
    checks = [line for line in lines if line.get("check")]
    assert [c["step"] for c in checks] == [2, 4] and "heldout_mean_abs_delta" in checks[0]
    assert 0 < checks[0]["heldout_cf_jsd"] < math.log(2)
    config = json.loads((whole / "config.json").read_text())
    summary = config["training"]
    assert config["method"] == "equalize" and summary["chosen_step"] == 4
    assert summary["probe_before"]["heldout_anchor_kl"] == pytest.approx(0.0, abs=1e-6)
    adapter_config = json.loads((whole / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["layers_to_transform"] == list(range(20, 30))  # SmolLM2-135M: 30 layers
    assert set(adapter_config["target_modules"]) == {"gate_proj", "up_proj", "down_proj"}

    cut = tmp_path / "cut"  # what a kill right after the step-2 checkpoint leaves behind
    shutil.copytree(whole, cut)
    shutil.rmtree(cut / "checkpoints" / "step-000004")
    shutil.rmtree(cut / "adapter")
    (cut / "selection.json").unlink()
    train_adapter("equalize", cfg, cut, resume=True)
    a = load_file(str(whole / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(cut / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-7, msg=name)


def test_mass_term_starts_at_zero_and_keeps_the_pairs_mass(tmp_path, smollm2, data_dir):
    """The pair-mass term is 0 for a fresh adapter (the base *is* the model) and trains without error;
    the held-out probe reports how far the pairs' total probability moved (0 before training)."""
    from debias.train_and_eval import train_adapter

    run = tmp_path / "mass"
    train_adapter("equalize", EqualizeConfig(**{**TINY, "mass_weight": 1.0}), run)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["mass_loss"] == pytest.approx(0.0, abs=1e-8)
    assert all(line["mass_loss"] >= 0 for line in lines) and lines[-1]["mass_loss"] > 0
    summary = json.loads((run / "config.json").read_text())["training"]
    assert summary["probe_before"]["mean_log_mass_shift"] == pytest.approx(0.0, abs=1e-6)
    assert summary["probe_after"]["mean_log_mass_shift"] != 0.0


def test_cli_flags_and_bad_bias_type(tmp_path, capsys):
    import cli

    out = tmp_path / "eq"
    code = cli.main(
        ["train", "--method", "equalize", "--out", str(out), "--bias-types", "gender", "astrology"]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "astrology" in err[0]
    assert not out.exists()
