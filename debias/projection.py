"""A training-free artefact: bias directions projected out of all a model writes to its residual stream.

After SentenceDebias / INLP (bias-bench's projection baselines), moved from sentence embeddings to a
causal LM's residual stream. Given orthonormal directions ``V`` (k × hidden), ``P = I − VᵀV`` is applied
to every weight that writes to the residual stream — the token embeddings and each layer's attention
output and MLP down projections — so no component along ``V`` is ever added to it; and to the LM head's
input (tied embeddings get it with the embeddings; an untied head separately), so none is read out.
The result is an ordinary set of weights: evaluation and merging cost what the base model does.

Exact for architectures whose blocks add ``o_proj`` / ``down_proj`` outputs straight to the residual
(Llama, SmolLM2, Qwen2, Mistral); where a norm sits between them and the residual (Gemma 3's
post-attention/feed-forward norms) its elementwise scale can reintroduce a small component, and the
projection is approximate there (``apply`` says which it was).

Layout of a folder:
    projection.json          {"format": "debias-projection-v1", "base_weights_sha256": {...}, "rank": k,
                              "layer": ℓ, "writes": [...], "explained": [...]}
    projection.safetensors   "directions": (k, hidden) float32, orthonormal rows
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from debias.atomic import atomic_dir

FORMAT = "debias-projection-v1"
CONFIG = "projection.json"
WEIGHTS = "projection.safetensors"
WRITES = ("embed_tokens.weight", "o_proj.weight", "down_proj.weight")
# Gemma 2/3 norm both block outputs before the residual add (Llama's "post_attention_layernorm" is the
# pre-MLP norm): a "post_feedforward_layernorm" marks the architectures where the edit is approximate
NORM_AFTER_WRITE = ("post_feedforward_layernorm",)


def is_projection(folder: Path) -> bool:
    path = Path(folder) / CONFIG
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("format") == FORMAT
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False


def files(folder: Path) -> tuple[Path, Path]:
    return Path(folder) / CONFIG, Path(folder) / WEIGHTS


def orthonormal(directions: torch.Tensor) -> torch.Tensor:
    """Rows spanning the same space, orthonormal (QR), in float32; zero rows dropped."""
    directions = directions.detach().to(torch.float32)
    directions = directions[directions.norm(dim=1) > 0]
    if directions.numel() == 0:
        raise ValueError("no nonzero direction to project out")
    q, _ = torch.linalg.qr(directions.T)
    return q.T.contiguous()


def bias_subspace(
    differences: torch.Tensor, groups: list[str], rank: int
) -> tuple[torch.Tensor, list[float]]:
    """Top-``rank`` directions of the paired differences, every bias type weighted equally.

    SentenceDebias's estimate: the principal directions of the (uncentred) counterfactual differences.
    Each group's rows are scaled by ``1/√n_group`` so a bias type with many pairs does not own the
    subspace. Returns (directions (rank, hidden), share of the weighted variance each one explains).
    """
    if differences.shape[0] != len(groups):
        raise ValueError("one group label per difference row")
    counts: dict[str, int] = {}
    for g in groups:
        counts[g] = counts.get(g, 0) + 1
    weights = torch.tensor([counts[g] ** -0.5 for g in groups], dtype=torch.float32)
    weighted = differences.to(torch.float32) * weights[:, None]
    _, s, vh = torch.linalg.svd(weighted, full_matrices=False)
    rank = min(rank, vh.shape[0])
    explained = (s.square() / s.square().sum())[:rank]
    return vh[:rank].contiguous(), [float(e) for e in explained]


def save(folder: Path, directions: torch.Tensor, info: dict[str, Any]) -> Path:
    directions = orthonormal(directions)
    with atomic_dir(Path(folder)) as tmp:
        save_file({"directions": directions.cpu()}, str(tmp / WEIGHTS))
        config = {"format": FORMAT, **info, "rank": int(directions.shape[0]), "writes": list(WRITES)}
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return Path(folder)


def apply(
    model: torch.nn.Module, folder: Path, expected_weights: dict[str, str] | None = None
) -> torch.nn.Module:
    """Project the folder's directions out of ``model``'s residual-stream writes, in place."""
    folder = Path(folder)
    if not is_projection(folder):
        raise ValueError(f"{folder}: not a projection folder ({CONFIG} with format {FORMAT})")
    config = json.loads((folder / CONFIG).read_text())
    recorded = config.get("base_weights_sha256")
    if expected_weights and recorded and recorded != expected_weights:
        raise ValueError(
            f"{folder}: estimated on base weights {recorded}, not this model's {expected_weights}"
        )
    v = load_file(str(folder / WEIGHTS))["directions"]
    hidden = int(model.config.hidden_size)
    if v.ndim != 2 or v.shape[1] != hidden:
        raise ValueError(
            f"{folder}: directions of width {tuple(v.shape)}, this model's hidden size is {hidden}"
        )
    written = 0
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not name.endswith(WRITES):
                continue
            vv = v.to(param.device, torch.float32)
            w = param.to(torch.float32)
            # embeddings: rows are hidden vectors, E ← E P; projections (hidden, in): W ← P W
            embedding = name.endswith("embed_tokens.weight")
            w = w - (w @ vv.T) @ vv if embedding else w - vv.T @ (vv @ w)
            param.copy_(w.to(param.dtype))
            written += 1
        head = model.get_output_embeddings()
        embed = model.get_input_embeddings()
        if head is not None and head.weight.data_ptr() != embed.weight.data_ptr():  # untied: W ← W P
            vv = v.to(head.weight.device, torch.float32)
            w = head.weight.to(torch.float32)
            head.weight.copy_((w - (w @ vv.T) @ vv).to(head.weight.dtype))
    if not written:
        raise ValueError(
            f"{folder}: this model has none of the weights a projection edits ({', '.join(WRITES)})"
        )
    return model


def exact_for(model: torch.nn.Module) -> bool:
    """Whether the projection removes the directions exactly (no norm between a write and the residual)."""
    return not any(name.endswith(NORM_AFTER_WRITE) for name, _ in model.named_modules())


__all__ = [
    "CONFIG",
    "FORMAT",
    "WEIGHTS",
    "apply",
    "bias_subspace",
    "exact_for",
    "files",
    "is_projection",
    "orthonormal",
    "save",
]
