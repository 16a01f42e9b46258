"""Every sentence of the benchmarks we report on, as 8-word sequences: the project's own training text
(GEE templates, DPO pairs) must share none of them."""

from __future__ import annotations

import csv
import json
import re
from functools import cache
from pathlib import Path


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("\u2019", "'"))


def eight_grams(text: str) -> set[tuple[str, ...]]:
    w = words(text)
    return set(zip(*(w[i:] for i in range(8)), strict=False))


def pair_8grams(pairs) -> set[tuple[str, ...]]:
    """Every 8-word sequence of a pair set's two full texts (prompt + chosen, prompt + rejected)."""
    grams: set[tuple[str, ...]] = set()
    for p in pairs:
        grams |= eight_grams(p.prompt + p.chosen) | eight_grams(p.prompt + p.rejected)
    return grams


def benchmark_sentences(root: Path) -> list[str]:
    sentences: list[str] = []
    with (root / "winogender" / "all_sentences.tsv").open(encoding="utf-8") as handle:
        sentences += [row["sentence"] for row in csv.DictReader(handle, delimiter="\t")]
    with (root / "crows_pairs" / "crows_pairs_anonymized.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            sentences += [row["sent_more"], row["sent_less"]]
    stereoset = json.loads((root / "stereoset" / "dev.json").read_text(encoding="utf-8"))["data"]
    for kind in ("intrasentence", "intersentence"):
        for item in stereoset[kind]:
            sentences.append(item["context"])
            sentences += [s["sentence"] for s in item["sentences"]]
    for path in sorted((root / "bbq").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            sentences += [item["context"], item["question"], item["ans0"], item["ans1"], item["ans2"]]
    return sentences


@cache
def _grams(root: str) -> frozenset[tuple[str, ...]]:
    grams: set[tuple[str, ...]] = set()
    for sentence in benchmark_sentences(Path(root)):
        grams |= eight_grams(sentence)
    return frozenset(grams)


def benchmark_8grams(root: Path) -> frozenset[tuple[str, ...]]:
    grams = _grams(str(root))
    assert len(grams) > 30000  # the datasets really were read
    return grams
