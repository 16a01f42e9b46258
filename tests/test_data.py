"""Benchmark data resolution: sha256-checked upstream files, clear one-line errors, public fallback."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness_tasks import _data
from harness_tasks._data import DataFileError
from harness_tasks.crows_pairs.utils import read_pairs

REPO = Path(__file__).resolve().parent.parent
CROWS = "crows_pairs/crows_pairs_anonymized.csv"


def test_every_manifest_file_is_present_and_verified(data_dir):
    files = _data.manifest()["files"]
    assert len(files) == 190  # 7 crows/stereoset/winogender/gsm8k, 171 MMLU csvs, 12 BBQ; see PROVENANCE.md
    for rel in files:
        assert _data.data_file(rel) == data_dir / rel
    assert _data.used_files()[CROWS] == files[CROWS]


def test_missing_file_names_path_and_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("DEBIAS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataFileError) as err:
        _data.data_file(CROWS)
    message = str(err.value)
    assert str(tmp_path / CROWS) in message and "DEBIAS_DATA_DIR" in message and "\n" not in message


def test_altered_file_is_refused(tmp_path, monkeypatch, data_dir):
    target = tmp_path / CROWS
    target.parent.mkdir(parents=True)
    content = (data_dir / CROWS).read_bytes()
    target.write_bytes(content.replace(b"women", b"woman", 1))
    monkeypatch.setenv("DEBIAS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataFileError, match="sha256") as err:
        _data.data_file(CROWS)
    assert str(target) in str(err.value)


def test_malformed_crows_rows_name_file_line_and_field(tmp_path):
    bad_column = tmp_path / "a.csv"
    bad_column.write_text(",sent_more,sent_less,bias_type\n0,a,b,gender\n")
    with pytest.raises(DataFileError, match="missing column.*stereo_antistereo"):
        read_pairs(bad_column)
    bad_value = tmp_path / "b.csv"
    bad_value.write_text(
        ",sent_more,sent_less,stereo_antistereo,bias_type\n0,a,b,stereo,gender\n1,a,b,sideways,age\n"
    )
    with pytest.raises(DataFileError, match=r"b\.csv:3: field 'stereo_antistereo'"):
        read_pairs(bad_value)
    empty = tmp_path / "c.csv"
    empty.write_text(",sent_more,sent_less,stereo_antistereo,bias_type\n0,,b,stereo,gender\n")
    with pytest.raises(DataFileError, match="c.csv:2: empty field 'sent_more'"):
        read_pairs(empty)


def test_real_crows_file_parses_with_upstream_counts(data_dir):
    pairs = read_pairs(data_dir / CROWS)
    assert len(pairs) == 1508
    assert sum(p["direction"] == "stereo" for p in pairs) == 1290
    assert sum(p["bias_type"] == "gender" for p in pairs) == 262


def _fake_manifest(monkeypatch, files: dict[str, str], sources: dict) -> None:
    monkeypatch.setattr(_data, "manifest", lambda: {"files": files, "sources": sources})


def test_public_fallback_downloads_once_and_verifies(tmp_path, monkeypatch):
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    (upstream / "toy.csv").write_text("a,b\n1,2\n")
    sha = hashlib.sha256((upstream / "toy.csv").read_bytes()).hexdigest()
    _fake_manifest(monkeypatch, {"toy/toy.csv": sha}, {"toy": {"url": upstream.as_uri() + "/{name}"}})
    monkeypatch.delenv("DEBIAS_DATA_DIR")
    monkeypatch.setenv("DEBIAS_CACHE", str(tmp_path / "cache"))
    path = _data.data_file("toy/toy.csv")
    assert path == tmp_path / "cache" / "data" / "toy" / "toy.csv" and path.read_text() == "a,b\n1,2\n"
    (upstream / "toy.csv").unlink()  # a second call must not need the network
    assert _data.data_file("toy/toy.csv") == path


def test_public_fallback_from_archive_and_unreachable_source(tmp_path, monkeypatch):
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("data/dev/x_dev.csv", "q,A,B,C,D,A\n")
    sha_zip = hashlib.sha256(archive.read_bytes()).hexdigest()
    sha_x = hashlib.sha256(b"q,A,B,C,D,A\n").hexdigest()
    sources = {
        "mm": {"archive": {"url": archive.as_uri(), "sha256": sha_zip, "prefix": "data/"}},
        "gone": {"url": (tmp_path / "nowhere").as_uri() + "/{name}"},
    }
    _fake_manifest(monkeypatch, {"mm/dev/x_dev.csv": sha_x, "gone/f.csv": "0" * 64}, sources)
    monkeypatch.delenv("DEBIAS_DATA_DIR")
    monkeypatch.setenv("DEBIAS_CACHE", str(tmp_path / "cache"))
    assert _data.data_file("mm/dev/x_dev.csv").read_text() == "q,A,B,C,D,A\n"
    with pytest.raises(DataFileError, match="gone/f.csv: DEBIAS_DATA_DIR is not set"):
        _data.data_file("gone/f.csv")
    assert not list((tmp_path / "cache" / "data" / "gone").glob("*"))  # nothing half-written


def test_cli_reports_bad_data_dir_in_one_line(tmp_path):
    shutil.rmtree(tmp_path, ignore_errors=True)
    proc = subprocess.run(
        [sys.executable, str(REPO / "cli.py"), "eval", "--data-dir", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: ")
    assert "nope" in proc.stderr and "Traceback" not in proc.stderr
