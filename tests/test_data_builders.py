"""Exact tests for debias.data: detection, swaps, templates, user prompts, balancing, batching (fast, CPU)."""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from pathlib import Path

import pytest
from benchmark_text import benchmark_8grams, eight_grams

from debias.data import (
    GENDER,
    GENDER_TERMS,
    HELDOUT_TEMPLATES,
    ROLES,
    TRAIN_TEMPLATES,
    GroupBalancedBatches,
    GroupedExample,
    GroupTerms,
    balance,
    counterfactual_pairs,
    detect_group,
    gender_swap,
    generate,
    independent_probe,
    load_prompts,
    matched_groups,
    swap,
    validate_lexicon,
    varied_templates,
)
from debias.data.counterfactual import followed_by_possessed, match_case

AGE = {"young": frozenset({"young", "teenager", "student"}), "old": frozenset({"old", "elderly", "retiree"})}
N_SLOTS = len(GENDER_TERMS["male"].subjects)


def ex(
    prompt: str, group: str, pair_id: str = "", continuation: str = "", weight: float = 1.0
) -> GroupedExample:
    return GroupedExample(prompt, continuation, group, pair_id, "t", weight)


@pytest.fixture(scope="module")
def train() -> list[GroupedExample]:
    return generate("train")


@pytest.fixture(scope="module")
def heldout() -> list[GroupedExample]:
    return generate("heldout")


# ------------------------------------------------------------------------------------------------
# detection


@pytest.mark.parametrize(
    ("text", "group"),
    [
        ("The sheriff arrived at noon.", "neutral"),
        ("Hermes delivered the parcel.", "neutral"),
        ("The other manager thereafter left.", "neutral"),
        ("The weather is nice today.", "neutral"),
        ("he's running late", "male"),
        ("HE LEFT EARLY", "male"),
        ("Ask Mr. Smith, he knows.", "male"),
        ("My step-father cooks.", "male"),
        ("She's here, isn't she?", "female"),
        ("Mary's car is blue.", "female"),
        ("Thank you, ma'am.", "female"),
        ("“Her,” said the clerk.", "female"),
        ("He and she left together.", "mixed"),
        ("The king met the queen.", "mixed"),
    ],
)
def test_detect_group_whole_words(text: str, group: str) -> None:
    assert detect_group(text) == group


def test_matched_groups_and_general_lexicon() -> None:
    assert matched_groups("He thanked her.") == {"male", "female"}
    assert detect_group("The elderly neighbour waved.", AGE) == "old"
    assert detect_group("A young student and a retiree.", AGE) == "mixed"
    assert detect_group("The oldest tree.", AGE) == "neutral"  # whole words: "oldest" is not "old"
    assert detect_group("Senior citizens vote.", {"old": ["senior citizens"], "young": ["kids"]}) == "old"


def test_validate_lexicon_rejects_ambiguous_lexicons() -> None:
    with pytest.raises(ValueError, match="'pat'.*both"):
        validate_lexicon({"a": {"pat"}, "b": {"Pat"}})
    with pytest.raises(ValueError, match="reserved"):
        validate_lexicon({"neutral": {"they"}})
    with pytest.raises(ValueError, match="not one string"):
        validate_lexicon({"a": "word"})
    assert validate_lexicon({"a": [" Big  Dog "]}) == {"a": frozenset({"big dog"})}


# ------------------------------------------------------------------------------------------------
# counterfactual swapping


def test_match_case() -> None:
    assert [match_case(s, "she") for s in ("he", "He", "HE")] == ["she", "She", "SHE"]
    assert match_case("james", "Mary") == "mary"


@pytest.mark.parametrize(
    ("text", "swapped"),
    [
        ("He said his car is red.", "She said her car is red."),
        ("HE IS HERE.", "SHE IS HERE."),
        ("I saw her.", "I saw him."),
        ("Her car is red.", "His car is red."),
        ("I gave her the keys.", "I gave him the keys."),
        ("We met her yesterday.", "We met him yesterday."),
        ("She did it herself, with her own hands.", "He did it himself, with his own hands."),
        ("The book is his.", "The book is hers."),
        ("The choice is his to make.", "The choice is hers to make."),
        ("HER CAR", "HIS CAR"),
        ("Mary met John and his uncle.", "James met Patricia and her aunt."),
        ("Mr. Smith thanked Mrs. Jones.", "Ms. Smith thanked Mr. Jones."),
        ("The sheriff read about Hermes.", "The sheriff read about Hermes."),
        ("He's the man's brother.", "She's the woman's sister."),
    ],
)
def test_gender_swap(text: str, swapped: str) -> None:
    assert gender_swap(text) == swapped


