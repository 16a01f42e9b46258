"""The wider pair set: balanced in both conditional directions, split by frame, none of it benchmark text."""

from __future__ import annotations

from collections import Counter

from debias.data import bias_pairs, preference_pairs, varied_pairs


def test_varied_set_contains_the_builtin_training_pairs_and_reverse_pairs():
    train = varied_pairs.generate("train")
    builtin = {(p.prompt, p.chosen, p.rejected) for p in bias_pairs.generate("train")}
    assert builtin <= {(p.prompt, p.chosen, p.rejected) for p in train}
    assert {p.bias_type for p in train} == set(bias_pairs.BIAS_TYPES)
    reverse_start = len(bias_pairs.FRAMES) + len(varied_pairs.FORWARD_FRAMES)
    assert any(p.frame >= reverse_start for p in train)
    assert all(p.chosen != p.rejected for p in train)


def test_split_is_by_frame_in_both_directions():
    train, heldout = varied_pairs.generate("train"), varied_pairs.generate("heldout")
    assert {p.frame for p in train}.isdisjoint({p.frame for p in heldout})
    assert {p.prompt for p in train}.isdisjoint({p.prompt for p in heldout})
    # the held-out split keeps the builtin held-out frames, so the same probe compares both sets
    builtin_heldout = {(p.prompt, p.chosen, p.rejected) for p in bias_pairs.generate("heldout")}
    assert builtin_heldout <= {(p.prompt, p.chosen, p.rejected) for p in heldout}


def test_every_text_is_rejected_as_often_as_it_is_chosen():
    """Forward: an attribute; reverse: a subject. Neither direction can move an overall likelihood."""
    for split in ("train", "heldout"):
        rejected = Counter(p.rejected for p in varied_pairs.generate(split))
        chosen = Counter(p.chosen for p in varied_pairs.generate(split))
        # within one contrast the counts match; across contrasts a shared attribute adds up the same way
        assert rejected == chosen, split


def test_reverse_pairs_reject_the_stereotyped_group():
    reverse_start = len(bias_pairs.FRAMES) + len(varied_pairs.FORWARD_FRAMES)
    pairs = [p for p in varied_pairs.generate("train") if p.frame == reverse_start]
    pair = next(p for p in pairs if p.prompt == "The most emotional person in the room was")
    assert (pair.rejected, pair.chosen) == (" the woman.", " the man.")
    pair = next(p for p in pairs if p.prompt == "The most rational person in the room was")
    assert (pair.rejected, pair.chosen) == (" the man.", " the woman.")


def test_preference_pairs_loads_the_varied_set_by_name():
    pairs = preference_pairs.load("varied", "train")
    assert len(pairs) == len(varied_pairs.generate("train"))
    assert preference_pairs.fingerprint("varied").startswith("varied:")
    assert preference_pairs.fingerprint("varied") != preference_pairs.fingerprint("builtin")


def test_counterfactual_prompt_pairs_differ_only_in_the_subject_and_are_varied_pair_prompts():
    """The distribution-matching term's prompts: the forward frames' prompts, both groups, split by frame."""
    train, heldout = varied_pairs.prompt_pairs("train"), varied_pairs.prompt_pairs("heldout")
    forward_prompts = {p.prompt for split in ("train", "heldout") for p in varied_pairs.generate(split)}
    for a, b, _ in train + heldout:
        assert a != b and a in forward_prompts and b in forward_prompts  # so the 8-gram test covers them
    assert ("People often describe the woman as", "People often describe the man as", "gender") in train
    assert ("Q: What word best fits the woman? A:", "Q: What word best fits the man? A:", "gender") in heldout
    assert {p[0] for p in train}.isdisjoint({p[0] for p in heldout})
    assert {p[2] for p in train} == set(bias_pairs.BIAS_TYPES)
    # one row per (subject pair, frame): 20 training frames, 3 held-out ones
    per_frame = Counter(p[2] for p in train)
    assert per_frame["gender"] == 11 * 20 and Counter(p[2] for p in heldout)["gender"] == 11 * 5
