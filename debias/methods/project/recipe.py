"""The training-free baseline: the groups' directions projected out of the residual stream.

Directions come from the project's own counterfactual prompts (``debias.data.bias_pairs``: the same
sentence frame about a subject of either group of a contrast, e.g. "People often describe the woman as"
vs "... the man as", ten bias types, training frames only): the residual stream at ``layer`` on each
prompt's last token, the difference per pair, and the principal directions of those differences with
every bias type weighted equally (SentenceDebias's estimate). There is nothing to train: the candidates
are projections of rank ``ranks`` (each the top-k subspace), and the shared select phase keeps the rank
whose SS on ``gee_stereoset_select`` is nearest 50 within the LMS budget — so the baseline gets the same
held-out discipline and the same chance to be tuned as every trained method.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from debias import models, projection, training
from debias.data import bias_pairs
from debias.methods.recipe import Candidate, Recipe
from debias.models import DEFAULT_MODEL


@dataclass
class ProjectConfig:
    """Every field is a flag of ``cli.py train --method project`` (underscores → dashes)."""

    model: str = DEFAULT_MODEL
    bias_types: tuple[str, ...] = ()  # estimate from these bias types only (empty: all ten)
    layer: int = -1  # residual stream after this many decoder layers; -1: two thirds of the depth
    ranks: tuple[int, ...] = (1, 2, 4, 8)  # candidate subspace sizes
    batch_size: int = 32
    select_task: str = "gee_stereoset_select"
    select_metric: str = "ss"
    max_lms_drop: float = 1.0
    # ... and whose word perplexity on held-out neutral text rose at most this much (0.03: 3 %; < 0: off)
    max_ppl_rise: float = 0.03
    seed: int = 0

    def __post_init__(self) -> None:
        self.bias_types = tuple(self.bias_types)
        self.ranks = tuple(sorted(set(int(r) for r in self.ranks)))
        if not self.ranks or self.ranks[0] < 1:
            raise ValueError(f"ranks must be positive integers, got {self.ranks}")
        unknown = sorted(set(self.bias_types) - set(bias_pairs.BIAS_TYPES))
        if unknown:
            raise ValueError(f"bias_types: {', '.join(unknown)} unknown ({', '.join(bias_pairs.BIAS_TYPES)})")


@torch.no_grad()
def last_token_states(model, tokenizer, prompts: list[str], layer: int, batch_size: int) -> torch.Tensor:
    """Residual stream after ``layer`` decoder layers at each prompt's last token (left padding)."""
    rows = []
    for i in range(0, len(prompts), batch_size):
        ids, attn, _ = training.pad(
            [tokenizer.encode(p, add_special_tokens=False) for p in prompts[i : i + batch_size]],
            tokenizer.pad_token_id,
            left=True,
        )
        positions = (attn.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=ids, attention_mask=attn, position_ids=positions, output_hidden_states=True)
        rows.append(out.hidden_states[layer][:, -1].float())
    return torch.cat(rows)


class ProjectRecipe(Recipe):
    method = "project"
    unit = "rank"
    quick = {"ranks": (1, 2), "select_task": "", "bias_types": ("gender",)}

    def setup(self) -> None:
        cfg = self.cfg
        self.check_resume()
        self.folder.path.mkdir(parents=True, exist_ok=True)
        self.model_ref = models.reference(cfg.model)
        self.model, self.tokenizer = models.load(str(self.model_ref.path))
        self.model.eval()
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        depth = int(self.model.config.num_hidden_layers)
        self.layer = cfg.layer if cfg.layer >= 0 else round(depth * 2 / 3)
        if not 0 < self.layer <= depth:
            raise ValueError(f"layer must be in 1..{depth} for this model, got {cfg.layer}")
        self.write_config(self.model_ref, None, "cpu")

    def train(self) -> dict[str, Any]:
        cfg = self.cfg
        pairs = bias_pairs.prompt_pairs("train", cfg.bias_types)
        print(f"project: {len(pairs)} prompt pairs, layer {self.layer}, ranks {cfg.ranks}", file=sys.stderr)
        a = last_token_states(self.model, self.tokenizer, [p[0] for p in pairs], self.layer, cfg.batch_size)
        b = last_token_states(self.model, self.tokenizer, [p[1] for p in pairs], self.layer, cfg.batch_size)
        directions, explained = projection.bias_subspace(a - b, [p[2] for p in pairs], max(cfg.ranks))
        info = {
            "base_model": cfg.model,
            "base_weights_sha256": self.model_ref.weights_sha256,
            "layer": self.layer,
            "pairs": len(pairs),
            "exact": projection.exact_for(self.model),
        }
        for rank in cfg.ranks:
            folder = self.folder.checkpoints / f"rank-{rank}"
            if not folder.is_dir():
                projection.save(folder, directions[:rank], {**info, "explained": explained[:rank]})
        summary = {
            "method": "project",
            "pairs": len(pairs),
            "layer": self.layer,
            "explained_variance": explained,
            "pair_set": f"builtin:{bias_pairs.fingerprint()}",
            "exact": info["exact"],
        }
        self.write_config(self.model_ref, summary, "cpu")
        return summary

    def candidates(self) -> list[Candidate]:
        found = sorted(self.folder.checkpoints.glob("rank-*"), key=lambda p: int(p.name.split("-")[1]))
        return [Candidate(p.name.split("-")[1], p) for p in found if projection.is_projection(p)]

    def adapter_summary(self, adapter: Path) -> dict[str, Any]:
        import json

        rank = json.loads((Path(adapter) / projection.CONFIG).read_text())["rank"]
        return {**super().adapter_summary(adapter), "rank": int(rank)}


__all__ = ["ProjectConfig", "ProjectRecipe", "last_token_states"]
