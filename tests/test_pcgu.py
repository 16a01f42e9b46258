"""PCGU: partition per layer type, vectorized importance vs a slow loop, masked update, sparse adapter."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from debias import pipeline, selection, sparse_adapter
from debias.data import trait_pairs
from debias.methods import pcgu
from debias.methods.pcgu import partition
from debias.methods.recipe import SelectionSettings
from debias.train_and_eval import train_adapter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from pcgu_reference import naive_select_units  # noqa: E402  (the per-unit loop, kept with the benchmark)


def tiny_llama(vocab: int = 64, tied: bool = True) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, tie_word_embeddings=tied,
    )  # fmt: skip
    return LlamaForCausalLM(config)


def tiny_gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=8, n_layer=1, n_head=2))


def _by_name(units):
    return {u.name: u for u in units}


def test_partition_axes_per_layer_type_and_tied_weights_once():
    llama = _by_name(partition.partition(tiny_llama(), "input"))
    # nn.Linear stores [out, in]: a logical row (one output feature) is a stored row
    assert llama["model.layers.0.self_attn.q_proj.weight"].axis == 0
    # the embedding is tied to the LM head: one parameter, partitioned in the Linear's orientation
    assert "lm_head.weight" not in llama and llama["model.embed_tokens.weight"].axis == 0
    assert llama["model.layers.0.input_layernorm.weight"].axis is None  # 1-D: one unit
    out = _by_name(partition.partition(tiny_llama(), "output"))
    assert out["model.layers.0.mlp.down_proj.weight"].axis == 1
    untied = _by_name(partition.partition(tiny_llama(tied=False), "input"))
    assert untied["model.embed_tokens.weight"].axis == 1  # Embedding [vocab, dim] maps vocab -> dim
    assert untied["lm_head.weight"].axis == 0

    gpt2 = _by_name(partition.partition(tiny_gpt2(), "input"))
    # GPT-2's Conv1D stores [in, out]: a logical row is a stored column
    c_attn = gpt2["transformer.h.0.attn.c_attn.weight"]
    assert c_attn.param.shape == (8, 24) and c_attn.axis == 1 and c_attn.count == 24
    assert gpt2["transformer.wte.weight"].axis == 0  # tied to lm_head (a Linear)
    assert gpt2["transformer.wpe.weight"].axis == 1  # position embedding: [positions, dim]
    assert gpt2["transformer.h.0.attn.c_attn.bias"].axis is None
    names = [u.name for u in partition.partition(tiny_gpt2())]
    assert len(names) == len(set(names))


def test_unit_cosines_match_torch_per_row_and_column():
    torch.manual_seed(1)
    ga, gd = torch.randn(5, 7), torch.randn(5, 7)
    rows = partition.unit_cosines(ga, gd, 0)
    cols = partition.unit_cosines(ga, gd, 1)
    torch.testing.assert_close(rows, torch.nn.functional.cosine_similarity(ga, gd, dim=1))
    torch.testing.assert_close(cols, torch.nn.functional.cosine_similarity(ga, gd, dim=0))
    whole = partition.unit_cosines(ga[0], gd[0], None)
    torch.testing.assert_close(whole, torch.nn.functional.cosine_similarity(ga[0], gd[0], dim=0).reshape(1))
    ga[2] = 0  # a unit without gradient has no direction: never selected
    assert partition.unit_cosines(ga, gd, 0)[2] == float("inf")


@pytest.mark.parametrize("aggregation", ["input", "output"])
@pytest.mark.parametrize("k", [0.05, 0.3, 1.0, 7])
def test_vectorized_selection_equals_the_per_unit_loop(aggregation, k):
    model = tiny_gpt2() if aggregation == "output" else tiny_llama()
    units = partition.partition(model, aggregation)
    torch.manual_seed(2)
    ga = {u.name: torch.randn_like(u.param) for u in units}
    gd = {u.name: torch.randn_like(u.param) for u in units}
    fast = partition.select_units(units, ga, gd, k)
    slow = naive_select_units(units, ga, gd, k)
    assert fast.keys() == slow.keys()
    for name in fast:
        assert fast[name].tolist() == slow[name].tolist(), name
    total = sum(len(v) for v in fast.values())
    all_units = sum(u.count for u in units)
    assert total == (round(k * all_units) if k <= 1 else k)  # k = 1.0: every unit (the ablation)


@pytest.fixture(scope="module")
def tokenizer(smollm2):
    return smollm2[1]


PAIRS = [
    pcgu.Pair("The nurse said that", " she", " he"),
    pcgu.Pair("The engineer said that", " he", " she"),
    pcgu.Pair("I asked the secretary whether", " she", " he"),
]


# neutral text for the retention anchor's tests
ANCHOR_TEXTS = [
    "Tom has 3 apples and buys 4 more, so he has 7.",
    "Which gas do plants take in? Carbon dioxide.",
]


@pytest.mark.parametrize("update", ["advantaged", "disadvantaged", "dynamic"])
def test_masked_update_touches_only_selected_units(tokenizer, update):
    model = tiny_llama(vocab=len(tokenizer))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = pcgu.PcguTrainer(pcgu.PcguConfig(k=12, lr=1e-2, update=update), model, tokenizer)
    metrics = trainer.step(PAIRS, reselect=True)
    assert metrics["selected_units"] == 12
    units = _by_name(trainer.units)
    changed_anything = False
    for name, param in model.named_parameters():
        diff = param.detach() != before[name]
        selected = trainer.selected.get(name)
        if selected is None:
            assert not diff.any(), f"{name} changed without being selected"
            continue
        mask = partition.unit_mask(units[name], selected)
        assert not (diff & ~mask).any(), f"{name} changed outside its selected units"
        changed_anything |= bool(diff.any())
    assert changed_anything


def test_advantaged_update_lowers_the_advantaged_logprob(tokenizer):
    model = tiny_llama(vocab=len(tokenizer))
    prefixes = [p.prefix for p in PAIRS]
    targets = [p.advantaged for p in PAIRS]
    with torch.no_grad():
        start = pcgu.target_logprobs(model, tokenizer, prefixes, targets).sum()
    trainer = pcgu.PcguTrainer(pcgu.PcguConfig(k=0.2, lr=1e-2), model, tokenizer)
    trainer.step(PAIRS, reselect=True)
    with torch.no_grad():
        assert pcgu.target_logprobs(model, tokenizer, prefixes, targets).sum() < start


def test_sparse_adapter_round_trip_is_exact_and_small(tmp_path, tokenizer):
    trained = tiny_llama(vocab=len(tokenizer))
    trainer = pcgu.PcguTrainer(pcgu.PcguConfig(k=0.05, lr=1e-2), trained, tokenizer)
    for _ in range(2):
        trainer.step(PAIRS, reselect=True)
    size = sparse_adapter.save(
        tmp_path / "adapter", trained, trainer.changed_slices(), {"base_model": "tiny"}
    )
    full = sum(p.numel() * 4 for p in trained.parameters())
    assert 0 < size < full / 4
    fresh = sparse_adapter.apply(tiny_llama(vocab=len(tokenizer)), tmp_path / "adapter")
    for (name, a), (_, b) in zip(trained.named_parameters(), fresh.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    config = json.loads((tmp_path / "adapter" / sparse_adapter.CONFIG).read_text())
    assert config["format"] == sparse_adapter.FORMAT and config["bytes"] == size
    # not peft's file name: peft's tools must not mistake it for a LoRA adapter
    assert not (tmp_path / "adapter" / "adapter_config.json").exists()
    assert pipeline.adapter_kind(tmp_path / "adapter") == "sparse"


def test_adapter_for_another_base_is_refused(tmp_path, tokenizer):
    model = tiny_llama(vocab=len(tokenizer))
    changed = {"model.norm.weight": (None, torch.tensor([0]))}
    sparse_adapter.save(tmp_path / "a", model, changed, {"base_weights_sha256": {"model.safetensors": "aaa"}})
    with pytest.raises(ValueError, match="trained on base weights"):
        sparse_adapter.apply(model, tmp_path / "a", {"model.safetensors": "bbb"})


def test_merge_writes_a_plain_checkpoint_for_pcgu_and_lora(tmp_path, tokenizer):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base_dir = tmp_path / "base"
    base = tiny_llama(vocab=len(tokenizer))
    base.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)

    trained = tiny_llama(vocab=len(tokenizer))
    trainer = pcgu.PcguTrainer(pcgu.PcguConfig(k=10, lr=1e-2), trained, tokenizer)
    trainer.step(PAIRS, reselect=True)
    sparse_adapter.save(tmp_path / "pcgu", trained, trainer.changed_slices(), {})
    merged = AutoModelForCausalLM.from_pretrained(
        pipeline.merge(str(base_dir), tmp_path / "pcgu", tmp_path / "m1")
    )
    for (name, a), (_, b) in zip(trained.named_parameters(), merged.named_parameters(), strict=True):
        assert torch.equal(a, b), name

    lora = get_peft_model(tiny_llama(vocab=len(tokenizer)), LoraConfig(r=2, target_modules=["q_proj"]))
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.fill_(0.1)
    lora.save_pretrained(tmp_path / "lora")
    merged = AutoModelForCausalLM.from_pretrained(
        pipeline.merge(str(base_dir), tmp_path / "lora", tmp_path / "m2")
    )
    ids = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(merged(ids).logits, lora(ids).logits, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(merged(ids).logits, base(ids).logits)


def test_pairs_from_occupation_statistics(data_dir):
    pairs = pcgu.occupation_pairs()
    assert len(pairs) == 60 * len(pcgu.PREFIXES)
    nurse = next(p for p in pairs if p.prefix == "The nurse said that")
    engineer = next(p for p in pairs if p.prefix == "The engineer said that")
    assert (nurse.advantaged, nurse.disadvantaged) == (" she", " he")
    assert (engineer.advantaged, engineer.disadvantaged) == (" he", " she")


def test_bias_type_pairs_cover_every_bias_type_with_the_stereotype_advantaged():
    from collections import Counter

    from debias.data import bias_pairs

    pairs = pcgu.load_pairs("bias_types")
    source = bias_pairs.generate("train")
    assert len(pairs) == len(source) == 4480
    kinds = Counter(p.bias_type for p in source)
    assert set(kinds) == set(bias_pairs.BIAS_TYPES)
    # "The woman ... emotional" advantaged; its mirror "The man ... rational" advantaged too
    woman = next(
        p for p in pairs if p.prefix == "People often describe the woman as" and "emotional" in p.advantaged
    )
    man = next(
        p for p in pairs if p.prefix == "People often describe the man as" and "rational" in p.advantaged
    )
    assert (woman.disadvantaged, man.disadvantaged) == (" rational.", " emotional.")
    # both directions: every (attribute) is advantaged as often as it is disadvantaged
    advantaged = Counter(p.advantaged for p in pairs)
    disadvantaged = Counter(p.disadvantaged for p in pairs)
    assert advantaged == disadvantaged


def test_bad_pairs_file_is_a_clear_error(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prefix": "a", "advantaged": " b", "disadvantaged": " c"}\n{"prefix": "x"}\n')
    with pytest.raises(ValueError, match=r"pairs.jsonl: line 2: missing field 'advantaged'"):
        pcgu.read_pairs(path)


def test_cli_parses_every_method_and_command():
    import cli
    from debias.methods import METHODS

    for method in METHODS:
        parser = cli.build_parser(method)
        args = parser.parse_args(["train-and-eval", "--method", method, "--eval-batch-size", "8"])
        assert args.method == method and args.eval_batch_size == 8
        assert parser.parse_args(["train", "--method", method, "--out", "x"]).out == "x"
    args = cli.build_parser("pcgu").parse_args(["train", "--method", "pcgu", "--out", "x", "--k", "0.02"])
    assert args.k == 0.02


def _budgets(metric: str, max_lms_drop: float) -> SelectionSettings:
    return SelectionSettings("gee_stereoset_select", metric, max_lms_drop, max_ppl_rise=-1.0)


def test_choose_checkpoint_prefers_ss_nearest_50_within_the_lms_budget():
    base = {"ss_gender": 61.0, "lms": 80.0}
    epochs = {
        1: {"ss_gender": 58.0, "lms": 79.5},  # |8.0|, drop 0.5
        2: {"ss_gender": 55.0, "lms": 79.2},  # |5.0|, drop 0.8 -> chosen
        3: {"ss_gender": 51.0, "lms": 78.5},  # |1.0| but drop 1.5: over budget
    }
    epoch, why = selection.choose(base, epochs, _budgets("ss_gender", 1.0))
    assert epoch == 2 and "2 of 3" in why
    # SS below 50 counts by its distance too: 47 is nearer than 55
    epochs[1] = {"ss_gender": 47.0, "lms": 79.9}
    assert selection.choose(base, epochs, _budgets("ss_gender", 1.0))[0] == 1
    # nothing within budget: the smallest LMS loss is kept and the reason says so
    epoch, why = selection.choose(base, epochs, _budgets("ss_gender", 0.05))
    assert epoch == 1 and why.startswith("no checkpoint kept")


def test_generated_pair_sets_combine_and_traits_follow_the_bsri(data_dir):
    traits = pcgu.load_pairs("traits")
    gentle = next(p for p in traits if p.prefix == "The most gentle person in the room was a")
    ambitious = next(p for p in traits if p.prefix == "The most ambitious person in the room was a")
    assert (gentle.advantaged, gentle.disadvantaged) == (" woman", " man")
    assert (ambitious.advantaged, ambitious.disadvantaged) == (" man", " woman")
    attributes = pcgu.load_pairs("attributes")
    sister = [p for p in attributes if p.prefix == "My sister is very"]
    brother = [p for p in attributes if p.prefix == "My brother is very"]
    # each feminine/masculine trait pair is advantaged after one gender and disadvantaged after the other
    assert sorted((p.advantaged, p.disadvantaged) for p in sister) == sorted(
        (p.disadvantaged, p.advantaged) for p in brother
    )
    assert len(sister) == min(len(trait_pairs.BSRI_FEMININE), len(trait_pairs.BSRI_MASCULINE))
    assert all(p.advantaged.strip() in trait_pairs.BSRI_FEMININE for p in sister)
    assert all(p.disadvantaged.strip() in trait_pairs.BSRI_MASCULINE for p in sister)
    both = pcgu.load_pairs("occupations+traits")
    assert len(both) == len(pcgu.occupation_pairs()) + len(traits)
    with pytest.raises(ValueError, match="neither occupations / traits"):
        pcgu.load_pairs("occupations+nonsense")


def _pairs_file(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(p.__dict__) + "\n" for p in PAIRS + PAIRS[:1]))
    return str(path)


def _adapter_tensors(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / sparse_adapter.WEIGHTS))


def test_pcgu_resume_equals_an_uninterrupted_run(tmp_path, smollm2, data_dir):
    """With the anchor on (its text order is part of a step, so a resumed run must read the same)."""
    cfg = dict(pairs=_pairs_file(tmp_path), k=64, lr=1e-3, batch_size=2, select_task="", anchor_weight=0.5)
    cfg |= dict(anchor_batch_size=2, anchor_max_tokens=16, anchor_probe_batches=1)
    (tmp_path / "neutral.txt").write_text("".join(line + "\n" for line in ANCHOR_TEXTS * 5))
    cfg["anchor_text"] = str(tmp_path / "neutral.txt")  # the built-in text is tokenised whole: slow here
    whole = train_adapter("pcgu", pcgu.PcguConfig(epochs=2, **cfg), tmp_path / "whole")
    train_adapter("pcgu", pcgu.PcguConfig(epochs=1, **cfg), tmp_path / "cut")  # "killed" after epoch 1
    resumed = train_adapter("pcgu", pcgu.PcguConfig(epochs=2, **cfg), tmp_path / "cut", resume=True)
    assert whole["steps"] == resumed["steps"] == 4
    a, b = _adapter_tensors(tmp_path / "whole" / "adapter"), _adapter_tensors(tmp_path / "cut" / "adapter")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    lines = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3, 4]
    assert lines[0]["anchor_kl"] == pytest.approx(0.0, abs=1e-7) and lines[-1]["anchor_kl"] > 0
    assert whole["heldout_anchor_kl"] > 0
    with pytest.raises(ValueError, match=r"other settings \(lr: 0.001 -> 0.002\)"):
        train_adapter("pcgu", pcgu.PcguConfig(epochs=2, **{**cfg, "lr": 2e-3}), tmp_path / "cut", resume=True)


def test_selection_keeps_the_chosen_epoch_as_the_adapter(tmp_path, smollm2, data_dir, monkeypatch):
    """The selection wiring with canned scores (a real scoring of the select half takes minutes)."""
    from debias import evaluation

    def scores(ss, lms):
        return {"results": {"gee_stereoset_select": {"ss_gender,none": ss, "lms,none": lms, "ss,none": 55.0}}}

    def perplexity(value):
        return {"results": {"gee_neutral_ppl_select": {"word_perplexity,none": value}}}

    # epoch 2 is nearer 50 but loses 3 LMS points; both within the 3 % perplexity budget
    canned = iter([(scores(52.0, 79.8), perplexity(20.2)), (scores(50.5, 77.0), perplexity(20.3))])

    def base_results(spec, request):
        return (perplexity(20.0) if request.tasks == ["gee_neutral_ppl_select"] else scores(60.0, 80.0)), True

    def evaluate(model, tokenizer, request, **kwargs):
        assert request.tasks == ["gee_stereoset_select", "gee_neutral_ppl_select"]  # one evaluation
        select, ppl = next(canned)
        return {"results": {**select["results"], **ppl["results"]}}

    monkeypatch.setattr(pipeline, "base_results", base_results)
    monkeypatch.setattr(evaluation, "evaluate", evaluate)
    cfg = pcgu.PcguConfig(pairs=_pairs_file(tmp_path), k=64, lr=1e-3, batch_size=2, epochs=2)
    summary = train_adapter("pcgu", cfg, tmp_path / "run")
    selection = json.loads((tmp_path / "run" / "selection.json").read_text())
    assert summary["chosen_epoch"] == selection["chosen_epoch"] == 1
    assert selection["epochs"]["2"]["lms"] == 77.0 and selection["base"]["ss_gender"] == 60.0
    assert selection["epochs"]["2"]["neutral_word_perplexity"] == 20.3 and selection["max_ppl_rise"] == 0.03
    chosen = _adapter_tensors(tmp_path / "run" / "checkpoints" / "epoch-1")
    kept = _adapter_tensors(tmp_path / "run" / "adapter")
    assert all(torch.equal(chosen[n], kept[n]) for n in chosen) and chosen.keys() == kept.keys()
    assert any("checkpoint selection" in entry for entry in summary["not_held_out"])
    assert any("perplexity guard" in entry for entry in summary["not_held_out"])


def test_guard_scores_of_another_guard_version_are_measured_again(tmp_path, monkeypatch):
    """A selection.json written under guard version 1 (annotation-stripped GSM8K) keeps its StereoSet
    scores but not its perplexities: those were taken on other text, so they are scored again, and the
    record says which guard version its perplexities belong to."""
    import types

    from debias.methods.recipe import PPL_KEY, PPL_TASK, PPL_TASK_VERSION, Candidate

    assert PPL_TASK_VERSION == 2
    folder = types.SimpleNamespace(selection=tmp_path / "selection.json")
    cfg = types.SimpleNamespace(select_task="gee_stereoset_select", select_metric="ss", max_ppl_rise=0.03)
    recipe = types.SimpleNamespace(cfg=cfg, folder=folder, unit="step")
    old = {"ss": 52.0, "lms": 80.0, PPL_KEY: 20.1}
    folder.selection.write_text(json.dumps({"task": cfg.select_task, "metric": "ss", "steps": {"20": old}}))
    asked = []

    def score(model, candidate, request):
        asked.append(request.tasks)
        return {"results": {PPL_TASK: {"word_perplexity,none": 21.0}}}

    def base_results(spec, request):
        if request.tasks == [PPL_TASK]:
            return {"results": {PPL_TASK: {"word_perplexity,none": 20.0}}}, True
        return {"results": {cfg.select_task: {"ss,none": 55.0, "lms,none": 80.5}}}, True

    monkeypatch.setattr(selection, "score", score)
    monkeypatch.setattr(pipeline, "base_results", base_results)
    scorer = selection.Scorer(recipe, types.SimpleNamespace(spec="smollm2-135m"))
    assert scorer.scored() == {"20": {"ss": 52.0, "lms": 80.0}}
    assert scorer(Candidate("20", tmp_path)) == {"ss": 52.0, "lms": 80.0, PPL_KEY: 21.0}
    assert asked == [[PPL_TASK]]  # only the perplexity, once
    record = json.loads(folder.selection.read_text())
    assert record["ppl_guard_version"] == PPL_TASK_VERSION and record["steps"]["20"][PPL_KEY] == 21.0
    assert scorer(Candidate("20", tmp_path))[PPL_KEY] == 21.0 and len(asked) == 1  # now current: reused


def test_guard_task_version_matches_the_recorded_constant():
    import yaml

    from debias.methods.recipe import PPL_TASK, PPL_TASK_VERSION

    spec = Path(__file__).resolve().parents[1] / "harness_tasks" / "retention" / f"{PPL_TASK}.yaml"
    text = "\n".join(line for line in spec.read_text().splitlines() if "!function" not in line)
    assert float(yaml.safe_load(text)["metadata"]["version"]) == PPL_TASK_VERSION


def test_embeddings_stay_frozen_unless_asked(tokenizer):
    """The target words' embedding rows are the most opposed units; by default they are not candidates."""
    for update_embeddings in (False, True):
        model = tiny_llama(vocab=len(tokenizer))
        embedding = model.get_input_embeddings().weight.detach().clone()
        cfg = pcgu.PcguConfig(k=0.5, lr=1e-1, update_embeddings=update_embeddings)
        trainer = pcgu.PcguTrainer(cfg, model, tokenizer)
        trainer.step(PAIRS, reselect=True)
        moved = not torch.equal(model.get_input_embeddings().weight.detach(), embedding)
        assert moved is update_embeddings
        assert ("model.embed_tokens.weight" in trainer.selected) is update_embeddings