def test_her_rule() -> None:
    assert followed_by_possessed(" car")
    assert followed_by_possessed(" own hands")
    assert not followed_by_possessed(".")
    assert not followed_by_possessed(", then")
    assert not followed_by_possessed(" the keys")
    assert not followed_by_possessed("")


def test_every_gender_word_swaps_to_the_other_group() -> None:
    for group, other in (("male", "female"), ("female", "male")):
        for word in GENDER[group]:
            for form in (word, word.capitalize(), word.upper()):
                assert detect_group(gender_swap(form)) == other, form


def test_swap_is_one_pass_and_general() -> None:
    assert swap("he and she", {"he": "she", "she": "he"}) == "she and he"
    assert swap("A Young student. OLD habits.", {"young": "old", "old": "young"}) == (
        "A Old student. YOUNG habits."
    )
    assert swap("Senior  citizens vote.", {"senior citizens": "students"}) == "Students vote."
    assert swap("unchanged", {}) == "unchanged"


def test_counterfactual_pairs_share_pair_id_and_continuation() -> None:
    examples = [
        ex("He fixed his bike.", "male", "p1", " It was sunny."),
        ex("The weather is nice.", "neutral", "p2"),
        ex("John called her", "male", "", "."),
    ]
    pairs = counterfactual_pairs(examples, "male", "female")
    assert [(e.prompt, e.group) for e in pairs] == [
        ("He fixed his bike.", "male"),
        ("She fixed her bike.", "female"),
        ("John called her", "male"),
        ("Patricia called him", "female"),
    ]
    assert pairs[0].pair_id == pairs[1].pair_id == "p1"
    assert pairs[2].pair_id == pairs[3].pair_id and pairs[2].pair_id.startswith("cf:")
    assert pairs[0].continuation == pairs[1].continuation == " It was sunny."


def test_counterfactual_pairs_refuse_bad_pairs() -> None:
    with pytest.raises(ValueError, match="continuation"):
        counterfactual_pairs([ex("He ran", "male", "p1", " to his car.")], "male", "female")
    with pytest.raises(ValueError, match="unchanged"):
        counterfactual_pairs([ex("The dog ran", "male", "p1")], "male", "female")
    with pytest.raises(ValueError, match="unique"):
        counterfactual_pairs([ex("He ran", "male", "p"), ex("He sat", "male", "p")], "male", "female")
    with pytest.raises(ValueError, match="no examples of group 'female'"):
        counterfactual_pairs([ex("He ran", "male", "p")], "female", "male")


# ------------------------------------------------------------------------------------------------
# templates


def test_template_counts(train: list[GroupedExample], heldout: list[GroupedExample]) -> None:
    assert (len(TRAIN_TEMPLATES), len(HELDOUT_TEMPLATES), len(ROLES), N_SLOTS) == (42, 12, 30, 27)
    assert len(train) == 42 * 30 * 27 * 2 == 68040
    assert len(heldout) == 12 * 30 * 27 * 2 == 19440


