"""Equalisation's retention-anchor weight against select-half SS and LMS (issue 13: what limits it).

One ``cli.py train --method equalize`` per anchor weight (default pairs, 120 steps, a checkpoint every
40), each scored on ``gee_stereoset_select`` by the shared select phase — the split hyper-parameters are
chosen on; nothing here reads the report half. A run folder that already holds ``selection.json`` is
read, not retrained. Writes benchmarks/results/anchor_sweep.json (or ``--out``) and prints one row
per checkpoint. ``--mass-weights`` adds the pair-mass term (``--mass-weight``) to each anchor weight,
``--cf-weights`` the counterfactual distribution-matching term (``--cf-weight``), and ``--pair-weights``
scales the pair loss (0: the other terms alone).

    DEBIAS_DATA_DIR=../shared/data python benchmarks/anchor_sweep.py [--weights 0 0.3 1] [--steps 120]
    DEBIAS_DATA_DIR=../shared/data python benchmarks/anchor_sweep.py --weights 0 0.3 --mass-weights 1 \
        --out benchmarks/results/mass_sweep.json
    DEBIAS_DATA_DIR=../shared/data python benchmarks/anchor_sweep.py --weights 0.3 --cf-weights 10 \
        --cf-losses jsd base_mixture --out benchmarks/results/cf_sweep.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = Path(__file__).parent / "results" / "anchor_sweep.json"
KEYS = ("ss", "ss_gender", "lms")
PROBE_KEYS = ("heldout_mean_abs_delta", "heldout_mean_log_mass_shift", "heldout_anchor_kl", "heldout_cf_jsd")


def run_name(
    weight: float, steps: int, mass: float = 0.0, cf: float = 0.0, pair: float = 1.0, cf_loss: str = "jsd"
) -> str:
    anchor = "no-anchor" if weight == 0 else f"anchor{weight:g}"
    name = f"equalize-varied-{anchor}-{steps}"
    name = name if mass == 0 else f"{name}-mass{mass:g}"
    name = name if cf == 0 else f"{name}-cf{'mix' if cf_loss == 'base_mixture' else ''}{cf:g}"
    return name if pair == 1 else f"{name}-pair{pair:g}"


def main() -> None:
    from debias import run_folder
    from debias.atomic import write_json_atomic

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.3])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--check-every", type=int, default=40)
    parser.add_argument("--mass-weights", type=float, nargs="+", default=[0.0])
    parser.add_argument("--cf-weights", type=float, nargs="+", default=[0.0])
    parser.add_argument("--pair-weights", type=float, nargs="+", default=[1.0])
    parser.add_argument("--cf-losses", choices=("jsd", "base_mixture"), nargs="+", default=["jsd"])
    parser.add_argument("--runs", default=str(REPO / "runs" / "ablation"))
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()

    rows = []
    grid = [
        (w, m, c, p, kind)
        for w in args.weights
        for m in args.mass_weights
        for c in args.cf_weights
        for p in args.pair_weights
        for kind in (args.cf_losses if c else ["jsd"])
    ]
    for weight, mass, cf, pair, cf_loss in grid:
        folder = Path(args.runs) / run_name(weight, args.steps, mass, cf, pair, cf_loss)
        if not (folder / "selection.json").is_file():
            command = [sys.executable, str(REPO / "cli.py"), "train", "--method", "equalize"]
            command += ["--anchor-weight", f"{weight:g}", "--steps", str(args.steps)]
            command += ["--mass-weight", f"{mass:g}"] if mass else []
            command += ["--cf-weight", f"{cf:g}", "--cf-loss", cf_loss] if cf else []
            command += ["--pair-weight", f"{pair:g}"] if pair != 1 else []
            command += ["--check-every", str(args.check_every), "--out", str(folder)]
            subprocess.run(command + (["--resume"] if folder.exists() else []), check=True)
        selection = json.loads((folder / "selection.json").read_text())
        config = json.loads((folder / "config.json").read_text())["config"]
        base = {k: selection["base"][k] for k in KEYS}
        # the training-side probe at each check (held-out pairs of other frames), beside the select scores
        checks = {
            record["step"]: {k: v for k, v in record.items() if k in PROBE_KEYS}
            for record in run_folder.read_jsonl(folder / run_folder.METRICS)
            if record.get("check")
        }
        for step, metrics in selection["steps"].items():
            rows.append(
                {
                    "anchor_weight": weight,
                    "mass_weight": mass,
                    "cf_weight": cf,
                    "cf_loss": cf_loss if cf else None,
                    "pair_weight": pair,
                    "step": int(step),
                    **{k: metrics[k] for k in KEYS},
                    "lms_drop": base["lms"] - metrics["lms"],
                    "kept": int(step) == selection["chosen_step"],
                    **checks.get(int(step), {}),
                }
            )
        kept = f"kept step {selection['chosen_step']} ({selection['why']})"
        print(f"anchor weight {weight:g}, mass {mass:g}, cf {cf:g} ({cf_loss}), pair {pair:g}: {kept}")
        assert config["anchor_weight"] == weight and config["steps"] == args.steps
        assert config.get("mass_weight", 0.0) == mass and config.get("cf_weight", 0.0) == cf
        assert config.get("pair_weight", 1.0) == pair
        assert not cf or config.get("cf_loss", "jsd") == cf_loss
    write_json_atomic(Path(args.out), {"select_task": "gee_stereoset_select", "base": base, "rows": rows})
    print(f"base: SS {base['ss']:.2f}, SS gender {base['ss_gender']:.2f}, LMS {base['lms']:.2f}")
    for r in rows:
        kept = "  kept" if r["kept"] else ""
        print(
            f"weight {r['anchor_weight']:<4g} mass {r['mass_weight']:<3g} cf {r['cf_weight']:<3g} "
            f"{r['cf_loss'] or '':<12} "
            f"pair {r['pair_weight']:<3g} step {r['step']:>4}: "
            f"SS {r['ss']:.2f}  SS gender "
            f"{r['ss_gender']:.2f}  LMS {r['lms']:.2f} (drop {r['lms_drop']:+.2f}){kept}"
        )


if __name__ == "__main__":
    main()
