"""Pack model inputs that share a prefix into one tree, so each shared token is run through the model once.

A benchmark's requests overlap heavily: StereoSet's three candidates follow one context, a CrowS-Pairs
pair differs in a word or two, Winogender's pronoun options share the sentence up to the pronoun. On the
held-out suite ~30 % of the input tokens repeat a prefix already computed (StereoSet 45 %, Winogender
59 %). A tree is those inputs' trie written out as one row: every distinct prefix is one node, its
position id is its depth, and its attention mask lets it see its ancestors and itself only — exactly
what the node sees in each of its sequences under a causal mask, so every logit is the one the
sequence alone would give (to float rounding; the summation order inside the kernels differs).

Pure Python and torch; no model. The scorer (``debias.scorer``) batches trees and reads each request's
rows from the nodes on its path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch

Seq = tuple[int, ...]


@dataclass
class Tree:
    tokens: list[int] = field(default_factory=list)  # node -> its token
    depth: list[int] = field(default_factory=list)  # node -> position id (its index in its sequences)
    parent: list[int] = field(default_factory=list)  # node -> parent node, -1 for the root
    paths: dict[Seq, list[int]] = field(default_factory=dict)  # member sequence -> node at each position

    def __len__(self) -> int:
        return len(self.tokens)

    def add(self, seq: Seq, shared: int, along: Sequence[int]) -> None:
        """Add ``seq`` whose first ``shared`` tokens are the nodes ``along[:shared]``."""
        path = list(along[:shared])
        for position in range(shared, len(seq)):
            self.tokens.append(seq[position])
            self.depth.append(position)
            self.parent.append(path[-1] if path else -1)
            path.append(len(self.tokens) - 1)
        self.paths[seq] = path

    def visible(self) -> torch.Tensor:
        """``[nodes, nodes]`` bool: node i may attend to node j (j is i or one of its ancestors)."""
        n = len(self)
        mask = torch.zeros((n, n), dtype=torch.bool)
        for node in range(n):  # a parent is always created before its children
            if self.parent[node] >= 0:
                mask[node] = mask[self.parent[node]]
            mask[node, node] = True
        return mask


def _shared(a: Seq, b: Seq) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def pack(sequences: Iterable[Seq], max_nodes: int = 256, min_shared: int = 4) -> list[Tree]:
    """The distinct ``sequences`` as trees of at most ``max_nodes`` nodes (a longer sequence is a tree of
    its own). In lexicographic order a sequence's longest common prefix with any earlier one is with the
    one just before it, so one pass builds each trie. A sequence joins the current tree only when it
    shares at least ``min_shared`` tokens with it: a row's attention costs its whole width, so a tree of
    unrelated sequences that share only a first token would cost more than it saves."""
    trees: list[Tree] = []
    previous: Seq | None = None
    for seq in sorted(set(sequences)):
        tree = trees[-1] if trees else None
        shared = _shared(previous, seq) if previous is not None else 0
        if tree is not None and shared >= min_shared and len(tree) + len(seq) - shared <= max_nodes:
            tree.add(seq, shared, tree.paths[previous])  # type: ignore[index]
        else:
            tree = Tree()
            tree.add(seq, 0, [])
            trees.append(tree)
        previous = seq
    return trees


def attention_mask(trees: Sequence[Tree], width: int, window: int | None = None) -> torch.Tensor:
    """``[batch, 1, width, width]`` bool for right-padded rows: each tree's own visibility; a padding
    position sees only itself (no row of all-masked scores, whose softmax would be NaN and whose NaN
    values would reach real positions through 0 x NaN in the value product). ``window``: a sliding-window
    layer's limit on how far back (in positions) a token may look."""
    mask = torch.zeros((len(trees), 1, width, width), dtype=torch.bool)
    mask[:, 0] = torch.eye(width, dtype=torch.bool)
    for row, tree in enumerate(trees):
        mask[row, 0, : len(tree), : len(tree)] = tree.visible()
    return mask if window is None else mask & window_band(trees, width, window)


def window_band(trees: Sequence[Tree], width: int, window: int) -> torch.Tensor:
    """``[batch, 1, width, width]`` bool: positions less than ``window`` apart in depth (a padding
    position's own diagonal included), to AND with a visibility mask for a sliding-window layer."""
    depth = torch.zeros((len(trees), width), dtype=torch.long)
    for row, tree in enumerate(trees):
        depth[row, : len(tree)] = torch.tensor(tree.depth)
    return ((depth[:, :, None] - depth[:, None, :]) < window).unsqueeze(1)
