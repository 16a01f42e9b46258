"""The run folder's contract: which file holds what, and the only code that reads or writes them.

    runs/NAME/
      run.json                  spec + finished phases (RunState)
      config.json               method, resolved config, model fingerprint, training summary
      metrics.jsonl             one line per training step
      checkpoints/<name>/       the method's resumable state (GEE: step-N, PCGU: epoch-N)
      selection.json            candidates scored on the selection task, and the one kept
      adapter/                  the kept adapter (peft LoRA, or a sparse adapter)
      results/{base,debiased,comparison}.json
      results/generations.jsonl  the generation probe: base and adapter, greedy and sampled
      samples/{base,debiased}/<task>.json
      report.html

Methods, the main job, benchmarks and the report all go through this module, so the layout is written
down once. It imports nothing above ``debias.atomic`` and ``debias.models``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from debias import launch
from debias.atomic import write_json_atomic

RUN = "run.json"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
SELECTION = "selection.json"
ADAPTER = "adapter"
RESULTS = "results"
SAMPLES = "samples"
REPORT = "report.html"
GENERATIONS = "generations.jsonl"


class RunFolderError(ValueError):
    """A run folder that cannot be read (missing or unreadable file) or reused: one line naming it."""


@contextmanager
def exclusive(path: Path | str, what: str = "run") -> Iterator[None]:
    """Hold the run folder ``path`` for this process: a second process on it fails with one line.

    The lock is an ``flock`` on ``.<name>.lock`` *beside* the folder, so that taking it writes nothing
    into a folder that validation may still refuse, and the kernel releases it when the holder dies
    (``kill -9`` included): a stale lock never blocks a rerun. The lock file is left in place (deleting
    it would let two processes hold locks on different inodes).

    Under a distributed launch (``accelerate launch`` / torchrun) the job is every rank together: rank 0
    holds the lock for all of them, the other ranks (which never write the folder) take none.
    """
    import fcntl

    if launch.is_secondary():
        yield
        return
    folder = Path(path)
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = folder.parent / f".{folder.name}.lock"
    handle = open(lock, "a+")  # noqa: SIM115  (held open for the lock's lifetime)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunFolderError(
            f"{folder}: in use by {holder}; wait for it to finish, or choose another --out"
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{what} (pid {os.getpid()})")
        handle.flush()
        check_contained(folder)
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def component(name: str, what: str, where: Path | str) -> str:
    """``name`` as one plain path component, else a one-line error: names that come from files (task
    names in result files, checkpoint names) must not lead a write or a read out of the run folder."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise RunFolderError(f"{where}: {what} {name!r}: not a plain file name (it could leave the folder)")
    return name


def check_contained(path: Path | str) -> None:
    """Refuse a run folder holding a symlink that leads out of it: every write into the folder (results,
    checkpoints, the report) would otherwise land wherever the link points, and reads would take files
    from elsewhere. Links that stay inside the folder are fine."""
    folder = Path(path)
    if not folder.is_dir():
        return
    root = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(folder):  # does not follow links
        for name in dirnames + filenames:
            entry = Path(dirpath) / name
            if entry.is_symlink() and not entry.resolve().is_relative_to(root):
                raise RunFolderError(
                    f"{entry}: a symlink to {entry.resolve()}, outside the run folder; remove it, "
                    "or choose another --out"
                )


def jsonable(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists): what a stored setting compares against."""
    return json.loads(json.dumps(obj, default=list))


def settings_difference(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``"field: old -> new"`` per setting that differs: the one-line reason a run folder is refused."""
    return [
        f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
    ]


def with_defaults(recorded: dict[str, Any], defaults: dict[str, Any] | None) -> dict[str, Any]:
    """``recorded`` plus the settings added since it was written, at their defaults.

    A run that predates a setting ran as that setting's default (a new setting defaults to the old
    behaviour), so adding one to a config class does not make every existing run folder unresumable.
    """
    return {**(defaults or {}), **recorded}


