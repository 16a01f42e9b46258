"""Prefix trees (``debias.prefix_tree``) on hand-built sequences: nodes, depths, paths and masks."""

from __future__ import annotations

import torch

from debias import prefix_tree


def test_shared_prefixes_become_one_tree_with_each_token_once():
    a, b, c = (1, 2, 3, 4, 5), (1, 2, 3, 4, 6, 7), (1, 2, 3, 9)
    (tree,) = prefix_tree.pack([b, a, c, a], min_shared=3)  # order and duplicates do not matter
    # lexicographic order a < b < c: a's 5 nodes, then b's 6 and 7 after a's 4, then c's 9 after a's 3
    assert tree.tokens == [1, 2, 3, 4, 5, 6, 7, 9]
    assert tree.depth == [0, 1, 2, 3, 4, 4, 5, 3]
    assert tree.parent == [-1, 0, 1, 2, 3, 3, 5, 2]
    assert tree.paths == {a: [0, 1, 2, 3, 4], b: [0, 1, 2, 3, 5, 6], c: [0, 1, 2, 7]}
    for seq, path in tree.paths.items():
        assert [tree.tokens[n] for n in path] == list(seq)
        assert [tree.depth[n] for n in path] == list(range(len(seq)))


def test_each_node_sees_exactly_its_own_path():
    a, b = (1, 2, 3), (1, 2, 4)
    (tree,) = prefix_tree.pack([a, b], min_shared=2)
    expected = torch.tensor(
        [
            [1, 0, 0, 0],  # 1
            [1, 1, 0, 0],  # 1 2
            [1, 1, 1, 0],  # 1 2 3   (a's last token)
            [1, 1, 0, 1],  # 1 2 4   (b's last token does not see a's)
        ],
        dtype=torch.bool,
    )
    assert torch.equal(tree.visible(), expected)


def test_little_sharing_or_a_full_tree_starts_a_new_one():
    a, b = (1, 2, 3, 4), (1, 2, 5, 6)
    assert len(prefix_tree.pack([a, b], min_shared=3)) == 2  # only 2 shared tokens
    assert len(prefix_tree.pack([a, b], min_shared=2)) == 1
    assert [len(t) for t in prefix_tree.pack([a, b], max_nodes=5, min_shared=2)] == [4, 4]  # 6 > 5


def test_batch_mask_pads_with_self_attention_and_applies_a_window():
    short, long_ = prefix_tree.pack([(1, 2)], min_shared=1)[0], prefix_tree.pack([(3, 4, 5, 6)])[0]
    mask = prefix_tree.attention_mask([long_, short], width=4)
    assert mask.shape == (2, 1, 4, 4)
    assert torch.equal(mask[0, 0], torch.tril(torch.ones(4, 4, dtype=torch.bool)))  # one sequence: causal
    assert torch.equal(mask[1, 0, 2:, :], torch.eye(4, dtype=torch.bool)[2:])  # padding sees only itself
    windowed = prefix_tree.attention_mask([long_], width=4, window=2)[0, 0]
    assert windowed[3].tolist() == [False, False, True, True]  # depth 3 sees depths 2 and 3 only
