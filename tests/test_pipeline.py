"""Base-evaluation cache and the metric-by-metric comparison of two result sets."""

from __future__ import annotations

import pytest

from debias import compare, evaluation, pipeline


def test_base_results_cache_hit_skips_evaluation(tmp_path, monkeypatch, smollm2):
    calls = []

    def fake_evaluate(spec, request, adapter=None):
        calls.append(spec)
        return {"results": {"gee_crows_pairs": {"pct_stereotype,none": 0.5}}, "provenance": {}}

    monkeypatch.setattr(pipeline, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(pipeline, "evaluate_spec", fake_evaluate)
    request = evaluation.EvalRequest(tasks=["gee_crows_pairs"], limit=4)
    first, hit1 = pipeline.base_results("smollm2-135m", request)
    second, hit2 = pipeline.base_results("smollm2-135m", request)
    assert (hit1, hit2) == (False, True) and calls == ["smollm2-135m"] and first == second
    other = evaluation.EvalRequest(tasks=["gee_crows_pairs"], limit=5)  # a different limit is a new key
    assert pipeline.base_cache_key("smollm2-135m", other) != pipeline.base_cache_key("smollm2-135m", request)


def _samples(values: list[float], direction: list[str]) -> list[dict]:
    return [
        {"doc_id": i, "pct_stereotype": v, f"pct_stereotype_{d}": v, "likelihood_diff": 1.0}
        for i, (v, d) in enumerate(zip(values, direction, strict=True))
    ]


def test_compare_pairs_documents_and_uses_task_aggregations():
    dirs = ["stereo", "stereo", "antistereo", "stereo"]
    base = {"samples": {"gee_crows_pairs": _samples([1.0, 1.0, 1.0, 0.0], dirs)}}
    new = {"samples": {"gee_crows_pairs": list(reversed(_samples([1.0, 0.0, 1.0, 0.0], dirs)))}}
    rows = {
        c.metric: c
        for c in compare.compare(base, new, evaluation.task_manager(), iters=200)["gee_crows_pairs"]
    }
    assert rows["pct_stereotype"].base == 0.75 and rows["pct_stereotype"].new == 0.5
    assert rows["pct_stereotype"].improved is True  # 0.75 -> 0.5 moves to the ideal 0.5
    assert rows["pct_stereotype_antistereo"].n == 1 and rows["pct_stereotype_stereo"].n == 3
    assert rows["likelihood_diff"].delta == 0.0


def test_compare_refuses_different_documents():
    base = {"samples": {"gee_crows_pairs": _samples([1.0, 0.0], ["stereo", "stereo"])}}
    new = {"samples": {"gee_crows_pairs": _samples([1.0], ["stereo"])}}
    with pytest.raises(ValueError, match="different documents"):
        compare.compare(base, new, evaluation.task_manager(), iters=10)


def test_merged_adapter_gives_the_unmerged_model_outputs(tmp_path, smollm2):
    import torch
    from peft import PeftModel

    from debias import models, training

    torch.manual_seed(0)
    lora = training.add_lora(
        models.load()[0], r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "down_proj"]
    )
    for name, param in lora.named_parameters():
        if "lora_B" in name:  # B starts at zero; make the adapter actually change the model
            torch.nn.init.normal_(param, std=0.02)
    lora.save_pretrained(tmp_path / "adapter")
    _, tokenizer, _ = smollm2
    ids = tokenizer("The engineer told the nurse that", return_tensors="pt").input_ids
    unmerged = PeftModel.from_pretrained(models.load()[0], str(tmp_path / "adapter")).eval()
    merged = pipeline.with_adapter(models.load()[0], tmp_path / "adapter")
    with torch.no_grad():
        a, b = unmerged(ids).logits, merged(ids).logits
        base = smollm2[0](ids).logits
    assert (a - base).abs().max() > 1e-2  # the adapter matters ...
    torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-4)  # ... and merging does not change it


