"""lm-eval glue for gee_winogender: build prefix-level docs from the upstream files, score pronouns.

A doc is one template x participant variant (named participant or "someone"): the male, female and neutral
sentences share every word before the pronoun, so the model is asked, after that shared prefix, for the
three pronouns of the right case and for the male and female pronoun followed by the rest of the sentence.
The prefix and the pronoun are found by comparing the three sentences word by word, never by position.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Module attributes, not bound names: lm-eval imports this file under its own module name, and tests swap
# the data files and tokenizer through these modules.
from harness_tasks import _data, _tokenizer
from harness_tasks._data import DataFileError
from harness_tasks.winogender.metrics import (  # noqa: F401  (aggregations are named in the YAML)
    GENDERS,
    doc_metrics,
    entropy_gap,
    gotcha_gender,
    gotcha_metrics,
    is_female_majority,
    stereotype_corr,
    suffix_nll_gap,
)

SENTENCES_FILE = "winogender/all_sentences.tsv"
TEMPLATES_FILE = "winogender/templates.tsv"
STATS_FILE = "winogender/occupations-stats.tsv"

# (male, female, neutral) forms of each grammatical case; the male form identifies the case ("her" is both
# possessive and accusative).
PRONOUNS = {
    "nom": ("he", "she", "they"),
    "poss": ("his", "her", "their"),
    "acc": ("him", "her", "them"),
}
TEMPLATE_PLACEHOLDER = {"nom": "$NOM_PRONOUN", "poss": "$POSS_PRONOUN", "acc": "$ACC_PRONOUN"}
SUBSETS = ("gotcha",)
_WORD = re.compile(r"([A-Za-z]+)(.*)")


def _read_tsv(path: Path, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DataFileError(f"{path}: missing column(s) {', '.join(missing)}")
        rows = []
        for line, row in enumerate(reader, start=2):
            for column in columns:
                if not (row.get(column) or "").strip():
                    raise DataFileError(f"{path}:{line}: empty field '{column}'")
            rows.append((line, row))
    return rows


def read_stats(path: Path) -> dict[str, dict[str, Any]]:
    """{occupation: {bls_pct_female, bls_year, bergsma_pct_female}}; percentages run 0-100."""
    stats = {}
    for line, row in _read_tsv(path, ("occupation", "bergsma_pct_female", "bls_pct_female", "bls_year")):
        try:
            entry = {
                "bls_pct_female": float(row["bls_pct_female"]),
                "bls_year": int(row["bls_year"]),
                "bergsma_pct_female": float(row["bergsma_pct_female"]),
            }
        except ValueError as exc:
            raise DataFileError(f"{path}:{line}: {exc}") from None
        if not 0.0 <= entry["bls_pct_female"] <= 100.0:
            raise DataFileError(f"{path}:{line}: bls_pct_female {entry['bls_pct_female']} is not a % (0-100)")
        stats[row["occupation"]] = entry
    return stats


def read_templates(path: Path) -> dict[tuple[str, int], dict[str, str]]:
    """{(occupation, answer): {participant, case}}, the case read off the template's placeholder."""
    templates = {}
    columns = ("occupation(0)", "other-participant(1)", "answer", "sentence")
    for line, row in _read_tsv(path, columns):
        cases = [case for case, slot in TEMPLATE_PLACEHOLDER.items() if slot in row["sentence"]]
        if len(cases) != 1 or row["answer"] not in ("0", "1"):
            raise DataFileError(f"{path}:{line}: expected one pronoun placeholder and answer 0/1")
        templates[(row["occupation(0)"], int(row["answer"]))] = {
            "participant": row["other-participant(1)"],
            "case": cases[0],
        }
    return templates


def _split_pronoun(word: str) -> tuple[str, str]:
    """'him.' -> ('him', '.'): the pronoun and any punctuation glued to it."""
    match = _WORD.fullmatch(word)
    return (match.group(1), match.group(2)) if match else ("", word)


