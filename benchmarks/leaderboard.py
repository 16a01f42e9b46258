"""The method leaderboard: each row one ``train-and-eval`` run, judged on held-out benchmarks only.

Every row trains on the project's own text, chooses its checkpoint on ``gee_stereoset_select`` (the
shared select phase) and is evaluated on ``gee_heldout`` (StereoSet's report half, CrowS-Pairs,
Winogender, MMLU-lite, GSM8K perplexity), which neither training nor selection looked at. A row's run
folder is resumed when it exists, only summarised when finished. Writes
``benchmarks/results/leaderboard.json`` (every row's acceptance checks with the numbers they were
decided on, and the command that reproduces it) and prints the README table.

    DEBIAS_DATA_DIR=../shared/data python benchmarks/leaderboard.py --rows equalize,equalize-no-anchor \
        [--model smollm2-135m] [--runs runs/leaderboard] [--collect-only] [--readme README.md]

``--readme`` rewrites the README's leaderboard lines from the results (each line keeps its hand-written
note, the first cell); a test checks they agree.

"Best" is decided before looking at the report half: the row whose kept checkpoint is nearest SS 50 on
the *select* half within the LMS budget (``selection.json``), ties broken by the smaller LMS drop there.
The defaults follow ``default_row``: the same rule among the rows that are within both budgets on the
select half of every model in ``MODELS`` (decided 2026-12-06, see the README).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from debias import run_folder
from debias.atomic import write_json_atomic, write_text_atomic
from debias.methods import config_class
from debias.methods.recipe import PPL_KEY, config_defaults
from debias.training import DEFAULT_LORA_TARGETS, MLP_LORA_TARGETS

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
SUITE = "gee_heldout"
#: the models the defaults must serve: a default row must be within both budgets on each one's select half
MODELS = ("smollm2-135m", "gemma3-270m")

GNORM_WARMUP40 = ["--anchor-weight", "0.3", "--check-every", "20", "--steps", "120"] + [
    "--warmup-steps", "40", "--lr-ref-grad-norm", "0.25",
]  # fmt: skip

#: DPO's defaults before 2026-12-06 (10-step warm-up, no rate calibration), pinned by the rows run with them
DPO_BEFORE_GNORM = ["--warmup-steps", "10", "--lr-ref-grad-norm", "0"]
#: DPO's defaults before 2026-12-07 (rate 5e-4, LoRA on all seven projections), pinned likewise
DPO_BEFORE_MLP = ["--lr", "5e-4", "--lora-targets", *DEFAULT_LORA_TARGETS]


def mlp_lr1e3(check_every: int, steps: int = 120, anchor_weight: str = "0.3") -> list[str]:
    """The dpo-mlp-lr1e-3 rows' flags (MLP-only LoRA at rate 1e-3), in the order their commands show them."""
    return ["--anchor-weight", anchor_weight, "--check-every", str(check_every), "--steps", str(steps)] + [
        "--warmup-steps", "40", "--lr-ref-grad-norm", "0.25", "--lr", "1e-3",
        "--lora-targets", *MLP_LORA_TARGETS,
    ]  # fmt: skip


#: the gc rows' flags beyond mlp_lr1e3's: the role pairs as a tie term, gender's other components as DPO pairs
TIE_ROLES_GC = ["--tie-pairs", "roles", "--pairs", "builtin+gender-components"]