class _MeanTasks:
    """Two MMLU-like subject tasks whose acc is lm-eval's plain mean."""

    def load(self, names):
        from lm_eval.api.metrics import mean

        class Task:
            def aggregation(self):
                return {"acc": mean}

        return {"tasks": {name: Task() for name in names}}


def _group_run(a: list[float], b: list[float], group_value: float) -> dict:
    return {
        "samples": {
            "subj_a": [{"doc_id": i, "acc": v} for i, v in enumerate(a)],
            "subj_b": [{"doc_id": i, "acc": v} for i, v in reversed(list(enumerate(b)))],
        },
        "group_subtasks": {"lite": ["cat"], "cat": ["subj_a", "subj_b"]},
        "results": {"lite": {"acc,none": group_value}, "cat": {"acc,none": group_value}},
    }


def test_size_weighted_group_gets_a_ci_from_its_pooled_documents():
    # 6 documents in all: base 3/6 correct, new 5/6; the subject sizes differ (2 and 4)
    base = _group_run([1.0, 0.0], [1.0, 0.0, 1.0, 0.0], 0.5)
    new = _group_run([1.0, 1.0], [1.0, 1.0, 1.0, 0.0], 5 / 6)
    out = compare.compare(base, new, _MeanTasks(), iters=200)
    for group in ("lite", "cat"):  # nested groups resolve to the same six documents
        (row,) = out[group]
        assert (row.metric, row.base, row.new, row.n) == ("acc", 0.5, 5 / 6, 6)
        assert row.ci_low <= row.delta <= row.ci_high
    # a group value that is not the pooled mean (e.g. an unweighted mean of subjects) gets no pooled CI
    base["results"]["lite"]["acc,none"] = 0.4
    assert "lite" not in compare.compare(base, new, _MeanTasks(), iters=10)


class _Group:
    """What benchmark_samples reads of lm-eval's Group: a name, its children, its leaves."""

    def __init__(self, name: str, children: list):
        self.name, self.children = name, children

    def __iter__(self):
        return iter(self.children)

    def get_all_tasks(self):
        return [leaf for c in self.children for leaf in (c.get_all_tasks() if isinstance(c, _Group) else [c])]

    def pop(self, name: str):
        (child,) = [
            c
            for c in self.children
            if getattr(c, "name", None) == name or getattr(c, "task_name", None) == name
        ]
        self.children.remove(child)

    def __len__(self):
        return len(self.children)


class _Task:
    def __init__(self, name: str, n: int):
        self.task_name, self.eval_docs = name, list(range(n))


def test_benchmark_samples_share_the_budget_among_a_groups_leaves():
    """A suite's members are the benchmarks; a one-task benchmark gets its first `limit` documents (what
    lm-eval's limit takes), a group's leaves ceil(limit / leaves) each, never more than a leaf has."""
    subjects = [_Task(f"mmlu_{i}", 10) for i in range(57)]
    built = [
        _Group(
            "gee_heldout",
            [
                _Task("crows", 1508),
                _Task("tiny", 40),
                _Group("mmlu", [_Group("stem", subjects[:20]), *subjects[20:]]),
            ],
        )
    ]
    samples = evaluation.benchmark_samples(built, 100, {"gee_heldout"})
    assert samples["crows"] == list(range(100)) and samples["tiny"] == list(range(40))
    assert all(samples[t.task_name] == [0, 1] for t in subjects)  # ceil(100 / 57) = 2 each
    # asked for directly (not through a suite), a group is itself the benchmark; 5 documents for 57 leaves:
    # the first document of 5 leaves spread over them (0, 11, 22, 34, 45), the others none
    direct = evaluation.benchmark_samples([_Group("mmlu", subjects)], 5, {"gee_heldout"})
    assert direct == {f"mmlu_{i}": [0] for i in (0, 11, 22, 34, 45)}
    assert "gee_heldout" in evaluation.suite_names() and "gee_mmlu_lite" not in evaluation.suite_names()