# ------------------------------------------------------------------ the retention anchor, on PCGU's units


def _anchored(tokenizer, model, weight: float, **cfg) -> pcgu.PcguTrainer:
    from debias import anchor

    texts = anchor.RetentionAnchor(tokenizer, ANCHOR_TEXTS, batch_size=2, max_tokens=32, seed=0)
    return pcgu.PcguTrainer(pcgu.PcguConfig(anchor_weight=weight, **cfg), model, tokenizer, texts)


def test_anchor_base_is_the_untouched_model_and_its_kl_starts_at_zero(tokenizer):
    model = tiny_llama(vocab=len(tokenizer))
    ids = torch.tensor([tokenizer.encode("The nurse said that she")])
    with torch.no_grad():
        before = model(input_ids=ids).logits.clone()
    trainer = _anchored(tokenizer, model, 0.5, k=12, lr=1e-1)
    first = trainer.step(PAIRS, reselect=True)
    assert first["anchor_kl"] == pytest.approx(0.0, abs=1e-7)  # nothing had moved yet
    with torch.no_grad():
        after = model(input_ids=ids).logits.clone()
        with trainer.base_weights():
            base = model(input_ids=ids).logits.clone()
        assert torch.equal(model(input_ids=ids).logits, after)  # swapped back: the tuned weights again
    assert not torch.equal(after, before) and torch.equal(base, before)
    assert trainer.step(PAIRS, reselect=True)["anchor_kl"] > 0