def test_generate_is_deterministic(heldout: list[GroupedExample]) -> None:
    assert generate("heldout") == heldout
    reseeded = generate("heldout", seed=1)
    assert reseeded != heldout and sorted(reseeded, key=repr) == sorted(heldout, key=repr)


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_generate_is_exactly_paired_and_balanced(
    split: str, train: list[GroupedExample], heldout: list[GroupedExample]
) -> None:
    examples = train if split == "train" else heldout
    assert Counter(e.group for e in examples) == {"male": len(examples) // 2, "female": len(examples) // 2}
    by_pair: dict[str, list[GroupedExample]] = {}
    for e in examples:
        by_pair.setdefault(e.pair_id, []).append(e)
    for members in by_pair.values():
        assert [m.group for m in members] == ["male", "female"]
        assert len({m.continuation for m in members}) == 1
        assert len({m.template_id for m in members}) == 1
    for e in examples:
        assert detect_group(e.prompt) == e.group, e.prompt
        assert detect_group(e.continuation) == "neutral", e.continuation
        assert "{" not in e.prompt and "}" not in e.prompt
        assert e.continuation.startswith(" ") and not e.prompt.endswith(" ")


def test_heldout_is_disjoint_from_train(train: list[GroupedExample], heldout: list[GroupedExample]) -> None:
    assert not {e.template_id for e in train} & {e.template_id for e in heldout}
    assert not {e.prompt for e in train} & {e.prompt for e in heldout}
    assert not {t.prompt for t in TRAIN_TEMPLATES} & {t.prompt for t in HELDOUT_TEMPLATES}


def test_generate_max_examples_and_errors() -> None:
    cut = generate("heldout", max_examples=101, seed=3)
    assert len(cut) == 100 and Counter(e.group for e in cut) == {"male": 50, "female": 50}
    assert cut == generate("heldout", max_examples=101, seed=3)
    with pytest.raises(ValueError, match="'nonbinary'"):
        generate("train", groups=("male", "nonbinary"))
    with pytest.raises(ValueError, match="split"):
        generate("test")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="less than one pair"):
        generate("train", max_examples=1)


def test_generate_general_groups() -> None:
    terms = {
        "young": GroupTerms(("the young clerk", "my young neighbour"), "they", "them", "their", "themselves"),
        "old": GroupTerms(("the elderly clerk", "my old neighbour"), "they", "them", "their", "themselves"),
    }
    examples = generate("train", groups=("young", "old"), terms=terms, roles=("baker",))
    assert len(examples) == len(TRAIN_TEMPLATES) * 2 * 2
    assert all(detect_group(e.prompt, AGE) == e.group for e in examples)


def _benchmark_8grams_or_skip() -> set[tuple[str, ...]]:
    root = Path(os.environ.get("DEBIAS_DATA_DIR") or "/work/shared/data")
    needed = ["winogender/all_sentences.tsv", "crows_pairs/crows_pairs_anonymized.csv", "stereoset/dev.json"]
    missing = [rel for rel in needed if not (root / rel).is_file()]
    if missing:
        pytest.skip(f"benchmark files not found under {root}: {missing} (set DEBIAS_DATA_DIR)")
    return benchmark_8grams(root)


def test_no_8_word_overlap_with_benchmarks(
    train: list[GroupedExample], heldout: list[GroupedExample]
) -> None:
    benchmark = _benchmark_8grams_or_skip()
    ours: set[tuple[str, ...]] = set()
    for e in train + heldout + independent_probe.generate():
        ours |= eight_grams(e.text)
    assert not ours & benchmark


def test_independent_probe_shares_no_shape_or_subject_with_the_training_templates(
    train: list[GroupedExample],
) -> None:
    """The second entropy probe is other text: no 8-word window and no subject phrase in common."""
    probe = independent_probe.generate()
    assert len(probe) == len(independent_probe.TEMPLATES) * 18 * 2
    pairs: dict[str, list[GroupedExample]] = {}
    for e in probe:
        pairs.setdefault(e.pair_id, []).append(e)
    for pair in pairs.values():  # paired: same continuation, one example per group
        assert [e.group for e in pair] == ["male", "female"] and len({e.continuation for e in pair}) == 1
    train_grams: set[tuple[str, ...]] = set()
    for e in train:
        train_grams |= eight_grams(e.text)
    assert not any(eight_grams(e.text) & train_grams for e in probe)
    train_subjects = {s.lower() for terms in GENDER_TERMS.values() for s in terms.subjects}
    probe_subjects = {s.lower() for group in independent_probe.SUBJECTS.values() for s in group}
    assert not train_subjects & probe_subjects
    assert all(a.prompt != b.prompt for a, b in pairs.values())  # the pair differs in its group words


# ------------------------------------------------------------------------------------------------
# varied templates (GEE --data varied)


@pytest.fixture(scope="module")
def varied() -> dict[str, list[GroupedExample]]:
    return {split: varied_templates.generate(split) for split in ("train", "heldout")}


