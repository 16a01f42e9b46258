"""Pieces every training method shares: LoRA setup, the optimizer/schedule, checkpoints, metric logs.

Checkpoints hold only what a resumed run needs to continue *bit-for-bit*: the adapter (not the frozen
base: that is hundreds of MB and recoverable from the model spec), optimizer and scheduler state, every
RNG, the data sampler's position and the method's own state. accelerate's ``save_state`` would write the
whole model, so we write these few files ourselves, each checkpoint into a temp folder renamed into place.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from debias.atomic import atomic_dir

DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def pad(
    rows: Sequence[Sequence[int]],
    pad_id: int,
    left: bool = False,
    marks: Sequence[Sequence[int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(ids, attention mask, marks) of token rows padded to one width, on the right or on the left.

    ``marks`` (one 0/1 per token, e.g. which tokens are scored) are padded with 0 alongside. Every
    method batches variable-length rows; this is the one place that lays them out.
    """
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    marked = torch.zeros((len(rows), width), dtype=torch.long) if marks is not None else None
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(row)
        attn[i, span] = 1
        if marked is not None:
            marked[i, span] = torch.tensor(marks[i])
    return ids, attn, marked


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lora_config(
    r: int,
    alpha: int,
    dropout: float,
    target_modules: Sequence[str],
    layers: Sequence[int] | None = None,
):
    """The project's LoRA settings as peft's config (causal LM, no bias terms).

    ``layers``: only these decoder layers (by index) get adapters; None: every layer.
    """
    from peft import LoraConfig

    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        bias="none",
        task_type="CAUSAL_LM",
        layers_to_transform=list(layers) if layers is not None else None,
    )


def last_layers(model, count: int) -> list[int] | None:
    """Indices of the last ``count`` decoder layers (None when ``count`` is 0 or covers them all)."""
    total = int(model.config.num_hidden_layers)
    if count <= 0 or count >= total:
        return None
    return list(range(total - count, total))


def add_lora(
    model,
    r: int,
    alpha: int,
    dropout: float,
    target_modules: Sequence[str],
    layers: Sequence[int] | None = None,
):
    """Wrap ``model`` in a peft LoRA adapter; only the adapter's parameters train."""
    from peft import get_peft_model

    return get_peft_model(model, lora_config(r, alpha, dropout, target_modules, layers))


def optimizer_and_schedule(model, lr: float, weight_decay: float, warmup_steps: int, total_steps: int):
    """AdamW over the trainable parameters; linear warmup then linear decay to 10 % of ``lr``."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        remaining = max(total_steps - warmup_steps, 1)
        return max(0.1, 1.0 - 0.9 * (step - warmup_steps) / remaining)

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(checkpoints: Path, step: int, model, optimizer, scheduler, extra: dict[str, Any]) -> Path:
    """Write ``checkpoints/step-NNNNNN`` atomically; ``extra`` holds sampler/method state."""
    final = checkpoints / f"step-{step:06d}"
    with atomic_dir(final) as tmp:
        model.save_pretrained(tmp / "adapter")
        torch.save(
            {
                "step": step,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": rng_state(),
                "extra": extra,
            },
            tmp / "state.pt",
        )
    return final


def step_checkpoints(checkpoints: Path) -> list[Path]:
    """The finished ``step-N`` checkpoints, oldest first (a temp folder of an unfinished one is hidden)."""
    return sorted(checkpoints.glob("step-*")) if checkpoints.is_dir() else []


def latest_checkpoint(checkpoints: Path) -> Path | None:
    found = step_checkpoints(checkpoints)
    return found[-1] if found else None


def load_checkpoint(path: Path, model, optimizer, scheduler) -> tuple[int, dict[str, Any]]:
    """Restore adapter weights, optimizer, scheduler and RNGs in place; returns (step, extra)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(path / "adapter" / "adapter_model.safetensors"))
    set_peft_model_state_dict(model, weights)
    state = torch.load(path / "state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return state["step"], state["extra"]


class MetricsLog:
    """Append-only JSON lines, one per optimizer step, flushed so a killed run keeps every finished step."""

    def __init__(self, path: Path, truncate_after_step: int | None = None):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if truncate_after_step is not None and path.exists():
            # a resumed run re-does the steps after its checkpoint: drop their old lines
            kept = [
                line
                for line in path.read_text().splitlines()
                if json.loads(line)["step"] <= truncate_after_step
            ]
            path.write_text("".join(line + "\n" for line in kept))
        elif truncate_after_step is None and path.exists():
            path.unlink()

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")


class Throughput:
    """Tokens per second of the last step, for the progress bar and the metrics log."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def lap(self, tokens: int) -> float:
        now = time.perf_counter()
        rate = tokens / max(now - self.start, 1e-9)
        self.start = now
        return rate