def test_anchor_gradient_moves_only_selected_units_and_pulls_toward_the_base(tokenizer):
    """Two steps each way from the same start: with the anchor the second step changes only the selected
    units (as without it), and ends nearer the base on neutral text than the same steps without it."""
    from debias import anchor

    kls = {}
    for weight in (0.0, 20.0):
        model = tiny_llama(vocab=len(tokenizer))
        trainer = _anchored(tokenizer, model, weight, k=12, lr=1e-1)
        trainer.step(PAIRS, reselect=True)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        trainer.step(PAIRS, reselect=True)
        units = _by_name(trainer.units)
        for name, param in model.named_parameters():
            diff = param.detach() != before[name]
            selected = trainer.selected.get(name)
            outside = diff if selected is None else diff & ~partition.unit_mask(units[name], selected)
            assert not outside.any(), f"{name} changed outside its selected units"
        trainer.anchor.seek(0)
        with torch.no_grad():
            kls[weight] = float(
                anchor.anchor_loss(model, trainer.anchor.next_batch(), "cpu", trainer.base_weights)[0]
            )
    assert 0 < kls[20.0] < kls[0.0], kls


def test_pcgu_anchor_is_off_by_default_and_checked():
    assert pcgu.PcguConfig().anchor_weight == 0
    with pytest.raises(ValueError, match="anchor_weight must be >= 0"):
        pcgu.PcguConfig(anchor_weight=-0.1)
    with pytest.raises(ValueError, match="anchor crop"):
        pcgu.PcguConfig(anchor_crop="tail")