def read_text(path: Path | str, missing: str = "missing") -> str:
    """A user-given text file, or one line saying why not (absent, a directory, not UTF-8)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunFolderError(f"{path}: {missing}") from None
    except IsADirectoryError:
        raise RunFolderError(f"{path}: is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise RunFolderError(f"{path}: byte {exc.start}: not UTF-8 text") from None


def read_json(path: Path, expect: type | None = None) -> Any:
    """The JSON in ``path``; ``expect`` (e.g. dict) is the top-level type the caller indexes into."""
    text = read_text(path, "missing (is this a finished train-and-eval run folder?)")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if expect is not None and not isinstance(value, expect):
        raise RunFolderError(
            f"{path}: line 1: expected a JSON {_json_name(expect)}, got {_json_name(type(value))}"
        )
    return value


def _json_name(kind: type) -> str:
    return {dict: "object", list: "array", str: "string", int: "number", float: "number"}.get(
        kind, "null" if kind is type(None) else kind.__name__
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    if Path(path).is_file():
        try:
            text = Path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise RunFolderError(f"{path}: byte {exc.start}: not UTF-8 text") from None
        for number, line in enumerate(text.splitlines(), 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RunFolderError(f"{path}: line {number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise RunFolderError(f"{path}: line {number}: expected a JSON object")
            rows.append(row)
    return rows


class RunFolder:
    """Paths of one run folder; no I/O beyond what each method says."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def selection(self) -> Path:
        return self.path / SELECTION

    @property
    def adapter(self) -> Path:
        return self.path / ADAPTER

    @property
    def report(self) -> Path:
        return self.path / REPORT

    @property
    def generations(self) -> Path:
        return self.path / RESULTS / GENERATIONS

    def checkpoint(self, name: str) -> Path:
        return self.checkpoints / component(name, "checkpoint", self.checkpoints)

    def has_checkpoints(self) -> bool:
        return self.checkpoints.is_dir() and any(self.checkpoints.iterdir())

    def results_file(self, which: str) -> Path:
        return self.path / RESULTS / f"{which}.json"

    def samples_dir(self, which: str) -> Path:
        return self.path / SAMPLES / which

    # ---------------------------------------------------------------- results
    def write_results(self, results: dict[str, Any], which: str) -> None:
        write_results(results, self.results_file(which), self.samples_dir(which))

    def read_results(self, which: str, with_samples: bool = False) -> dict[str, Any]:
        return read_results(self.results_file(which), self.samples_dir(which) if with_samples else None)

    def samples(self, which: str, task: str) -> list[dict[str, Any]]:
        file = self.samples_dir(which) / f"{component(task, 'task', self.results_file(which))}.json"
        return read_json(file) if file.is_file() else []

    # ---------------------------------------------------------------- config.json
    def write_config(self, record: dict[str, Any]) -> None:
        write_json_atomic(self.config, jsonable(record))

    def check_resume(
        self,
        method: str,
        config: dict[str, Any],
        may_change: tuple[str, ...] = (),
        defaults: dict[str, Any] | None = None,
    ) -> None:
        """Refuse to resume a training started with other settings (``may_change``: fields that may;
        ``defaults``: the config class's, for settings the folder's record predates).

        A resumed run that silently mixed two configurations would save an adapter neither describes.
        """
        if not self.config.is_file():
            return
        recorded = read_json(self.config)
        if recorded.get("method") != method:
            raise RunFolderError(
                f"{self.path}: holds a {recorded.get('method')!r} training, not {method!r}; use another --out"
            )
        changed = [
            c
            for c in settings_difference(
                with_defaults(recorded.get("config") or {}, jsonable(defaults)), jsonable(config)
            )
            if c.split(":", 1)[0] not in may_change
        ]
        if changed:
            raise RunFolderError(
                f"{self.path}: started with other settings ({'; '.join(changed[:4])}); use another --out"
            )


def write_results(results: dict[str, Any], results_file: Path, samples_dir: Path) -> None:
    """The result file without its per-sample logs, and one compact ``<task>.json`` per task beside it.

    Samples are kept out of the result file: for gee_bias they are ~70 MB, the metrics a few kB.
    """
    results = dict(results)
    for task, rows in results.pop("samples", {}).items():
        name = component(task, "task", results_file)
        write_json_atomic(Path(samples_dir) / f"{name}.json", rows, compact=True)
    write_json_atomic(results_file, results)


def read_results(results_file: Path, samples_dir: Path | None = None) -> dict[str, Any]:
    """A result file, with ``samples`` {task: rows} read back from ``samples_dir`` when given."""
    results = read_json(results_file)
    if samples_dir is not None:
        results["samples"] = {p.stem: read_json(p) for p in sorted(Path(samples_dir).glob("*.json"))}
    return results