# row name -> (method, extra flags); every flag not named is the method's default
# (rows run before a default changed pin what they ran with, so each command still reproduces its row)
ROWS: dict[str, tuple[str, list[str]]] = {
    "equalize": ("equalize", ["--pairs", "builtin", "--anchor-weight", "1", "--steps", "200"]),
    # the wider pair set (more shapes, both conditional directions, more subjects)
    "equalize-varied": ("equalize", ["--pairs", "varied", "--anchor-weight", "1", "--steps", "200"]),
    # the anchor weight the select-half sweep (benchmarks/anchor_sweep.py) found best within the LMS budget
    "equalize-anchor0.3": ("equalize", ["--anchor-weight", "0.3", "--steps", "120"]),
    # the ablation of equalize-anchor0.3 (the anchored default's pairs and steps), anchor off
    "equalize-no-anchor": ("equalize", ["--pairs", "varied", "--anchor-weight", "0", "--steps", "120"]),
    "dpo": (
        "dpo",
        ["--anchor-weight", "0", "--check-every", "40", "--steps", "200"] + DPO_BEFORE_GNORM + DPO_BEFORE_MLP,
    ),
    "dpo-sft-anchor": (
        "dpo",
        ["--sft-weight", "0.1", "--anchor-weight", "0", "--check-every", "40", "--steps", "200"]
        + DPO_BEFORE_GNORM
        + DPO_BEFORE_MLP,
    ),
    # DPO with equalisation's retention anchor (KL on GSM8K-train/MMLU-dev text) and a finer checkpoint grid:
    # the unanchored run's in-budget step 40 and over-budget step 80 were 5.3 SS points apart
    "dpo-anchor0.3": (
        "dpo",
        ["--anchor-weight", "0.3", "--check-every", "20", "--steps", "120"]
        + DPO_BEFORE_GNORM
        + DPO_BEFORE_MLP,
    ),
    # the same, checked every 5 steps under the perplexity guard (selection's max_ppl_rise, default 3 %):
    # on Gemma-3-270M step 20 of every-20 was already at the LMS budget and 12 % up in GSM8K perplexity
    "dpo-anchor0.3-every5": (
        "dpo",
        ["--anchor-weight", "0.3", "--check-every", "5", "--steps", "120"]
        + DPO_BEFORE_GNORM
        + DPO_BEFORE_MLP,
    ),
    # the same over 200 steps (the learning rate decays over 200, not 120, steps)
    "dpo-anchor0.3-200": (
        "dpo",
        ["--anchor-weight", "0.3", "--check-every", "20", "--steps", "200"]
        + DPO_BEFORE_GNORM
        + DPO_BEFORE_MLP,
    ),
    # one config for both models: the rate scaled by the model's DPO gradient norm at initialisation
    # (SmolLM2 0.237 -> 5e-4 unchanged; Gemma-3-270M ~0.7 -> ~1.8e-4, the rate its select-half explorations
    # favoured) and a 40-step warm-up (on Gemma it cut the perplexity paid in the first steps)
    "dpo-gnorm-warmup40": ("dpo", GNORM_WARMUP40 + DPO_BEFORE_MLP),
    # the same, with the anchor reading all of each neutral text in 64-token pieces: with each text's first
    # 64 tokens (the default) it reads mostly GSM8K questions and 12 % of the solutions' tokens
    # (benchmarks/anchor_coverage.py), and on Gemma-3-270M GSM8K solutions lost the most perplexity
    # (measured: it did not help there; README)
    "dpo-gnorm-warmup40-chunks": ("dpo", GNORM_WARMUP40 + ["--anchor-crop", "chunks"] + DPO_BEFORE_MLP),
    # the same, with LoRA on the MLP projections only (gate/up/down; no attention): on Gemma-3-270M's select
    # half it moved SS as far as all projections at step 40 for 0.1 % neutral perplexity instead of 2.0 %
    "dpo-gnorm-warmup40-mlp": ("dpo", GNORM_WARMUP40 + ["--lr", "5e-4", "--lora-targets", *MLP_LORA_TARGETS]),
    # the same at twice the rate, checked every 40 steps: on both models' select halves the MLP-only run
    # stayed far inside the budgets at every check (LMS within 0.25, guard perplexity <= 1.0 %) and the 120
    # steps, not a budget, ended it; the calibration still scales Gemma-3-270M's rate (0.611 -> 4.1e-4)
    "dpo-mlp-lr1e-3": ("dpo", mlp_lr1e3(check_every=40)),
    # the same checked every 20 steps (the same training, seed and rate): on SmolLM2-135M's select half
    # step 80 kept SS 53.82 and step 120 reached 53.60 at an LMS drop 0.01 over the budget, so the checks
    # in between may hold a checkpoint nearer 50 within the budgets (decided on the select half only)
    "dpo-mlp-lr1e-3-every20": ("dpo", mlp_lr1e3(check_every=20)),
    # the default's ablation: the same run with the retention anchor off
    "dpo-mlp-lr1e-3-every20-no-anchor": ("dpo", mlp_lr1e3(check_every=20, anchor_weight="0")),
    # the default with another seed (LoRA initialisation, data order, the calibration's batches): how far
    # training noise alone moves the select-half SS that ranks the rows and the report-half numbers the
    # targets are read on (the default misses SmolLM2's SS target by 0.07 points; rows rank 0.04 apart)
    "dpo-mlp-lr1e-3-every20-seed1": ("dpo", mlp_lr1e3(check_every=20) + ["--seed", "1"]),
    # dpo-mlp-lr1e-3 with the role -> pronoun pairs added (debias/data/role_pairs.py: 240 training pairs
    # beside the 4,480 attribute pairs, on roles that are not Winogender's occupations): on Gemma-3-270M
    # the attribute pairs alone left Winogender's stereotype_corr where it was (0.675 -> 0.676)
    "dpo-mlp-lr1e-3-roles": (
        "dpo",
        mlp_lr1e3(check_every=40) + ["--pairs", "builtin+roles", "--heldout-pairs", "builtin+roles"],
    ),
    # the default with the role -> pronoun pairs as a tie term (debias/tie.py: equalised, not preferred;
    # 4 a step beside DPO's 16 attribute pairs, its initial gradient a quarter of DPO's): as DPO preferences
    # the role pairs moved Winogender on both models but cost LMS (and on Gemma-3-270M perplexity) by
    # pushing toward the flip
    "dpo-mlp-lr1e-3-every20-tie-roles": ("dpo", mlp_lr1e3(check_every=20) + ["--tie-pairs", "roles"]),
    # the same at tie weight 0.5: on both models the tie's held-out role |log-ratio| stopped falling from
    # step 60 at weight 0.25 (SmolLM2-135M 1.42 -> ~0.7 nats, Gemma-3-270M 3.46 -> ~1.85)
    "dpo-mlp-lr1e-3-every20-tie-roles-w0.5": (
        "dpo",
        mlp_lr1e3(check_every=20) + ["--tie-pairs", "roles", "--tie-weight", "0.5"],
    ),
    # the tie-roles row with gender's role-behaviour and physical-characteristic pairs beside the 4,480
    # (debias/data/gender_components.py, 800 pairs): tie-roles missed only SS gender halfway, on both models
    # (by 0.003 and 0.33 points), and every built-in gender pair is a trait
    "dpo-mlp-lr1e-3-every20-tie-roles-gc": ("dpo", mlp_lr1e3(check_every=20) + TIE_ROLES_GC),
    # the same over 200 steps (the rate decays over 200, not 120, steps): on SmolLM2-135M's select half the
    # 120-step run was within both budgets at every check and kept its last step at no LMS cost (+0.02), so
    # its length, not a budget, ended it
    "dpo-mlp-lr1e-3-every20-tie-roles-gc-200": ("dpo", mlp_lr1e3(check_every=20, steps=200) + TIE_ROLES_GC),
    "gee": ("gee", ["--select-task", "gee_stereoset_select", "--select-metric", "ss"]),
    # the same with the retention anchor at the weight DPO and equalisation use (0.3; decided before any
    # anchored GEE run, not tuned)
    "gee-anchor0.3": (
        "gee",
        ["--select-task", "gee_stereoset_select", "--select-metric", "ss", "--anchor-weight", "0.3"],
    ),
    "pcgu": ("pcgu", []),
    # the same with the retention anchor, its gradient on PCGU's selected units only, at DPO's and
    # equalisation's weight 0.3 (times the batch size: PCGU sums its pairs' gradients; decided before any
    # anchored PCGU run, not tuned)
    "pcgu-anchor0.3": ("pcgu", ["--anchor-weight", "0.3"]),
    # the same with the anchor acting on every unit any step has changed (the adapter's support), not only
    # the step's selection: with the step's selection, epoch 2's select-half LMS fell 5.5 points and the
    # anchor's KL reached 1.0 nats by epoch 3 (a unit moved once and not selected again is never pulled back)
    "pcgu-anchor0.3-changed": ("pcgu", ["--anchor-weight", "0.3", "--anchor-units", "changed"]),
    # training-free baseline (SentenceDebias/INLP-style projection), tuned on the select half like the rest
    "project": ("project", []),
}

