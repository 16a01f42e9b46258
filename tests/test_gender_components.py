"""Gender's role-behaviour and physical-characteristic pairs: balanced, split by frame, not benchmark text."""

from __future__ import annotations

from collections import Counter

from debias.data import bias_pairs, gender_components, preference_pairs


def test_the_subjects_genders_attribute_is_rejected_and_its_counterpart_chosen():
    pairs = gender_components.generate("train")
    mother = [p for p in pairs if p.prompt == "People often describe my mother as"]
    father = [p for p in pairs if p.prompt == "People often describe my father as"]
    assert (" good at cooking.", " good at repairs.") in {(p.rejected, p.chosen) for p in mother}
    assert (" good at repairs.", " good at cooking.") in {(p.rejected, p.chosen) for p in father}
    assert len(mother) == len(father) == len(gender_components.ATTRIBUTES)
    assert {p.bias_type for p in pairs} == {"gender"}


def test_every_continuation_is_rejected_as_often_as_it_is_chosen():
    per_frame = 10 * len(gender_components.ATTRIBUTES)  # 5 women, 5 men
    for split, frames in (("train", bias_pairs.TRAIN_FRAMES), ("heldout", 3)):
        pairs = gender_components.generate(split)
        assert Counter(p.rejected for p in pairs) == Counter(p.chosen for p in pairs), split
        assert len(pairs) == per_frame * frames


def test_split_is_the_builtin_sets_frame_split():
    train, heldout = gender_components.generate("train"), gender_components.generate("heldout")
    assert {p.frame for p in train} == {p.frame for p in bias_pairs.generate("train")}
    assert {p.frame for p in heldout} == {p.frame for p in bias_pairs.generate("heldout")}
    assert {p.prompt for p in train}.isdisjoint({p.prompt for p in heldout})


def test_no_attribute_is_already_a_builtin_gender_attribute():
    builtin = next(c for c in bias_pairs.CONTRASTS if c.bias_type == "gender").attributes
    ours = {a for pair in gender_components.ATTRIBUTES for a in pair}
    assert not ours & {a for pair in builtin for a in pair}


def test_the_set_joins_the_builtin_one_by_name():
    joined = preference_pairs.load("builtin+gender-components", "train")
    assert len(joined) == len(bias_pairs.generate("train")) + len(gender_components.generate("train"))
    assert preference_pairs.fingerprint("builtin+gender-components").endswith(
        f"+gender-components:{gender_components.fingerprint()}"
    )
