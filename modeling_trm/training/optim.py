"""Optimizers of the TRM recipe in plain PyTorch (no CUDA extension), and the EMA of the weights.

One `TRMOptimizer` holds every parameter group, each with its own update rule, so that the
`transformers.Trainer` sees one optimizer and one LR schedule (the schedule scales every group's LR):

- `"adamw"`: Adam with decoupled weight decay (the usual substitute for the reference optimizer);
- `"adam_atan2"`: the reference update `p -= lr/bc1 * atan2(m, sqrt(v)/sqrt(bc2))`, no epsilon;
- `"signsgd"`: the puzzle-embedding rule `p <- p(1 - lr*wd) - lr*sign(g)`, applied only to the rows
  that received a gradient (the ids present in the batch; gradients of repeated ids are summed by
  the embedding backward).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import nn

UPDATE_RULES = ("adamw", "adam_atan2", "signsgd")


class TRMOptimizer(torch.optim.Optimizer):
    """Parameter groups carry `rule` (one of `UPDATE_RULES`), `lr`, `weight_decay` and `betas`."""

    def __init__(self, param_groups: Iterable[dict[str, Any]], lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.95),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, rule="adamw")
        super().__init__(list(param_groups), defaults)
        for group in self.param_groups:
            if group["rule"] not in UPDATE_RULES:
                raise ValueError(f"unknown update rule {group['rule']!r}; choose one of {UPDATE_RULES}")

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """One update of every parameter with a gradient: a few `torch._foreach_*` calls per group (one
        kernel launch per op and tensor list, not per parameter), and no host read of any device value."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [param for param in group["params"] if param.grad is not None]
            if not params:
                continue
            if group["rule"] == "signsgd":
                for param in params:
                    self._signsgd(param, group)
            else:
                self._adam(params, group, atan2=group["rule"] == "adam_atan2")
        return loss

    def _step_count(self, param: torch.Tensor) -> int:
        """The parameter's update count after this step, kept as a Python int beside the state's tensor.

        `state["step"]` (a CPU tensor, as torch's own Adam keeps it) stays for checkpoints; the bias
        corrections read the int, so no step reads a tensor's value (a checkpoint of an older version,
        without the int, is read once)."""
        state = self.state[param]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(param, dtype=torch.float32)
            state["exp_avg_sq"] = torch.zeros_like(param, dtype=torch.float32)
            state["step_count"] = 0
        if "step_count" not in state:
            state["step_count"] = int(state["step"].item())
        state["step_count"] += 1
        return state["step_count"]

    def _adam(self, params: list[torch.Tensor], group: dict[str, Any], atan2: bool) -> None:
        beta1, beta2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        by_step: dict[int, list[torch.Tensor]] = {}  # parameters sharing a step count share the bias corrections
        for param in params:
            by_step.setdefault(self._step_count(param), []).append(param)
        torch._foreach_add_([self.state[param]["step"] for param in params], 1)
        for step, members in by_step.items():
            grads = [param.grad.float() for param in members]
            m = [self.state[param]["exp_avg"] for param in members]
            v = [self.state[param]["exp_avg_sq"] for param in members]
            torch._foreach_lerp_(m, grads, 1 - beta1)
            torch._foreach_mul_(v, beta2)
            torch._foreach_addcmul_(v, grads, grads, value=1 - beta2)
            bias1 = 1 - beta1 ** step
            bias2 = 1 - beta2 ** step
            torch._foreach_mul_(members, 1 - lr * wd)  # decoupled weight decay
            denominators = torch._foreach_div(torch._foreach_sqrt(v), math.sqrt(bias2))
            if atan2:
                updates = [torch.atan2(m_i, d_i) for m_i, d_i in zip(m, denominators)]
            else:
                torch._foreach_add_(denominators, group["eps"])
                updates = torch._foreach_div(m, denominators)
            updates = [u.to(p.dtype) for u, p in zip(updates, members)]
            torch._foreach_add_(members, updates, alpha=-lr / bias1)

    @staticmethod
    def _signsgd(param: torch.Tensor, group: dict[str, Any]) -> None:
        grad = param.grad
        lr, wd = group["lr"], group["weight_decay"]
        if param.dim() >= 2:  # an embedding table: touch only the rows seen in this batch
            # Without a mask index (whose size is data-dependent, a host sync): rows without a gradient are
            # scaled by exactly 1 and get sign(0) = 0 subtracted, so they keep their values bit for bit.
            seen = grad.flatten(1).ne(0).any(dim=1).view(-1, *([1] * (param.dim() - 1)))
            param.mul_(torch.where(seen, 1 - lr * wd, 1.0).to(param.dtype)).sub_(torch.sign(grad) * lr)
        else:
            param.mul_(1 - lr * wd).add_(torch.sign(grad), alpha=-lr)