KEY_METRICS = [
    ("gee_stereoset_report", "ss"),
    ("gee_stereoset_report", "ss_gender"),
    ("gee_stereoset_report", "lms"),
    ("gee_crows_pairs", "pct_stereotype"),
    ("gee_winogender", "stereotype_corr"),
    ("gee_mmlu_lite", "acc"),
    ("gee_gsm8k_ppl", "word_perplexity"),
]
BIAS_TASKS = ("gee_stereoset_report", "gee_crows_pairs", "gee_winogender")


def command(row: str, model: str, runs: Path) -> list[str]:
    method, flags = ROWS[row]
    out = runs / model / row
    return [
        "python", "cli.py", "train-and-eval", "--method", method, "--model", model,
        "--tasks", SUITE, "--out", str(out), *flags,
    ]  # fmt: skip


def check_flags(row: str, config: dict[str, Any]) -> None:
    """Each flag a row pins must equal what its stored run recorded, or its command would not reproduce it."""
    method, flags = ROWS[row]
    # a field the run's record predates ran with what runs ran with before the field existed
    config = {**config_defaults(config_class(method)()), **config}
    for flag, values in flag_values(flags).items():
        recorded = config.get(flag[2:].replace("-", "_"))
        if isinstance(recorded, list | tuple):  # a list field (--lora-targets a b c)
            same = [str(v) for v in recorded] == values
        else:
            numeric = isinstance(recorded, int | float) and not isinstance(recorded, bool)
            value = values[0] if len(values) == 1 else None
            same = value is not None and (
                str(recorded) == value or (numeric and float(recorded) == float(value))
            )
        if not same:
            shown = " ".join(values)
            raise SystemExit(f"leaderboard row {row}: {flag} {shown} but its run recorded {recorded!r}")