def test_varied_template_counts_and_splits(varied: dict[str, list[GroupedExample]]) -> None:
    train_t, heldout_t = varied_templates.TEMPLATES["train"], varied_templates.TEMPLATES["heldout"]
    assert len(varied_templates.ALL_TEMPLATES) >= 60
    assert len(train_t) + len(heldout_t) == len(varied_templates.ALL_TEMPLATES) and heldout_t
    assert not {t.template_id for t in train_t} & {t.template_id for t in heldout_t}
    assert not {t.prompt for t in train_t} & {t.prompt for t in heldout_t}
    assert not {e.template_id for e in varied["train"]} & {e.template_id for e in varied["heldout"]}
    assert not {e.prompt for e in varied["train"]} & {e.prompt for e in varied["heldout"]}
    assert not {t.template_id for t in varied_templates.ALL_TEMPLATES} & {
        t.template_id for t in TRAIN_TEMPLATES + HELDOUT_TEMPLATES
    }
    for split, templates in varied_templates.TEMPLATES.items():
        assert len(varied[split]) == 2 * sum(len(varied_templates.slots(t)) for t in templates)


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_varied_generate_is_exactly_paired(split: str, varied: dict[str, list[GroupedExample]]) -> None:
    examples = varied[split]
    assert examples == varied_templates.generate(split)
    reseeded = varied_templates.generate(split, seed=1)
    assert reseeded != examples and sorted(reseeded, key=repr) == sorted(examples, key=repr)
    pairs = [examples[i : i + 2] for i in range(0, len(examples), 2)]  # consecutive, as the sampler needs
    assert len({m.pair_id for m, _ in pairs}) == len(pairs)
    for male, female in pairs:
        assert (male.group, female.group) == ("male", "female")
        assert male.pair_id == female.pair_id and male.template_id == female.template_id
        assert male.continuation == female.continuation and male.prompt != female.prompt
    for e in examples:
        assert detect_group(e.prompt) == e.group, e.prompt
        assert detect_group(e.continuation) == "neutral", e.continuation
        assert "{" not in e.prompt and "}" not in e.prompt
        assert e.continuation.startswith(" ") and not e.prompt.endswith(" ")
    flipped = varied_templates.generate(split, groups=("female", "male"))
    assert [e.group for e in flipped[:2]] == ["female", "male"]


def test_varied_generate_errors() -> None:
    with pytest.raises(ValueError, match="'nonbinary'"):
        varied_templates.generate("train", groups=("male", "nonbinary"))
    with pytest.raises(ValueError, match="split"):
        varied_templates.generate("test")  # type: ignore[arg-type]


def test_varied_no_8_word_overlap_with_benchmarks(varied: dict[str, list[GroupedExample]]) -> None:
    benchmark = _benchmark_8grams_or_skip()
    shared = {g for e in varied["train"] + varied["heldout"] for g in eight_grams(e.text) if g in benchmark}
    assert not shared, sorted(shared)[:5]


def test_varied_shares_no_shape_or_subject_with_the_independent_probe(
    varied: dict[str, list[GroupedExample]],
) -> None:
    """The independent probe stays held out from --data varied too (only offending windows are shown)."""
    ours: set[tuple[str, ...]] = set()
    for e in varied["train"] + varied["heldout"]:
        ours |= eight_grams(e.text)
    shared = {g for e in independent_probe.generate() for g in eight_grams(e.text) if g in ours}
    assert not shared, sorted(shared)[:5]
    used = {
        GENDER_TERMS[group].subjects[slot].lower()
        for t in varied_templates.ALL_TEMPLATES
        for slot in varied_templates.slots(t)
        for group in ("male", "female")
    }
    probe_subjects = {s.lower() for group in independent_probe.SUBJECTS.values() for s in group}
    common = used & probe_subjects
    assert not common, sorted(common)


# ------------------------------------------------------------------------------------------------
# user prompts

ROWS = [
    {"text": "He fixed the sink.", "label": "a"},
    {"text": "She's a pilot.", "label": "b"},
    {"text": "The sheriff waited.", "label": "a"},
    {"text": "He thanked her.", "label": "b"},
]


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]) + "\n" + json.dumps(rows[2]) + "\n"
                        + "".join(json.dumps(r) + "\n" for r in rows[3:]))  # fmt: skip
    elif path.suffix == ".csv":
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        import pandas as pd

        pd.DataFrame(rows).to_parquet(path)
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_load_prompts_detects_groups(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path / f"prompts{suffix}", ROWS)
    loaded = load_prompts(path)
    assert [(e.prompt, e.group, e.continuation) for e in loaded] == [
        ("He fixed the sink.", "male", ""),
        ("She's a pilot.", "female", ""),
        ("The sheriff waited.", "neutral", ""),
        ("He thanked her.", "mixed", ""),
    ]
    assert len({e.pair_id for e in loaded}) == 4
    assert [e.group for e in load_prompts(path, group_field="label")] == ["a", "b", "a", "b"]


