"""Role -> pronoun pairs: balanced, split by frame, on roles Winogender never names, none benchmark text."""

from __future__ import annotations

import csv
from collections import Counter

from debias.data import bias_pairs, preference_pairs, role_pairs


def test_the_stereotyped_pronoun_is_rejected_and_the_other_chosen():
    pairs = role_pairs.generate("train")
    nanny = next(p for p in pairs if p.prompt == "The nanny checked the list twice, and then")
    assert (nanny.rejected, nanny.chosen) == (" she signed the form.", " he signed the form.")
    welder = next(p for p in pairs if p.prompt == "I thanked the welder and handed")
    assert (welder.rejected, welder.chosen) == (" him the spare keys.", " her the spare keys.")
    assert {p.bias_type for p in pairs} == {"gender"}


def test_every_continuation_is_rejected_as_often_as_it_is_chosen():
    for split in ("train", "heldout"):
        pairs = role_pairs.generate(split)
        assert Counter(p.rejected for p in pairs) == Counter(p.chosen for p in pairs), split
        assert len(pairs) == 20 * (role_pairs.TRAIN_FRAMES if split == "train" else 3)


def test_split_is_by_frame():
    train, heldout = role_pairs.generate("train"), role_pairs.generate("heldout")
    assert {p.frame for p in train}.isdisjoint({p.frame for p in heldout})
    assert {p.prompt for p in train}.isdisjoint({p.prompt for p in heldout})


def test_no_role_is_a_winogender_occupation(data_dir):
    with (data_dir / "winogender" / "occupations-stats.tsv").open(encoding="utf-8") as handle:
        occupations = {row["occupation"] for row in csv.DictReader(handle, delimiter="\t")}
    assert len(occupations) == 60
    for role in role_pairs.FEMALE_TYPED_ROLES + role_pairs.MALE_TYPED_ROLES:
        assert not set(role.split()) & occupations, role


def test_sets_join_with_a_plus_in_order_and_fingerprint_each_part():
    joined = preference_pairs.load("builtin+roles", "train")
    builtin = preference_pairs.load("builtin", "train")
    assert joined[: len(builtin)] == builtin
    assert len(joined) == len(builtin) + len(role_pairs.generate("train"))
    assert preference_pairs.fingerprint("builtin") == f"builtin:{bias_pairs.fingerprint()}"  # unchanged
    assert preference_pairs.fingerprint("builtin+roles") == (
        f"builtin:{bias_pairs.fingerprint()}+roles:{role_pairs.fingerprint()}"
    )
    assert preference_pairs.builtin_parts("pairs+more.jsonl") is None  # a file name with a plus stays a file