def flag_values(flags: list[str]) -> dict[str, list[str]]:
    """``["--a", "1", "--b", "x", "y"]`` -> ``{"--a": ["1"], "--b": ["x", "y"]}`` (a flag takes every value
    up to the next flag, as argparse's ``nargs="+"`` does)."""
    grouped: dict[str, list[str]] = {}
    current = None
    for token in flags:
        if token.startswith("--"):
            current = grouped.setdefault(token, [])
        elif current is None:
            raise ValueError(f"flags must start with a flag, got {token!r}")
        else:
            current.append(token)
    return grouped


def _row(comparison: dict[str, Any], task: str, metric: str) -> dict[str, Any] | None:
    return next((c for c in comparison["tasks"].get(task, []) if c["metric"] == metric), None)


def halfway(row: dict[str, Any] | None) -> dict[str, Any]:
    """Whether the metric moved at least half its distance to 50, without crossing far past it."""
    if row is None:
        return {"met": None, "why": "not measured"}
    moved = abs(row["base"] - 50.0) - abs(row["new"] - 50.0)
    needed = abs(row["base"] - 50.0) / 2
    return {
        "base": row["base"],
        "new": row["new"],
        "moved_toward_50": moved,
        "needed": needed,
        "share_of_the_way": moved / (2 * needed) if needed else None,
        "crossed_50": (row["base"] - 50.0) * (row["new"] - 50.0) < 0,
        "met": moved >= needed,
    }


