"""The FLOP floor's arithmetic by hand, and one run of the benchmark on a few documents of the real suite."""

from __future__ import annotations

import json

import benchmark_scripts
import torch


def _floor():
    return benchmark_scripts.load("heldout_floor")


def test_scored_inputs_share_a_model_input_and_union_their_positions():
    floor = _floor()
    encoded = [([1, 2, 3], [4]), ([1, 2, 3], [5]), ([1, 2], [3, 4]), ([9], [8, 7])]
    inputs = floor.scored_inputs(encoded, max_length=100)
    # [1,2,3]+[4] and [1,2,3]+[5] feed the same input (1,2,3) and read its last position;
    # [1,2]+[3,4] also feeds (1,2,3) and reads its last two positions
    assert inputs == {(1, 2, 3): {1, 2}, (9, 8): {0, 1}}


def test_scored_inputs_truncate_from_the_left_like_hflm():
    floor = _floor()
    inputs = floor.scored_inputs([([1, 2, 3, 4, 5], [6, 7])], max_length=4)
    # whole = last 5 tokens [3,4,5,6,7]; input drops the last -> (3,4,5,6); the continuation is its last 2
    assert inputs == {(3, 4, 5, 6): {2, 3}}


def test_required_flops_by_hand():
    floor = _floor()
    inputs = {(1, 2, 3): {2}, (4, 5): {0, 1}}
    flops = floor.required_flops(inputs, body_params=10, layers=2, attn_width=4, hidden=3, vocab=7)
    # 5 tokens; 3 scored; causal prefix pairs 3*4/2 + 2*3/2 = 9
    assert flops["tokens"] == 5 and flops["scored_positions"] == 3
    assert flops["body"] == 2 * 10 * 5
    assert flops["attention"] == 2 * 2 * 4 * 2 * 9
    assert flops["head"] == 2 * 3 * 7 * 3
    assert flops["head_if_everywhere"] == 2 * 3 * 7 * 5
    assert flops["total"] == 100 + 288 + 126


def test_shared_prefix_flops_by_hand():
    floor = _floor()
    # (1, 2, 3) and (1, 2, 4) share the prefix (1, 2): nodes (1) (1 2) (1 2 3) (1 2 4) -> 4 tokens, not 6
    inputs = {(1, 2, 3): {2}, (1, 2, 4): {1, 2}}
    flops = floor.shared_required_flops(inputs, body_params=10, layers=2, attn_width=4, hidden=3, vocab=7)
    # scored prefixes: (1 2 3), (1 2), (1 2 4) -> 3; attended pairs = node depths + 1: 1 + 2 + 3 + 3 = 9
    assert flops["tokens"] == 4 and flops["scored_positions"] == 3
    assert flops["body"] == 2 * 10 * 4
    assert flops["attention"] == 2 * 2 * 4 * 2 * 9
    assert flops["head"] == 2 * 3 * 7 * 3
    assert flops["total"] == 80 + 288 + 126


def test_body_params_exclude_the_head(smollm2):
    floor = _floor()
    model = smollm2[0]
    head = model.get_output_embeddings().weight.numel()
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert floor.body_linear_params(model) == linear - head > 0


def test_the_benchmark_runs_on_a_few_documents(tmp_path, smollm2, data_dir):
    floor = _floor()
    out = tmp_path / "floor.json"
    report = floor.main(["--limit", "2", "--batch-size", "4", "--gemm-n", "256", "--out", str(out)])
    assert json.loads(out.read_text())["suite_over_floor"] == report["suite_over_floor"] > 0
    # sharing prefixes can only lower the requirement, and the suite's inputs do share some
    assert report["required_shared_prefixes"]["tokens"] < report["required"]["tokens"]
    assert report["suite_over_shared_prefix_floor"] > report["suite_over_floor"]
    required = report["required"]
    # the head runs at fewer positions than there are tokens, and every task of gee_heldout contributes
    assert 0 < required["scored_positions"] < required["tokens"] and required["sequences"] > 2 * 5
    assert report["machine"]["cpu"].endswith(")")
