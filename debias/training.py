"""Pieces every training method shares: LoRA setup, the optimizer/schedule, checkpoints, metric logs.

Checkpoints hold only what a resumed run needs to continue *bit-for-bit*: the adapter (not the frozen
base: that is hundreds of MB and recoverable from the model spec), optimizer and scheduler state, every
RNG, the data sampler's position and the method's own state. accelerate's ``save_state`` would write the
whole model, so we write these few files ourselves, each checkpoint into a temp folder renamed into place.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from debias.atomic import atomic_dir

DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: the MLP projections only (equalisation's and DPO's default): on Gemma-3-270M's select half DPO on them
#: moved SS as far as on all seven for a fraction of the neutral-text perplexity (README, rows *-mlp)
MLP_LORA_TARGETS = ("gate_proj", "up_proj", "down_proj")


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


def span_logprobs(
    logits: torch.Tensor,
    ids: torch.Tensor,
    spans: Sequence[tuple[int, int]],
    length_normalize: bool = False,
) -> torch.Tensor:
    """Per row: the summed (or per-token mean) log-probability of ``ids[row, start:end]`` given its prefix.

    ``logits[:, t]`` predicts ``ids[:, t + 1]``. The log-softmax runs over the span's positions only, in
    float32: Gemma's vocabulary is 262k wide, so a whole-sequence log-softmax would cost vocab × length
    for tokens nobody scores. Every method that scores a continuation (DPO's held-out rewards, the tie
    term, equalisation's pairs) reads it here; keeps the graph when gradients are on.
    """
    totals = []
    for row, (start, end) in enumerate(spans):
        start = max(start, 1)  # token 0 has nothing to be predicted from
        logprobs = torch.log_softmax(logits[row, start - 1 : end - 1].float(), dim=-1)
        total = logprobs.gather(-1, ids[row, start:end, None]).sum()
        totals.append(total / max(end - start, 1) if length_normalize else total)
    return torch.stack(totals)


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
    """Every RNG's state as tensors and plain values (so ``torch.load(weights_only=True)`` reads it)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]
    return {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    keys = keys.numpy().astype(np.uint32) if isinstance(keys, torch.Tensor) else keys
    np.random.set_state((name, keys, pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])


def _load_state(path: Path) -> dict[str, Any]:
    """The resumable state, unpickling tensors and plain containers only (never arbitrary objects)."""
    import pickle

    from debias import untrusted

    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError as err:
        if not untrusted.pickle_allowed():
            raise untrusted.PickleRefused(
                f"{path}: holds objects beyond tensors and plain values (a checkpoint from an older "
                "version, or not this harness's); pass --allow-pickle to load it if you trust it"
            ) from err
        return torch.load(path, weights_only=False)


class StepBoundaryInterrupt(KeyboardInterrupt):
    """An interruption taken at the end of a step: the state is consistent, so it is checkpointed."""


class Interrupts:
    """SIGINT / SIGTERM during a step take effect when the step ends; a second signal stops at once.

    A checkpoint written from inside a step would hold the data sampler already advanced past a batch
    whose update was never applied (or an update applied to a step never counted), and the resumed run
    would differ from an uninterrupted one. So the first signal only sets a flag, the loop calls
    ``check()`` between steps, and the checkpoint it writes is exact. A second signal raises
    ``KeyboardInterrupt`` at once; the loop then writes no checkpoint and the previous one stays valid.
    """

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Interrupts:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                number = getattr(signal, name)
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        import signal

        if self.requested is not None:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        print(
            f"\n{self.requested}: stopping after this step (a checkpoint follows); send it again to stop "
            "at once without one",
            file=sys.stderr,
        )

    def check(self) -> None:
        if self.requested is not None:
            raise StepBoundaryInterrupt(self.requested)


MAX_BAD_STEPS = 5  # consecutive non-finite steps after which training stops (NonFiniteGuard)


class TrainingDiverged(RuntimeError):
    """Too many consecutive steps with a non-finite loss or gradient: training cannot go on usefully."""


class NonFiniteGuard:
    """Skips an update whose loss or gradient norm is NaN/inf, and stops after ``limit`` in a row.

    One bad batch (an overflow, a degenerate pair) should cost one step, not the adapter: AdamW would
    spread a NaN gradient into every trained weight and every later checkpoint. A run that keeps
    producing them is broken (a learning rate too high, bad data), and saying so beats training on.
    """

    def __init__(self, limit: int = 5) -> None:
        if limit < 1:
            raise ValueError(f"max_bad_steps must be >= 1, got {limit}")
        self.limit = limit
        self.consecutive = 0
        self.skipped = 0

    def allow(self, step: int, loss: float, grad_norm: float) -> bool:
        """True: apply the update. False: skip it (logged). Raises after ``limit`` bad steps in a row."""
        if math.isfinite(loss) and math.isfinite(grad_norm):
            self.consecutive = 0
            return True
        self.consecutive += 1
        self.skipped += 1
        print(
            f"warning: step {step}: loss {loss}, gradient norm {grad_norm}: not finite, update skipped "
            f"({self.consecutive} in a row)",
            file=sys.stderr,
        )
        if self.consecutive >= self.limit:
            raise TrainingDiverged(
                f"training stopped at step {step}: {self.consecutive} consecutive steps with a non-finite "
                "loss or gradient (lower the learning rate or check the training data); the checkpoints "
                "written so far are intact"
            )
        return False

    def state_dict(self) -> dict[str, int]:
        return {"consecutive": self.consecutive, "skipped": self.skipped}

    def load_state_dict(self, state: dict[str, int] | None) -> None:
        if state:
            self.consecutive, self.skipped = int(state["consecutive"]), int(state["skipped"])


def advance_schedule(scheduler) -> None:
    """``scheduler.step()`` after a step that may have skipped its update.

    The schedule follows the step count, skipped or not, so a resumed run and an uninterrupted one
    agree. When the very first update was the one skipped, torch warns that the scheduler stepped
    before the optimizer; here that order is deliberate, so that one warning is silenced.
    """
    import re
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()` before"))
        scheduler.step()


def non_finite_parameters(model) -> list[str]:
    """Names of trainable parameters holding a NaN or inf (empty: the adapter is safe to save)."""
    return [name for name, p in model.named_parameters() if p.requires_grad and not torch.isfinite(p).all()]


def check_finite(model, where: Path) -> None:
    bad = non_finite_parameters(model)
    if bad:
        raise TrainingDiverged(
            f"{where}: not written: {len(bad)} adapter tensor(s) hold NaN/inf (first: {bad[0]})"
        )


def save_checkpoint(checkpoints: Path, step: int, model, optimizer, scheduler, extra: dict[str, Any]) -> Path:
    """Write ``checkpoints/step-NNNNNN`` atomically; ``extra`` holds sampler/method state.

    An adapter with a NaN/inf weight is refused before anything is written: it would load as valid.
    """
    final = checkpoints / f"step-{step:06d}"
    check_finite(model, final)
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
    state = _load_state(path / "state.pt")
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