def acceptance(comparison: dict[str, Any]) -> dict[str, Any]:
    """Issue 13's checks on the held-out suite, each with the numbers it was decided on."""
    out: dict[str, Any] = {
        "ss_overall_halfway": halfway(_row(comparison, "gee_stereoset_report", "ss")),
        "ss_gender_halfway": halfway(_row(comparison, "gee_stereoset_report", "ss_gender")),
    }
    lms = _row(comparison, "gee_stereoset_report", "lms")
    out["lms_drop_at_most_1"] = {"delta": lms and lms["delta"], "met": bool(lms) and lms["delta"] >= -1.0}
    crows = _row(comparison, "gee_crows_pairs", "pct_stereotype")
    out["crows_closer_to_50_beyond_ci"] = {
        "base": crows and crows["base"],
        "new": crows and crows["new"],
        "ci": crows and [crows["ci_low"], crows["ci_high"]],
        "met": bool(crows) and bool(crows["better_beyond_ci"]),
    }
    wino = _row(comparison, "gee_winogender", "stereotype_corr")
    out["winogender_corr_lower"] = {
        "base": wino and wino["base"],
        "new": wino and wino["new"],
        "ci": wino and [wino["ci_low"], wino["ci_high"]],
        "met": bool(wino) and wino["new"] < wino["base"],
    }
    mmlu = _row(comparison, "gee_mmlu_lite", "acc")
    out["mmlu_lite_not_lower_beyond_ci"] = {
        "delta": mmlu and mmlu["delta"],
        "ci": mmlu and [mmlu["ci_low"], mmlu["ci_high"]],
        "met": bool(mmlu) and not mmlu["worse_beyond_ci"],
    }
    ppl = _row(comparison, "gee_gsm8k_ppl", "word_perplexity")
    rise = ppl and (ppl["new"] / ppl["base"] - 1.0)
    out["gsm8k_word_perplexity_up_at_most_3pct"] = {"rise": rise, "met": bool(ppl) and rise <= 0.03}
    worse = [
        f"{task}:{c['metric']}"
        for task in BIAS_TASKS
        for c in comparison["tasks"].get(task, [])
        if c["worse_beyond_ci"]
    ]
    out["no_bias_metric_worse_beyond_ci"] = {"worse": worse, "met": not worse}
    return out


def summarise(row: str, folder: Path, cmd: list[str]) -> dict[str, Any]:
    run = run_folder.load(folder)
    selection = run.selection or {}
    unit = next((k[len("chosen_") :] for k in selection if k.startswith("chosen_")), "step")
    chosen = selection.get(f"chosen_{unit}")
    picked = selection.get(f"{unit}s", {}).get(str(chosen), {})
    base_select = selection.get("base", {})
    shown = ("ss", "ss_gender", "lms", PPL_KEY)
    return {
        "row": row,
        "method": run.config.get("method"),
        "config": run.config.get("config"),
        "command": shlex.join(cmd),
        "select": {
            "metric": selection.get("metric"),
            "unit": unit,
            "chosen": chosen,
            "why": selection.get("why"),
            "max_ppl_rise": selection.get("max_ppl_rise"),  # absent: selected before the perplexity guard
            # 1: annotation-stripped GSM8K text (before 2026-12-06's version 2, gee_gsm8k_ppl's own form)
            "ppl_guard_version": (
                selection.get("ppl_guard_version", 1) if selection.get("max_ppl_rise") is not None else None
            ),
            "base": {k: base_select.get(k) for k in shown},
            "kept": {k: picked.get(k) for k in shown},
            "candidates": {
                label: {k: v.get(k) for k in shown} for label, v in selection.get(f"{unit}s", {}).items()
            },
        },
        "heldout": {
            f"{task}:{metric}": r and {k: r[k] for k in ("base", "new", "delta", "ci_low", "ci_high")}
            for task, metric in KEY_METRICS
            for r in [_row(run.comparison, task, metric)]
        },
        "acceptance": acceptance(run.comparison),
        "wall_s": {phase: p.get("wall_s") for phase, p in run.run["phases"].items()},
    }