def test_changed_mode_pulls_back_units_earlier_steps_moved_and_nothing_else(tokenizer):
    """anchor_units "changed": step 2's anchor also moves units only step 1 selected (the adapter's
    support), never one no step selected; its KL ends below the unanchored run's."""
    from debias import anchor

    kls = {}
    for weight in (0.0, 20.0):
        model = tiny_llama(vocab=len(tokenizer))
        trainer = _anchored(tokenizer, model, weight, k=12, lr=1e-1, anchor_units="changed")
        trainer.step(PAIRS[:1], reselect=True)
        first = {name: set(idx.tolist()) for name, idx in trainer.selected.items()}
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        trainer.step(PAIRS[1:], reselect=True)
        units = _by_name(trainer.units)
        moved_outside_step = False
        for name, param in model.named_parameters():
            diff = param.detach() != before[name]
            support = first.get(name, set()) | set(trainer.selected.get(name, torch.tensor([])).tolist())
            mask = partition.unit_mask(units[name], torch.tensor(sorted(support))) if support else None
            assert not (diff if mask is None else diff & ~mask).any(), f"{name} changed outside the support"
            step_only = trainer.selected.get(name)
            if step_only is not None and weight:
                moved_outside_step |= bool((diff & ~partition.unit_mask(units[name], step_only)).any())
            elif step_only is None and weight:
                moved_outside_step |= bool(diff.any())
        assert moved_outside_step == (weight > 0)
        trainer.anchor.seek(0)
        with torch.no_grad():
            batch = trainer.anchor.next_batch()
            kls[weight] = float(anchor.anchor_loss(model, batch, "cpu", trainer.base_weights)[0])
    assert 0 < kls[20.0] < kls[0.0], kls
    with pytest.raises(ValueError, match="anchor_units must be step or changed"):
        pcgu.PcguConfig(anchor_units="all")