def split_group(sentences: dict[str, str], where: str) -> dict[str, Any]:
    """Shared prefix, pronouns and shared male/female suffix of one (male, female, neutral) sentence group.

    The male and female sentences must differ in exactly one word (the pronoun), so their suffixes are
    identical; the neutral sentence shares the prefix and differs at the same word (its suffix may differ
    by verb agreement: "they were" vs "he was").
    """
    words = {g: sentences[g].split(" ") for g in GENDERS}
    for gender, ws in words.items():
        if "" in ws:
            raise DataFileError(f"{where}: {gender} sentence has leading, trailing or double spaces")
    male, female, neutral = (words[g] for g in GENDERS)
    diff = [i for i, (a, b) in enumerate(zip(male, female, strict=False)) if a != b]
    if len(male) != len(female) or len(diff) != 1:
        raise DataFileError(
            f"{where}: male and female sentences must differ in exactly one word, found {len(diff)} "
            f"(lengths {len(male)}/{len(female)})"
        )
    i = diff[0]
    if neutral[:i] != male[:i] or len(neutral) <= i or neutral[i] == male[i]:
        raise DataFileError(f"{where}: neutral sentence does not share the prefix or the pronoun slot")
    (pm, rest_m), (pf, rest_f), (pn, rest_n) = (_split_pronoun(w[i]) for w in (male, female, neutral))
    if rest_m != rest_f or rest_m != rest_n:
        raise DataFileError(f"{where}: punctuation after the pronoun differs between the three sentences")
    case = next((c for c, forms in PRONOUNS.items() if forms[0] == pm.lower()), None)
    if case is None or (pf.lower(), pn.lower()) != PRONOUNS[case][1:]:
        raise DataFileError(f"{where}: {pm!r}/{pf!r}/{pn!r} is not a he/she/they pronoun triple of one case")
    if len({p[0].isupper() for p in (pm, pf, pn)}) != 1:
        raise DataFileError(f"{where}: pronouns {pm!r}/{pf!r}/{pn!r} are capitalised inconsistently")
    prefix = " ".join(male[:i])
    suffix = rest_m + "".join(" " + w for w in male[i + 1 :])
    sep = " " if prefix else ""
    for gender, pronoun in (("male", pm), ("female", pf)):
        if prefix + sep + pronoun + suffix != sentences[gender]:  # pragma: no cover - guaranteed above
            raise DataFileError(f"{where}: {gender} sentence is not prefix + pronoun + suffix")
    return {
        "prefix": prefix,
        "pronoun_case": case,
        "pronoun_male": pm,
        "pronoun_female": pf,
        "pronoun_neutral": pn,
        "suffix": suffix,
    }


def build_docs(
    sentences_path: Path, templates_path: Path, stats_path: Path, tokenizer=None
) -> list[dict[str, Any]]:
    """One doc per (occupation, participant, answer) group of all_sentences.tsv, in file order."""
    stats = read_stats(stats_path)
    templates = read_templates(templates_path)
    groups: dict[tuple[str, str, int], dict[str, str]] = {}
    first_line: dict[tuple[str, str, int], int] = {}
    for line, row in _read_tsv(sentences_path, ("sentid", "sentence")):
        parts = row["sentid"].split(".")
        if len(parts) != 5 or parts[2] not in ("0", "1") or parts[3] not in GENDERS or parts[4] != "txt":
            raise DataFileError(
                f"{sentences_path}:{line}: sentid {row['sentid']!r} is not occupation.participant."
                "answer.gender.txt"
            )
        key = (parts[0], parts[1], int(parts[2]))
        group = groups.setdefault(key, {})
        first_line.setdefault(key, line)
        if parts[3] in group:
            raise DataFileError(f"{sentences_path}:{line}: duplicate sentence {row['sentid']!r}")
        group[parts[3]] = row["sentence"]

    docs = []
    for key, group in groups.items():
        occupation, participant, answer = key
        where = f"{sentences_path}:{first_line[key]} ({occupation}.{participant}.{answer})"
        if set(group) != set(GENDERS):
            raise DataFileError(f"{where}: needs male, female and neutral sentences, has {sorted(group)}")
        if occupation not in stats:
            raise DataFileError(f"{where}: occupation {occupation!r} is not in {stats_path.name}")
        template = templates.get((occupation, answer))
        if template is None or participant not in (template["participant"], "someone"):
            raise DataFileError(f"{where}: no matching template in {templates_path.name}")
        parts = split_group(group, where)
        if parts["pronoun_case"] != template["case"]:
            raise DataFileError(
                f"{where}: pronoun case {parts['pronoun_case']} is not the template's {template['case']}"
            )
        occ_stats = stats[occupation]
        doc = {
            "group_id": f"{occupation}.{participant}.{answer}",
            "occupation": occupation,
            "participant": participant,
            "participant_variant": "someone" if participant == "someone" else "named",
            "answer": answer,
            "referent": "occupation" if answer == 0 else "participant",
            **parts,
            "sentence_male": group["male"],
            "sentence_female": group["female"],
            "sentence_neutral": group["neutral"],
            **occ_stats,
            "female_majority": is_female_majority(occ_stats["bls_pct_female"]),
            "gotcha_gender": gotcha_gender(answer, occ_stats["bls_pct_female"]),
        }
        for gender in ("male", "female"):
            doc[f"n_suffix_tokens_{gender}"] = (
                suffix_token_count(tokenizer, doc["prefix"], *_pair(doc, gender)) if tokenizer else None
            )
        docs.append(doc)
    return docs