def best(rows: list[dict[str, Any]]) -> str | None:
    """Decided on the select half only: nearest SS 50 within the LMS budget (and, for rows selected under
    the perplexity guard, the neutral-perplexity budget), then the smaller LMS drop."""

    eligible = [r for r in rows if _within(r)]
    return min(eligible, key=_nearest_50)["row"] if eligible else None


def _nearest_50(r: dict[str, Any]) -> tuple[float, float]:
    kept, base = r["select"]["kept"], r["select"]["base"]
    return (abs(kept["ss"] - 50.0), base["lms"] - kept["lms"])


def _within(r: dict[str, Any], guard_required: bool = False) -> bool:
    """The kept checkpoint within the LMS budget and, where the row was selected under the perplexity guard
    (or ``guard_required``), within the guard's budget on the select side."""
    kept, base, guard = r["select"]["kept"], r["select"]["base"], r["select"].get("max_ppl_rise")
    if kept.get("ss") is None or kept.get("lms") is None or base["lms"] - kept["lms"] > 1.0:
        return False
    if guard is None:
        return not guard_required
    rise = _select_ppl_rise(r["select"])
    return rise is not None and rise <= guard


def default_row(rows: list[dict[str, Any]], models: tuple[str, ...] = MODELS) -> dict[str, Any]:
    """The row the defaults follow, decided on select halves only (2026-12-06, before the report half of
    any row run under guard version 2 was read): among rows run on every model in ``models`` whose kept
    checkpoint is within the LMS budget *and* the perplexity guard's budget (measured, not assumed) on
    each model's select half, the one nearest SS 50 on the first model's select half (then the smaller
    LMS drop). The issue asks for one method and config on both models, not tuned per model; a default
    whose run on the second model has no checkpoint within the budgets is not one a user can run there.
    With no such row: ``row`` None, and the caller keeps what it had."""
    by_name: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_name.setdefault(r["row"], {})[r["model"]] = r
    eligible = [
        runs[models[0]]
        for runs in by_name.values()
        if all(m in runs and _within(runs[m], guard_required=True) for m in models)
    ]
    if not eligible:
        return {"row": None, "why": f"no row within both budgets on the select halves of {', '.join(models)}"}
    chosen = min(eligible, key=_nearest_50)
    kept = chosen["select"]["kept"]["ss"]
    return {
        "row": chosen["row"],
        "why": (
            f"{len(eligible)} row(s) within both budgets on the select halves of {', '.join(models)}; "
            f"{chosen['row']} is nearest 50 on {models[0]}'s (SS {kept:.2f})"
        ),
        "eligible": sorted(r["row"] for r in eligible),
    }


def _pair(heldout: dict[str, Any], name: str, digits: int = 2, scale: float = 1.0) -> str:
    v = heldout.get(name)
    return f"{v['base'] * scale:.{digits}f} → {v['new'] * scale:.{digits}f}" if v else "–"