def test_load_prompts_jsonl_line_numbers(tmp_path: Path) -> None:
    loaded = load_prompts(_write(tmp_path / "p.jsonl", ROWS))
    assert [e.pair_id for e in loaded] == ["p.jsonl:1", "p.jsonl:2", "p.jsonl:4", "p.jsonl:5"]


def _error(path: Path, **kwargs: object) -> str:
    with pytest.raises(ValueError) as info:
        load_prompts(path, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_load_prompts_malformed_input(tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "fine"}\n{"text": oops}\n')
    assert "line 2: invalid JSON" in _error(bad_json)

    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"text": "fine"}\n{"txt": "typo"}\n')
    assert "line 2: missing field 'text'" in _error(missing)

    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"text": "  "}\n')
    assert "line 1: field 'text' is empty" in _error(empty)

    not_object = tmp_path / "list.jsonl"
    not_object.write_text('["text"]\n')
    assert "line 1: expected a JSON object" in _error(not_object)

    no_group = tmp_path / "nogroup.jsonl"
    no_group.write_text('{"text": "He ran.", "group": "male"}\n{"text": "She ran."}\n')
    assert "line 2: missing field 'group'" in _error(no_group, group_field="group")

    no_column = tmp_path / "cols.csv"
    no_column.write_text("prompt\nHe ran.\n")
    assert "no column 'text' (columns: prompt)" in _error(no_column)

    empty_cell = tmp_path / "cell.csv"
    empty_cell.write_text('text,label\nHe ran.,a\n"",b\n')
    assert "line 3: field 'text' is empty" in _error(empty_cell)

    import pandas as pd

    null_row = tmp_path / "null.parquet"
    pd.DataFrame({"text": ["He ran.", None]}).to_parquet(null_row)
    assert "row 2: field 'text' is empty" in _error(null_row)

    number = tmp_path / "num.parquet"
    pd.DataFrame({"text": [1, 2]}).to_parquet(number)
    assert "row 1: field 'text' must be text" in _error(number)

    assert "unknown extension '.txt'" in _error(tmp_path / "prompts.txt")
    assert "file not found" in _error(tmp_path / "absent.csv")


# ------------------------------------------------------------------------------------------------
# balancing

UNBALANCED = [
    ex("He a", "male", "1"),
    ex("He b", "male", "2"),
    ex("x", "neutral", "3"),
    ex("She c", "female", "4"),
    ex("He d", "male", "5"),
    ex("He and she", "mixed", "6"),
]


def test_balance_downsample() -> None:
    kept = balance(UNBALANCED, ["male", "female"], seed=0)
    assert Counter(e.group for e in kept) == {"male": 1, "female": 1}
    assert kept == balance(UNBALANCED, ["male", "female"], seed=0)
    assert {e.pair_id for s in range(20) for e in balance(UNBALANCED, ["male", "female"], seed=s)} == {
        "1",
        "2",
        "4",
        "5",
    }
    with_neutral = balance(UNBALANCED, ["male", "female", "neutral"])
    assert Counter(e.group for e in with_neutral) == {"male": 1, "female": 1, "neutral": 1}


def test_balance_reports_counts(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="debias.data.user_prompts"):
        balance(UNBALANCED, ["male", "female"])
    assert "before {'male': 3, 'female': 1}, after {'male': 1, 'female': 1}" in caplog.text
    assert "dropped {'neutral': 1, 'mixed': 1}" in caplog.text


