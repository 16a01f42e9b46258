"""The generation probe on the real default model: batching changes speed, not what the model writes."""

from __future__ import annotations

from debias import models, probe


def _texts(generations, mode: str) -> list[str]:
    return [g.text for g in generations if g.mode == mode and g.model == "base"]


def test_batched_greedy_equals_one_prompt_at_a_time_and_sampling_is_seeded(smollm2):  # noqa: ARG001
    runner = probe.Probe(models.DEFAULT_MODEL, max_new_tokens=12)
    prompts = list(probe.QUICK_PROMPTS)  # different lengths: left padding is exercised
    batched = runner.run(prompts)

    assert [(g.prompt, g.model, g.mode) for g in batched] == [
        (p, "base", mode) for p in prompts for mode in ("greedy", "sampled")
    ]
    single = [g for p in prompts for g in runner.generate(p)]
    assert _texts(batched, "greedy") == _texts(single, "greedy")
    assert all(text.strip() for text in _texts(batched, "greedy"))
    # the seed is reset before each call: the same batch samples the same text again
    assert _texts(runner.run(prompts), "sampled") == _texts(batched, "sampled")