def summary(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{task: {metric: value}} without stderr entries; the default ``none`` filter suffix is dropped."""
    out: dict[str, dict[str, float]] = {}
    for task, metrics in results.get("results", {}).items():
        for key, value in metrics.items():
            name, _, filter_name = key.partition(",")
            if filter_name and not name.endswith("_stderr") and isinstance(value, int | float):
                # keep the filter when it is not lm-eval's default: GSM8K has strict and flexible matches
                out.setdefault(task, {})[name if filter_name == "none" else key] = value
    return out


class RunState:
    """``run.json``: the spec the folder was started with and the wall time of each finished phase."""

    def __init__(
        self,
        folder: RunFolder,
        spec: dict[str, Any],
        method_config: dict[str, Any],
        may_change: tuple[str, ...] = (),
        defaults: dict[str, Any] | None = None,
    ) -> None:
        """``may_change``: method-config fields a resumed run may change (selection budgets); ``changed``
        then names the ones that did, and the new values are recorded. ``defaults``: the config class's,
        for settings added since the folder's ``run.json`` was written (``with_defaults``)."""
        self.path = folder.path / RUN
        wanted = jsonable({"spec": spec, "method_config": method_config})
        self.changed: list[str] = []
        if self.path.is_file():
            self.data = read_json(self.path)
            old = {
                "spec": self.data.get("spec"),
                "method_config": with_defaults(self.data.get("method_config") or {}, jsonable(defaults)),
            }
            recorded, new = old["method_config"] or {}, wanted["method_config"]
            fields = sorted(k for k in set(recorded) | set(new) if recorded.get(k) != new.get(k))
            if old["spec"] == wanted["spec"] and fields and set(fields) <= set(may_change):
                self.changed = fields
                self.data["method_config"] = new
                self.save()
            elif old != wanted:
                raise RunFolderError(
                    f"{folder.path} holds a run started with other settings ({_difference(old, wanted)}); "
                    "use another --out, or the same settings to resume it"
                )
        else:
            self.data = {**wanted, "phases": {}}
            self.save()

    def done(self, phase: str) -> bool:
        return phase in self.data["phases"]

    def finish(self, phase: str, wall_s: float, **extra: Any) -> None:
        self.data["phases"][phase] = {"wall_s": round(wall_s, 1), **extra}
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.data)


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    changed = []
    for section in ("spec", "method_config"):
        changed += settings_difference(old.get(section) or {}, new.get(section) or {})
    return "; ".join(changed[:4]) or "unreadable run.json"


@dataclass
class Run:
    """A finished run folder, read for the report and the benchmarks."""

    name: str
    path: Path
    run: dict[str, Any]
    config: dict[str, Any]
    base: dict[str, Any]
    debiased: dict[str, Any]
    comparison: dict[str, Any]
    curves: list[dict[str, Any]]
    selection: dict[str, Any] | None = None
    generations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def training(self) -> dict[str, Any]:
        return self.config.get("training") or {}

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.path)


def load(path: Path | str) -> Run:
    folder = RunFolder(path)
    if not folder.path.is_dir():
        raise RunFolderError(f"{folder.path}: not a run folder")
    check_contained(folder.path)
    run = read_json(folder.path / RUN, dict)
    if not isinstance(run.get("phases"), dict):
        raise RunFolderError(f"{folder.path / RUN}: field 'phases': missing or not an object")
    comparison = read_json(folder.results_file("comparison"), dict)
    if not isinstance(comparison.get("tasks"), dict):
        raise RunFolderError(f"{folder.results_file('comparison')}: field 'tasks': missing or not an object")
    return Run(
        name=folder.name,
        path=folder.path,
        run=run,
        config=read_json(folder.config, dict),
        base=read_json(folder.results_file("base"), dict),
        debiased=read_json(folder.results_file("debiased"), dict),
        comparison=comparison,
        curves=read_jsonl(folder.metrics),
        selection=read_json(folder.selection, dict) if folder.selection.exists() else None,
        generations=read_jsonl(folder.generations),
    )


__all__ = [
    "RunFolder",
    "RunFolderError",
    "RunState",
    "Run",
    "jsonable",
    "load",
    "read_json",
    "read_jsonl",
    "read_results",
    "settings_difference",
    "with_defaults",
    "summary",
    "write_results",
]
