"""train-and-eval orchestration: phases, base cache hit, resume after interruption, refusal to mix runs.

Training and evaluation are replaced by fakes that write the same files (the real ones are tested in
test_gee_training.py / test_pipeline.py, and measured end to end in benchmarks/); the comparison uses the
real CrowS-Pairs task's aggregations.
"""

from __future__ import annotations

import json

import pytest
import torch
from report_fixtures import crows_samples, results_file, winogender_samples
from safetensors.torch import save_file

from debias import pipeline
from debias import train_and_eval as job
from debias.atomic import write_json_atomic
from debias.methods import gee
from debias.methods.recipe import Candidate, Recipe
from reports.render import write_report


class FakeRecipe(Recipe):
    """Writes what a real recipe's training writes (a checkpoint, config.json, metrics.jsonl)."""

    method, unit = "gee", "step"

    def __init__(self, world, cfg, out, resume=False):
        super().__init__(cfg, out, resume)
        self.world = world

    def setup(self):
        pass

    def train(self):
        self.world.trained += 1
        adapter = self.folder.checkpoint("step-2") / "adapter"
        adapter.mkdir(parents=True, exist_ok=True)
        # the shape a peft adapter folder has (the pipeline checks it before anything loads it)
        (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
        save_file({"w": torch.zeros(1)}, str(adapter / "adapter_model.safetensors"))
        summary = {"steps": self.cfg.steps, "stopped_early": False}
        write_json_atomic(self.folder.config, {"method": "gee", "config": {}, "training": summary})
        self.folder.metrics.write_text(json.dumps({"step": 1, "loss": 0.5}) + "\n")
        return summary

    def candidates(self):
        adapter = self.folder.checkpoint("step-2") / "adapter"
        return [Candidate("2", adapter)] if adapter.is_dir() else []


class FakeWorld:
    """Counts what ran: trainings and evaluations (base vs adapter)."""

    def __init__(self):
        self.trained, self.evaluated, self.fail_debiased = 0, [], False

    def generate_examples(self, model_spec, folder, prompts, max_new_tokens=40):  # noqa: ARG002
        rows = [{"prompt": p, "model": m, "mode": "greedy", "text": " ..."} for p in prompts for m in "ab"]
        folder.generations.parent.mkdir(parents=True, exist_ok=True)
        folder.generations.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def evaluate_spec(self, model_spec, request, adapter=None):
        self.evaluated.append("debiased" if adapter else "base")
        if adapter and self.fail_debiased:
            raise KeyboardInterrupt
        stereotyped = [1.0, 0.0, 1.0, 1.0] if adapter is None else [1.0, 0.0, 0.0, 1.0]
        samples = {
            "gee_crows_pairs": crows_samples(stereotyped, [1.0, 2.0, 3.0, 4.0]),
            "gee_winogender": winogender_samples([1.0, -1.0, 0.2]),
        }
        return json.loads(json.dumps(results_file(samples, ss=58.0, lms=80.0)))


@pytest.fixture()
def world(monkeypatch, tmp_path, smollm2):
    fake = FakeWorld()
    monkeypatch.setattr(pipeline, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(pipeline, "evaluate_spec", fake.evaluate_spec)
    monkeypatch.setattr(job, "generate_examples", fake.generate_examples)
    monkeypatch.setattr(
        job, "make_recipe", lambda method, cfg, out, resume=False: FakeRecipe(fake, cfg, out, resume)
    )
    return fake


SPEC = job.RunSpec(method="gee", tasks=["gee_crows_pairs"], limit=4, iters=50)
CFG = gee.GeeConfig(steps=2)


def _quiet():
    import io

    return job.Progress(stream=io.StringIO())


def _run(spec, cfg, out):
    return job.train_and_eval(spec, cfg, out, _quiet(), render=write_report)


def test_phases_write_the_run_folder_and_a_second_run_hits_the_base_cache(world, tmp_path):
    first = _run(SPEC, CFG, tmp_path / "a")
    for rel in (
        "config.json",
        "adapter",
        "metrics.jsonl",
        "results/base.json",
        "results/debiased.json",
        "results/comparison.json",
        "samples/base/gee_crows_pairs.json",
        "samples/debiased/gee_crows_pairs.json",
        "report.html",
        "run.json",
    ):
        assert (tmp_path / "a" / rel).exists(), rel
    assert first == tmp_path / "a" / "report.html"
    assert world.evaluated == ["base", "debiased"]
    # samples are split out of the result files
    assert "samples" not in json.loads((tmp_path / "a" / "results" / "base.json").read_text())
    comparison = json.loads((tmp_path / "a" / "results" / "comparison.json").read_text())
    (row,) = [c for c in comparison["tasks"]["gee_crows_pairs"] if c["metric"] == "pct_stereotype"]
    assert (row["base"], row["new"]) == (0.75, 0.5) and row["improved"] is True

    _run(SPEC, CFG, tmp_path / "b")
    assert world.evaluated == ["base", "debiased", "debiased"]  # no second base evaluation
    phases = json.loads((tmp_path / "b" / "run.json").read_text())["phases"]
    assert phases["base"]["cache_hit"] is True
    a_phases = json.loads((tmp_path / "a" / "run.json").read_text())["phases"]
    assert (
        a_phases["base"]["cache_hit"] is False
        and a_phases["base"]["cache_key"] == phases["base"]["cache_key"]
    )


def test_interrupted_run_resumes_without_redoing_finished_phases(world, tmp_path):
    world.fail_debiased = True
    with pytest.raises(KeyboardInterrupt):
        _run(SPEC, CFG, tmp_path / "r")
    state = json.loads((tmp_path / "r" / "run.json").read_text())
    assert set(state["phases"]) == {"train", "select", "base"}
    assert not (tmp_path / "r" / "results" / "debiased.json").exists()  # nothing half-written
    world.fail_debiased = False
    _run(SPEC, CFG, tmp_path / "r")
    assert world.trained == 1 and world.evaluated == ["base", "debiased", "debiased"]
    assert set(json.loads((tmp_path / "r" / "run.json").read_text())["phases"]) == set(job.PHASES)


def test_a_folder_started_with_other_settings_is_refused(world, tmp_path):
    _run(SPEC, CFG, tmp_path / "x")
    other = job.RunSpec(method="gee", tasks=["gee_crows_pairs"], limit=8, iters=50)
    with pytest.raises(ValueError, match=r"other settings \(limit: 4 -> 8\)"):
        _run(other, CFG, tmp_path / "x")
    with pytest.raises(ValueError, match="steps: 2 -> 3"):
        _run(SPEC, gee.GeeConfig(steps=3), tmp_path / "x")


def test_a_folder_that_predates_a_setting_resumes_as_its_default(world, tmp_path):
    """A field added to a config class after a run started: the run ran as the field's default, so it
    resumes under the default and is refused under any other value."""
    from debias.run_folder import RunFolder

    _run(SPEC, CFG, tmp_path / "old")
    path = tmp_path / "old" / "run.json"
    state = json.loads(path.read_text())
    del state["method_config"]["temperature"]  # as if the field had not existed when the run started
    write_json_atomic(path, state)
    _run(SPEC, CFG, tmp_path / "old")  # CFG.temperature is the default: same run
    with pytest.raises(ValueError, match=r"temperature: 1.0 -> 2.0"):
        _run(SPEC, gee.GeeConfig(steps=2, temperature=2.0), tmp_path / "old")

    folder = RunFolder(tmp_path / "trained")
    folder.path.mkdir()
    folder.write_config({"method": "gee", "config": {"steps": 2}})
    defaults = {"steps": 40, "temperature": 1.0}
    folder.check_resume("gee", {"steps": 2, "temperature": 1.0}, defaults=defaults)
    with pytest.raises(ValueError, match=r"temperature: 1.0 -> 2.0"):
        folder.check_resume("gee", {"steps": 2, "temperature": 2.0}, defaults=defaults)
    with pytest.raises(ValueError, match=r"temperature: None -> 1.0"):  # without defaults: refused
        folder.check_resume("gee", {"steps": 2, "temperature": 1.0})


def test_a_changed_selection_budget_selects_again_and_reevaluates_only_a_changed_choice(
    world, tmp_path, monkeypatch
):
    out = tmp_path / "s"
    _run(SPEC, CFG, out)
    selected = []
    real_select = job.select_phase

    def select_phase(recipe):
        selected.append(recipe.cfg.max_ppl_rise)
        return real_select(recipe)

    monkeypatch.setattr(job, "select_phase", select_phase)
    _run(SPEC, gee.GeeConfig(steps=2, max_ppl_rise=0.05), out)  # same checkpoint kept: nothing re-evaluated
    assert selected == [0.05] and world.trained == 1 and world.evaluated == ["base", "debiased"]
    state = json.loads((out / "run.json").read_text())
    assert state["method_config"]["max_ppl_rise"] == 0.05 and set(state["phases"]) == set(job.PHASES)
    assert json.loads((out / "config.json").read_text())["config"]["max_ppl_rise"] == 0.05

    monkeypatch.setattr(job, "select_phase", lambda recipe: {**real_select(recipe), "chosen_step": 1})
    _run(SPEC, gee.GeeConfig(steps=2, max_ppl_rise=0.1), out)  # another checkpoint: evaluated again
    assert world.trained == 1 and world.evaluated == ["base", "debiased", "debiased"]
    assert json.loads((out / "run.json").read_text())["phases"]["select"]["chosen_step"] == 1


def test_real_end_to_end_run_on_the_default_model(tmp_path, smollm2, data_dir):
    """The whole job with the default method on the real model and data, kept small for CI: 2
    DPO steps with the retention anchor (one checkpoint), 12 CrowS-Pairs pairs."""
    import cli

    out = tmp_path / "run"
    argv = [
        "train-and-eval",
        "--out",
        str(out),
        "--tasks",
        "gee_crows_pairs",
        "--limit",
        "12",
        "--iters",
        "50",
    ]
    argv += ["--steps", "2", "--check-every", "2", "--select-task", "", "--batch-size", "2"]
    argv += ["--max-pairs", "16", "--heldout-max-pairs", "8", "--anchor-batch-size", "1"]
    argv += ["--anchor-max-tokens", "32"]
    assert cli.main(argv) == 0
    assert json.loads((out / "config.json").read_text())["method"] == "dpo"
    comparison = json.loads((out / "results" / "comparison.json").read_text())
    rows = {c["metric"]: c for c in comparison["tasks"]["gee_crows_pairs"]}
    assert (
        rows["pct_stereotype"]["n"] == 12
        and rows["likelihood_diff"]["ci_low"] <= rows["likelihood_diff"]["ci_high"]
    )
    html = (out / "report.html").read_text()
    assert "gee_crows_pairs" in html and "pct_stereotype" in html and "a subset run (limit 12" in html
    # the same command again: every phase is already done, nothing is recomputed, the report is redrawn
    state = json.loads((out / "run.json").read_text())
    assert cli.main(argv) == 0
    again = json.loads((out / "run.json").read_text())
    for phase in ("train", "select", "base", "debiased", "compare"):
        assert again["phases"][phase] == state["phases"][phase]


def test_unknown_task_is_a_one_line_error(tmp_path, capsys, smollm2):
    import cli

    argv = ["train-and-eval", "--out", str(tmp_path / "r"), "--tasks", "no_such_task", "--steps", "1"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "no_such_task" in err[-1]