def build_param_groups(model: nn.Module, lr: float, weight_decay: float, puzzle_emb_lr: float,
                       puzzle_emb_weight_decay: float, rule: str = "adamw",
                       betas: tuple[float, float] = (0.9, 0.95)) -> list[dict[str, Any]]:
    """The reference decays every weight; our learnable y_init/z_init (buffers there) are not decayed."""
    decayed, undecayed, puzzle = [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith("puzzle_embedding."):
            puzzle.append(param)
        elif name in ("y_init", "z_init"):
            undecayed.append(param)
        else:
            decayed.append(param)
    groups = [
        dict(params=decayed, lr=lr, weight_decay=weight_decay, rule=rule, betas=betas),
        dict(params=undecayed, lr=lr, weight_decay=0.0, rule=rule, betas=betas),
        dict(params=puzzle, lr=puzzle_emb_lr, weight_decay=puzzle_emb_weight_decay, rule="signsgd", betas=betas),
    ]
    return [group for group in groups if group["params"]]


class EMAWeights:
    """Exponential moving average of parameters: `ema <- decay * ema + (1 - decay) * param`.

    The puzzle-id table is left out (a buffer with its own optimizer in the reference; for ARC it is
    hundreds of MB); evaluation and saving use the EMA values with the current table.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, exclude_prefixes: tuple[str, ...] = ("puzzle_embedding.",)):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.exclude_prefixes = exclude_prefixes
        self.shadow: dict[str, torch.Tensor] = {
            name: param.detach().float().clone() for name, param in self._tracked(model)
        }

    def _tracked(self, model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
        for name, param in model.named_parameters():
            if not name.startswith(self.exclude_prefixes):
                yield name, param

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One `torch._foreach_lerp_` over every tracked tensor (no per-parameter launches, no host read)."""
        cached = getattr(self, "_lists", None)
        if cached is None or cached[0] is not model:  # the module walk once, not at every step
            tracked = list(self._tracked(model))
            cached = self._lists = (model, [param for _, param in tracked], [name for name, _ in tracked])
        params = cached[1]
        shadows = [self.shadow[name] for name in cached[2]]
        if all(param.dtype == torch.float32 for param in params):
            torch._foreach_lerp_(shadows, params, 1.0 - self.decay)
        else:
            torch._foreach_lerp_(shadows, [param.detach().float() for param in params], 1.0 - self.decay)

    def state_dict_for(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's state dict with EMA values in place of the tracked parameters."""
        state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        for name, value in self.shadow.items():
            state[name] = value.to(state[name].dtype)
        return state

    @contextmanager
    def applied_to(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily swap EMA values into the model (for evaluation), restoring the raw weights after."""
        backup = {name: param.detach().clone() for name, param in self._tracked(model)}
        with torch.no_grad():
            for name, param in self._tracked(model):
                param.copy_(self.shadow[name].to(param.dtype))
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, param in self._tracked(model):
                    param.copy_(backup[name])

    def load_shadow(self, values: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(values)
        if missing:
            raise ValueError(f"EMA state is missing {sorted(missing)}")
        for name in self.shadow:
            self.shadow[name] = values[name].detach().float().clone()