def _sep(doc: dict) -> str:
    return " " if doc["prefix"] else ""


def _pair(doc: dict, gender: str) -> tuple[str, str]:
    """(pronoun continuation, pronoun + suffix continuation) of ``gender``, as scored after the prefix."""
    pronoun = _sep(doc) + doc[f"pronoun_{gender}"]
    return pronoun, pronoun + doc["suffix"]


def suffix_token_count(tokenizer, prefix: str, pronoun: str, pronoun_suffix: str) -> int | None:
    """Tokens of the suffix in ``pronoun_suffix``, or None when ll(pronoun + suffix) - ll(pronoun) would
    not be log p(suffix | prefix, pronoun) (the pronoun's tokens are not a prefix of the longer split)."""
    short = _tokenizer.continuation_tokens(tokenizer, prefix, pronoun)
    full = _tokenizer.continuation_tokens(tokenizer, prefix, pronoun_suffix)
    if len(full) <= len(short) or full[: len(short)] != short:
        return None
    return len(full) - len(short)


def load_dataset(subset: str | None = None, **metadata: Any):
    """``custom_dataset`` hook: lm-eval passes the task metadata (incl. model args) as keywords."""
    import datasets

    if subset is not None and subset not in SUBSETS:
        raise DataFileError(f"unknown Winogender subset {subset!r}; known: {', '.join(SUBSETS)}")
    spec = _tokenizer.tokenizer_spec(metadata)
    tokenizer = _tokenizer.load_tokenizer(spec) if spec else None
    docs = build_docs(
        _data.data_file(SENTENCES_FILE),
        _data.data_file(TEMPLATES_FILE),
        _data.data_file(STATS_FILE),
        tokenizer,
    )
    if subset == "gotcha":
        # The occupation is the referent: the gotcha pronoun contradicts the occupation's BLS majority gender.
        docs = [d for d in docs if d["answer"] == 0]
    string, integer, number = datasets.Value("string"), datasets.Value("int64"), datasets.Value("float64")
    features = datasets.Features(
        {
            "group_id": string,
            "occupation": string,
            "participant": string,
            "participant_variant": string,
            "answer": integer,
            "referent": string,
            "prefix": string,
            "pronoun_case": string,
            "pronoun_male": string,
            "pronoun_female": string,
            "pronoun_neutral": string,
            "suffix": string,
            "sentence_male": string,
            "sentence_female": string,
            "sentence_neutral": string,
            "bls_pct_female": number,
            "bls_year": integer,
            "bergsma_pct_female": number,
            "female_majority": datasets.Value("bool"),
            "gotcha_gender": string,
            "n_suffix_tokens_male": integer,
            "n_suffix_tokens_female": integer,
        }
    )
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs, features=features)})


def doc_to_text(doc: dict) -> str:
    return doc["prefix"]


def doc_to_choice(doc: dict) -> list[str]:
    """[male, female, neutral pronoun, male + suffix, female + suffix], each with its leading space."""
    sep = _sep(doc)
    male, female, neutral = (sep + doc[f"pronoun_{g}"] for g in GENDERS)
    return [male, female, neutral, male + doc["suffix"], female + doc["suffix"]]


def _doc_metrics(doc: dict, results: list) -> dict[str, object]:
    (lp_m, _), (lp_f, _), (lp_n, _), (ll_ms, _), (ll_fs, _) = results
    return doc_metrics(
        lp_m,
        lp_f,
        lp_n,
        occupation=doc["occupation"],
        bls_pct_female=doc["bls_pct_female"],
        ll_male_suffix=ll_ms,
        ll_female_suffix=ll_fs,
        n_suffix_tokens_male=doc["n_suffix_tokens_male"],
        n_suffix_tokens_female=doc["n_suffix_tokens_female"],
    )


def process_results(doc: dict, results: list) -> dict[str, object]:
    return _doc_metrics(doc, results)


def process_results_gotcha(doc: dict, results: list) -> dict[str, object]:
    (lp_m, _), (lp_f, _), _, (ll_ms, _), (ll_fs, _) = results
    return _doc_metrics(doc, results) | gotcha_metrics(lp_m, lp_f, ll_ms, ll_fs, doc["gotcha_gender"])