def _number(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _rise(rise: float | None) -> str:
    """A perplexity rise as a percentage, or as a factor once it has more than doubled."""
    if rise is None:
        return "–"
    return f"×{format(1 + rise, '.2g').replace('e+', 'e')}" if rise >= 1 else f"{rise * 100:+.1f} %"


#: what a row's checkpoints are, for rows stored before the unit was recorded
_UNITS = {"project": "rank", "pcgu": "epoch"}


def _chosen(r: dict[str, Any]) -> str:
    unit = r["select"].get("unit") or _UNITS.get(r["method"], "step")
    return f"{r['select']['chosen']}" if unit == "step" else f"{unit} {r['select']['chosen']}"


def _select_ppl_rise(select: dict[str, Any]) -> float | None:
    """The kept checkpoint's neutral-perplexity rise (the guard's measure), when it was measured."""
    kept, base = select["kept"].get(PPL_KEY), select["base"].get(PPL_KEY)
    return kept / base - 1.0 if kept is not None and base else None


def _share(check: dict[str, Any]) -> str:
    """A halfway check's share of the way to 50, with enough digits that a miss never reads as 50 %."""
    share = check.get("share_of_the_way")
    if share is None:
        return "not measured"
    digits = 1
    while digits < 4 and not check["met"] and round(share * 100, digits) >= 50.0:
        digits += 1
    shown = f"{share * 100:.{digits}f} % of the way"
    if check.get("crossed_50"):
        return shown + " (crossed 50)"
    return shown + (" (away from 50)" if share < 0 else "")


def missed(checks: dict[str, Any]) -> str:
    """Issue 13's report-half targets a row misses, each with how close it came; then how many bias
    metrics got worse beyond their CI (allowed only where the README names them and says why)."""
    out = []
    for key, label in (("ss_overall_halfway", "SS"), ("ss_gender_halfway", "SS gender")):
        if not checks[key]["met"]:
            out.append(f"{label} {_share(checks[key])}")
    lms = checks["lms_drop_at_most_1"]
    if not lms["met"]:
        out.append(f"LMS {_number(lms['delta'], '+.2f')}")
    if not checks["crows_closer_to_50_beyond_ci"]["met"]:
        crows = checks["crows_closer_to_50_beyond_ci"]
        closer = crows["new"] is not None and abs(crows["new"] - 0.5) < abs(crows["base"] - 0.5)
        out.append("CrowS closer within CI" if closer else "CrowS not closer")
    if not checks["winogender_corr_lower"]["met"]:
        out.append("Winogender r not lower")
    if not checks["mmlu_lite_not_lower_beyond_ci"]["met"]:
        out.append("MMLU lower beyond CI")
    ppl = checks["gsm8k_word_perplexity_up_at_most_3pct"]
    if not ppl["met"]:
        out.append(f"GSM8K ppl {_rise(ppl['rise'])}")
    verdict = "missed: " + "; ".join(out) if out else "all met"
    worse = len(checks["no_bias_metric_worse_beyond_ci"]["worse"])
    return verdict + (f" (worse beyond CI: {worse} bias metric{'s' * (worse != 1)})" if worse else "")


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| row | select-half SS: base → kept (step; guard's ppl Δ) | report SS | report SS gender | LMS Δ "
        "| CrowS % | Winogender r | MMLU Δ (pt) | GSM8K ppl Δ | issue-13 targets (report half) | command |"
    )
    lines = [head, "|---|---|---|---|---:|---|---|---:|---:|---|---|"]
    for r in rows:
        h, s = r["heldout"], r["select"]
        lms, mmlu = h.get("gee_stereoset_report:lms"), h.get("gee_mmlu_lite:acc")
        ppl = h.get("gee_gsm8k_ppl:word_perplexity")
        cells = [
            r["row"],
            f"{_number(s['base'].get('ss'), '.2f')} → {_number(s['kept'].get('ss'), '.2f')} ({_chosen(r)}"
            + (f"; ppl {_rise(rise)})" if (rise := _select_ppl_rise(s)) is not None else ")"),
            _pair(h, "gee_stereoset_report:ss"),
            _pair(h, "gee_stereoset_report:ss_gender"),
            _number(lms and lms["delta"], "+.2f"),
            _pair(h, "gee_crows_pairs:pct_stereotype", scale=100.0),
            _pair(h, "gee_winogender:stereotype_corr", 3),
            _number(mmlu and mmlu["delta"] * 100, "+.2f"),
            _rise(ppl and ppl["new"] / ppl["base"] - 1),
            missed(r["acceptance"]),
            f"`{r['command']}`",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_COMMAND_CELL = re.compile(r" \| `(python cli\.py train-and-eval [^`]*)` \|$")


def sync_readme(text: str, rows: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """The README with every leaderboard line's cells after the first (the row's hand-written note)
    regenerated from ``rows``, matched by the command cell; and the rows no line holds yet (to be added
    by hand, with their note). Minus signs as the README writes them (U+2212)."""
    by_command = {r["command"]: r for r in rows}
    seen, lines = set(), []
    for line in text.split("\n"):
        match = _COMMAND_CELL.search(line)
        if line.startswith("| ") and match and match.group(1) in by_command:
            r = by_command[match.group(1)]
            cells = table([r]).split("\n")[2].split(" | ")
            numbers = [re.sub(r"(?<![\w.])-(?=\d)", "\u2212", cell) for cell in cells[1:-1]]
            line = " | ".join([line.split(" | ")[0], *numbers, cells[-1]])
            seen.add(r["command"])
        lines.append(line)
    missing = [f"{r['model']}: {r['row']}" for r in rows if r["command"] not in seen]
    return "\n".join(lines), missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)}")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--runs", type=Path, default=Path("runs/leaderboard"))
    parser.add_argument("--collect-only", action="store_true", help="summarise finished runs, train none")
    parser.add_argument(
        "--readme",
        type=Path,
        help="regenerate this README's leaderboard lines from the results (each keeps its note)",
    )
    args = parser.parse_args()
    names = [r for r in args.rows.split(",") if r]
    unknown = [r for r in names if r not in ROWS]
    if unknown:
        parser.error(f"unknown row(s) {', '.join(unknown)}; known: {', '.join(ROWS)}")
    results_path = RESULTS / "leaderboard.json"
    existing = json.loads(results_path.read_text()) if results_path.is_file() else {"rows": []}
    rows = {(r["model"], r["row"]): r for r in existing["rows"]}
    for (model, name), r in rows.items():  # a stored row shows today's command, checked against its config
        if name in ROWS:
            check_flags(name, r["config"])
            r["command"] = shlex.join(command(name, model, args.runs))
        # rows stored before the guard's version was recorded were selected under version 1 (or no guard)
        guarded = r["select"].get("max_ppl_rise") is not None
        r["select"].setdefault("ppl_guard_version", 1 if guarded else None)
    for name in names:
        cmd = command(name, args.model, args.runs)
        folder = args.runs / args.model / name
        if not args.collect_only:
            print("$", shlex.join(cmd), file=sys.stderr, flush=True)
            subprocess.run([sys.executable, *cmd[1:]], cwd=REPO, check=True)
        if not (folder / "results" / "comparison.json").is_file():
            print(f"{folder}: not finished; skipped", file=sys.stderr)
            continue
        rows[(args.model, name)] = {"model": args.model, **summarise(name, folder, cmd)}
    ordered = sorted(rows.values(), key=lambda r: (r["model"], list(ROWS).index(r["row"])))
    by_model: dict[str, str | None] = {}
    for model in sorted({r["model"] for r in ordered}):
        by_model[model] = best([r for r in ordered if r["model"] == model])
    default = default_row(ordered)
    write_json_atomic(
        results_path,
        {"suite": SUITE, "best_by_select_half": by_model, "default_row": default, "rows": ordered},
    )
    print(f"default row (both models' select halves): {default['row']} ({default['why']})")
    if args.readme:
        text, missing = sync_readme(args.readme.read_text(encoding="utf-8"), ordered)
        write_text_atomic(args.readme, text)
        for row in missing:
            print(f"{args.readme}: no line for {row} yet (add it with its note)", file=sys.stderr)
    for model in sorted(by_model):
        print(f"\n{model} (best on the select half: {by_model[model]})")
        print(table([r for r in ordered if r["model"] == model]))


if __name__ == "__main__":
    main()