def test_leaves_without_documents_leave_the_evaluation_and_so_do_emptied_groups():
    stem, other = _Group("stem", [_Task("a", 3), _Task("b", 3)]), _Group("other", [_Task("c", 3)])
    built = [_Group("mmlu", [stem, other, _Task("d", 3)]), _Task("solo", 3)]
    evaluation.without_unsampled(built, {"a": [0], "d": [0], "solo": [0]})
    assert [t.task_name for t in built[0].get_all_tasks()] == ["a", "d"] and built[0].children[0] is stem
    assert other not in built[0].children


def test_built_tasks_are_lm_evals_objects_by_name(smollm2):
    manager = evaluation.task_manager(str(smollm2[2]), tasks=["gee_heldout", "gee_crows_pairs_age"])
    suite, task = evaluation.built_tasks(manager, ["gee_heldout", "gee_crows_pairs_age"])
    assert suite.name == "gee_heldout" and task.task_name == "gee_crows_pairs_age"
    leaves = {t.task_name for t in suite.get_all_tasks()}
    assert {"gee_crows_pairs", "gee_gsm8k_ppl"} <= leaves and len(leaves) > 57  # MMLU-lite's subjects too


def test_benchmark_scope_equals_lm_evals_limit_on_a_one_task_benchmark(smollm2):
    model, tokenizer, path = smollm2
    by_task = evaluation.evaluate(
        model, tokenizer, evaluation.EvalRequest(["gee_crows_pairs"], limit=6), str(path)
    )
    request = evaluation.EvalRequest(["gee_crows_pairs"], limit=6, limit_scope="benchmark")
    by_benchmark = evaluation.evaluate(model, tokenizer, request, str(path))
    assert by_benchmark["results"] == by_task["results"]
    assert [s["doc_id"] for s in by_benchmark["samples"]["gee_crows_pairs"]] == list(range(6))
    with pytest.raises(ValueError, match="limit_scope"):
        evaluation.evaluate(
            model, tokenizer, evaluation.EvalRequest(["gee_crows_pairs"], limit_scope="x"), str(path)
        )


def test_base_cache_key_covers_the_requested_tasks_definitions_only(tmp_path, monkeypatch, smollm2):
    """A new task elsewhere keeps every cached base (minutes each); an edit to a member's YAML, its
    include chain or any Python module invalidates it."""
    import shutil

    root = tmp_path / "harness_tasks"
    shutil.copytree(evaluation.tasks_dir(), root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(evaluation, "tasks_dir", lambda: root)
    request = evaluation.EvalRequest(tasks=["gee_heldout"])
    key = pipeline.base_cache_key("smollm2-135m", request)
    select_key = pipeline.base_cache_key(
        "smollm2-135m", evaluation.EvalRequest(tasks=["gee_stereoset_select"])
    )

    (root / "retention" / "gee_new_probe.yaml").write_text(
        "include: _gee_gsm8k_template_yaml\ntask: gee_new\n"
    )
    assert pipeline.base_cache_key("smollm2-135m", request) == key

    template = root / "winogender" / "_gee_winogender_template_yaml"  # reached by include from a member
    template.write_text(template.read_text() + "\n# changed\n")
    assert pipeline.base_cache_key("smollm2-135m", request) != key
    key = pipeline.base_cache_key("smollm2-135m", request)
    # ... which StereoSet's select half does not include
    assert (
        pipeline.base_cache_key("smollm2-135m", evaluation.EvalRequest(tasks=["gee_stereoset_select"]))
        == select_key
    )

    member = root / "retention" / "mmlu_lite" / "gee_mmlu_lite_virology.yaml"  # a leaf two groups down
    member.write_text(member.read_text() + "\n# changed\n")
    assert pipeline.base_cache_key("smollm2-135m", request) != key
    key = pipeline.base_cache_key("smollm2-135m", request)

    (root / "bbq" / "metrics.py").write_text((root / "bbq" / "metrics.py").read_text() + "\n# changed\n")
    assert pipeline.base_cache_key("smollm2-135m", request) != key
