"""debias-harness command line: a thin layer that parses arguments and calls into ``debias``.

Every expected failure (bad model spec, missing or altered data file, malformed input) is reported as one
``error: ...`` line with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", help="folder with the upstream benchmark files (default: $DEBIAS_DATA_DIR)"
    )


def cmd_model_path(args: argparse.Namespace) -> int:
    from debias.models import resolve

    print(resolve(args.spec))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from debias import evaluation, pipeline, run_folder

    request = evaluation.EvalRequest(
        tasks=[t for t in args.tasks.split(",") if t],
        limit=args.limit,
        batch_size=args.batch_size,
        seed=args.seed,
        log_samples=args.out is not None,
    )
    results = pipeline.evaluate_spec(args.model, request, args.adapter)
    if not results:  # another process of an `accelerate launch`: the main process reports
        return 0
    if args.out:
        out = Path(args.out)
        run_folder.write_results(results, out / "results.json", out / "samples")
        print(f"wrote {out / 'results.json'}", file=sys.stderr)
    for task, metrics in evaluation.summary(results).items():
        for name, value in sorted(metrics.items()):
            print(f"{task}\t{name}\t{value:.6g}")
    return 0


def _terminate_as_interrupt() -> None:
    """SIGTERM (what schedulers and ``kill`` send) takes the Ctrl-C path: checkpoint, then stop.

    Every training loop checkpoints on KeyboardInterrupt; without this a SIGTERM would end the process
    at once and lose the steps since the last checkpoint.
    """
    import signal

    def interrupt(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


# What an interrupted `train` keeps, per method: GEE and equalize finish the step and checkpoint it;
# PCGU checkpoints whole epochs and DPO every --check-every steps (TRL's loop has no step-end hook here).
_KEPT_ON_INTERRUPT = {
    "gee": "checkpoint saved at the end of the step in progress",
    "equalize": "checkpoint saved at the end of the step in progress",
    "pcgu": "the last finished epoch's checkpoint is kept (the epoch in progress is redone on --resume)",
    "dpo": "the last checkpoint (every --check-every steps) is kept; later steps are redone on --resume",
}


def cmd_train(args: argparse.Namespace) -> int:
    from debias.config_cli import dataclass_from_args
    from debias.methods import config_class
    from debias.train_and_eval import train_adapter

    cfg = dataclass_from_args(config_class(args.method), args, args.config)
    _terminate_as_interrupt()
    try:
        summary = train_adapter(args.method, cfg, Path(args.out), resume=args.resume)
    except KeyboardInterrupt:
        print(
            f"interrupted: {_KEPT_ON_INTERRUPT.get(args.method, 'the last checkpoint is kept')}; "
            "continue with the same command plus --resume",
            file=sys.stderr,
        )
        return 130
    before, after = summary.get("probe_before") or {}, summary.get("probe_after") or {}
    if "gap" in before and "gap" in after:  # GEE's entropy probe
        print(f"held-out entropy gap {before['gap']:.4f} -> {after['gap']:.4f} ({summary['steps']} steps)")
    elif "mean_abs_delta" in before and "mean_abs_delta" in after:  # equalisation's pair probe
        print(
            f"held-out pair |log-ratio| {before['mean_abs_delta']:.4f} -> {after['mean_abs_delta']:.4f} "
            f"({summary['steps']} steps)"
        )
    else:
        print(f"{args.method}: {summary['steps']} steps")
    print(f"adapter: {Path(args.out) / 'adapter'}")
    return 0


def cmd_train_and_eval(args: argparse.Namespace) -> int:
    from debias import train_and_eval as job
    from debias.config_cli import dataclass_from_args
    from debias.methods import config_class, recipe_class
    from reports.render import write_report

    preset = recipe_class(args.method).quick if args.quick else None
    cfg = dataclass_from_args(config_class(args.method), args, args.config, preset=preset)
    limit = args.limit if args.limit is not None else (job.QUICK_LIMIT if args.quick else None)
    spec = job.RunSpec(
        method=args.method,
        tasks=[t for t in (args.tasks or job.DEFAULT_SUITE).split(",") if t],
        limit=limit,
        eval_seed=args.eval_seed,
        batch_size=args.eval_batch_size,
        iters=args.iters if args.iters is not None else (job.QUICK_ITERS if args.quick else 1000),
        quick=args.quick,
    )
    out = Path(args.out or f"runs/{args.method}{'-quick' if args.quick else ''}")
    _terminate_as_interrupt()
    try:
        report = job.train_and_eval(spec, cfg, out, render=write_report)
    except KeyboardInterrupt:
        print(
            f"interrupted: {out} keeps every finished phase; run the same command again to continue",
            file=sys.stderr,
        )
        return 130
    print(report)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from reports.render import write_report

    out = Path(args.out) if args.out else Path(args.runs[0]) / "report.html"
    print(write_report([Path(r) for r in args.runs], out))
    return 0


def cmd_stereoset_score(args: argparse.Namespace) -> int:
    from harness_tasks.stereoset.scoring import main as score_main

    argv = ["--gold", args.gold, "--predictions", args.predictions]
    if args.output:
        argv += ["--output", args.output]
    return score_main(argv)


def _add_method_arguments(parser: argparse.ArgumentParser, method: str) -> None:
    from debias.config_cli import add_dataclass_arguments
    from debias.methods import DEFAULT_METHOD, METHODS, config_class

    parser.add_argument("--method", choices=sorted(METHODS), default=DEFAULT_METHOD)
    parser.add_argument("--config", help="YAML file of method config fields (flags override it)")
    # Methods have different (and overlapping) fields, so only the chosen method's flags are registered:
    # main() reads --method from argv before building the parser (--help lists the chosen method's).
    if method in METHODS:
        group = parser.add_argument_group(f"{method} (method config; see README)")
        add_dataclass_arguments(group, config_class(method))


def _method_in(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "--method" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--method="):
            return arg.split("=", 1)[1]
    from debias.methods import DEFAULT_METHOD

    return DEFAULT_METHOD


def cmd_probe(args: argparse.Namespace) -> int:
    from debias import probe

    prompts = probe.read_prompts(Path(args.prompts)) if args.prompts else list(probe.DEFAULT_PROMPTS)
    runner = probe.Probe(args.model, args.adapter or [], max_new_tokens=args.max_new_tokens, seed=args.seed)
    if args.interactive:
        return probe.interactive(runner)
    generations = runner.run(prompts)
    if args.out:
        probe.write_jsonl(generations, Path(args.out))
        print(f"wrote {args.out}", file=sys.stderr)
    for g in generations:
        print(f"[{g.model} | {g.mode}] {g.prompt}{g.text}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from debias import pipeline

    print(pipeline.merge(args.model, args.adapter, args.out))
    return 0


def build_parser(method: str = "equalize") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="debias-harness", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="also load pickle weight files (.bin/.pt), which can run code: only from a source you trust",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("model-path", help="resolve (and cache) a model; print its local checkpoint folder")
    p.add_argument("spec", nargs="?", default="smollm2-135m", help="alias, HF id, checkpoint folder or .gguf")
    p.set_defaults(func=cmd_model_path)

    p = sub.add_parser("eval", help="run harness tasks on a model (optionally with an adapter)")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--adapter", help="peft adapter folder to apply on top of --model")
    p.add_argument("--tasks", default="gee_crows_pairs", help="comma-separated task or group names")
    p.add_argument("--limit", type=float, help="documents per task (an int) or a fraction (<1)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--out", help="folder for results.json and samples/")
    _add_data_dir(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train", help="train a debiasing adapter (flags = the method's config fields)")
    p.add_argument("--out", required=True, help="run folder (adapter/, config.json, metrics.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    _add_method_arguments(p, method)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "train-and-eval",
        help="train an adapter, evaluate base and debiased on a suite, write results and report.html",
    )
    p.add_argument("--out", help="run folder (default: runs/<method>[-quick]); rerun to resume")
    p.add_argument(
        "--tasks",
        help="suite or comma-separated tasks (default: gee_heldout, what no method trains or selects on)",
    )
    p.add_argument("--limit", type=float, help="documents per task (an int) or a fraction (<1)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 16 documents per benchmark (shared by a group's tasks), a few steps, 200 resamples",
    )
    p.add_argument("--iters", type=int, help="bootstrap resamples per metric (default 1000; --quick 200)")
    p.add_argument("--eval-seed", type=int, default=1234, help="evaluation seed (same for base and debiased)")
    p.add_argument("--eval-batch-size", type=int, default=16, help="evaluation batch size")
    _add_data_dir(p)
    _add_method_arguments(p, method)
    p.set_defaults(func=cmd_train_and_eval)

    p = sub.add_parser("merge", help="write base + adapter (LoRA or PCGU) as a plain transformers checkpoint")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--adapter", required=True, help="adapter folder (peft LoRA or PCGU sparse)")
    p.add_argument("--out", required=True, help="folder for the merged checkpoint")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("probe", help="generate from the base model and each adapter, side by side")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--adapter", action="append", help="adapter folder (repeat for several)")
    p.add_argument("--prompts", help="a text file (one prompt per line) or JSONL/CSV/parquet with 'prompt'")
    p.add_argument("--interactive", action="store_true", help="read prompts from standard input, one a line")
    p.add_argument("--out", help="write the generations as JSONL here (batch mode)")
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--seed", type=int, default=0, help="sampling seed (the same for every model)")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("report", help="render one HTML report comparing one or more train-and-eval runs")
    p.add_argument("runs", nargs="+", help="run folders (the first run's base is the base column)")
    p.add_argument("--out", help="HTML file (default: <first run>/report.html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("stereoset-score", help="official StereoSet SS/LMS/ICAT from a predictions file")
    p.add_argument("--gold", required=True, help="StereoSet dev.json")
    p.add_argument("--predictions", required=True, help='{"intrasentence":[{"id","score"}], ...}')
    p.add_argument("--output", help="also write the JSON result here")
    p.set_defaults(func=cmd_stereoset_score)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(_method_in(argv)).parse_args(argv)
    if getattr(args, "limit", None) is not None and args.limit >= 1:
        args.limit = int(args.limit)
    from debias.models import ModelResolutionError
    from debias.run_folder import RunFolderError as ReportError
    from harness_tasks._data import DataFileError, set_data_dir

    if args.allow_pickle:
        from debias import untrusted

        untrusted.allow_pickle()
    try:
        if getattr(args, "data_dir", None):
            set_data_dir(args.data_dir)
        return args.func(args)
    except (ModelResolutionError, DataFileError, ReportError, ValueError) as exc:
        if os.environ.get("DEBIAS_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or os.environ.get("DEBIAS_DEBUG"):
            raise
        # the write went to a temp file that was never renamed: what was there before is untouched
        print(f"error: {exc.filename}: {exc.strerror}; the file was not replaced", file=sys.stderr)
        return 1
    except Exception as exc:
        from debias.training import TrainingDiverged  # imported here: torch is loaded by now if it ran

        if not isinstance(exc, TrainingDiverged) or os.environ.get("DEBIAS_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)  # not the user's input: a run that cannot go on
        return 1


if __name__ == "__main__":
    sys.exit(main())