def test_balance_reweight() -> None:
    weighted = balance(UNBALANCED, ["male", "female"], mode="reweight")
    assert [(e.pair_id, e.weight) for e in weighted] == [
        ("1", pytest.approx(2 / 3)),
        ("2", pytest.approx(2 / 3)),
        ("4", pytest.approx(2.0)),
        ("5", pytest.approx(2 / 3)),
    ]
    prior = [ex("He", "male", "1", weight=2.0), ex("He", "male", "2"), ex("She", "female", "3", weight=0.5)]
    totals = Counter()
    for e in balance(prior, ["male", "female"], mode="reweight"):
        totals[e.group] += e.weight
    assert totals["male"] == pytest.approx(1.75) and totals["female"] == pytest.approx(1.75)


def test_balance_errors() -> None:
    with pytest.raises(ValueError, match="group 'female' has no examples"):
        balance([ex("He", "male")], ["male", "female"])
    with pytest.raises(ValueError, match="mode"):
        balance(UNBALANCED, ["male", "female"], mode="upsample")  # type: ignore[arg-type]
    age = [ex("young", "young"), ex("young", "young"), ex("old", "old")]
    assert Counter(e.group for e in balance(age, ["young", "old"])) == {"young": 1, "old": 1}


# ------------------------------------------------------------------------------------------------
# sampler


def _pool(sizes: dict[str, int]) -> list[GroupedExample]:
    return [ex(f"{g} {i}", g, f"{g}{i}") for g, n in sizes.items() for i in range(n)]


def test_sampler_equal_counts_per_step() -> None:
    sampler = GroupBalancedBatches(
        _pool({"male": 10, "female": 4, "neutral": 3}), ["male", "female"], 2, seed=0
    )
    assert sampler.steps_per_epoch == 5
    batches = [next(sampler) for _ in range(12)]
    for batch in batches:
        assert [e.group for e in batch] == ["male", "male", "female", "female"]
        assert len({e.pair_id for e in batch}) == 4
    first_epoch = [e.pair_id for batch in batches[:5] for e in batch if e.group == "male"]
    assert sorted(first_epoch) == sorted(f"male{i}" for i in range(10))
    assert sampler.step == 12 and sampler.epoch == 2
    again = GroupBalancedBatches(_pool({"male": 10, "female": 4}), ["male", "female"], 2, seed=0)
    assert [next(again) for _ in range(12)] == batches
    other = GroupBalancedBatches(_pool({"male": 10, "female": 4}), ["male", "female"], 2, seed=1)
    assert [next(other) for _ in range(12)] != batches


def test_sampler_resumes_exactly_mid_epoch() -> None:
    pool = _pool({"young": 7, "old": 5})
    reference = GroupBalancedBatches(pool, ["young", "old"], 2, seed=7)
    uninterrupted = [next(reference) for _ in range(9)]
    first = GroupBalancedBatches(pool, ["young", "old"], 2, seed=7)
    for _ in range(4):
        next(first)
    state = json.loads(json.dumps(first.state_dict()))
    resumed = GroupBalancedBatches(pool, ["young", "old"], 2, seed=7)
    resumed.load_state_dict(state)
    assert [next(resumed) for _ in range(5)] == uninterrupted[4:]
    with pytest.raises(ValueError, match="seed"):
        GroupBalancedBatches(pool, ["young", "old"], 2, seed=8).load_state_dict(state)
    with pytest.raises(ValueError, match="fingerprint"):
        GroupBalancedBatches(
            pool[:-1] + [ex("changed", "old", "old4")], ["young", "old"], 2, seed=7
        ).load_state_dict(state)


def test_sampler_paired_batches_hold_whole_pairs() -> None:
    examples = generate("heldout", max_examples=40)
    sampler = GroupBalancedBatches(examples, ["male", "female"], 4, seed=0, paired=True)
    for _ in range(12):
        batch = next(sampler)
        assert [e.pair_id for e in batch[:4]] == [e.pair_id for e in batch[4:]]
    with pytest.raises(ValueError, match="share pair ids"):
        GroupBalancedBatches(
            examples[:-1] + [ex("She", "female", "other")], ["male", "female"], 4, paired=True
        )


def test_sampler_errors() -> None:
    with pytest.raises(ValueError, match="group 'female' has no examples"):
        GroupBalancedBatches(_pool({"male": 4}), ["male", "female"], 2, seed=0)
    with pytest.raises(ValueError, match="fewer than per_group"):
        GroupBalancedBatches(_pool({"male": 4, "female": 1}), ["male", "female"], 2, seed=0)
