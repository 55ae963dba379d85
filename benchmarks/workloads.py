"""What the suite times: one training supervision step (package or plain baseline) and `solve`.

A training step is what `TRMTrainer` does per optimizer step, minus data loading and the EMA:
forward of T(n+1) network calls on the carried state, backward through the last n+1, the
optimizer step. The carry continues across timed steps, as in training (slots that halt restart).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch

from modeling_trm import TRMConfig, TRMForGridReasoning
from modeling_trm.training.optim import TRMOptimizer, build_param_groups

from .baseline import PlainTRM, plain_optimizer


def autocast_for(dtype: str, device_type: str = "cpu"):
    if dtype == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    if dtype == "fp32":
        return nullcontext()
    raise ValueError(f"dtype must be 'fp32' or 'bf16', got {dtype!r}")


def random_batch(config: TRMConfig, batch_size: int, seed: int = 0,
                 device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens, drawn on the CPU (the same batch on every device) and moved to `device`."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, config.vocab_size, (batch_size, config.seq_len), generator=generator)
    labels = torch.randint(2, config.vocab_size, (batch_size, config.seq_len), generator=generator)
    return input_ids.to(device), labels.to(device)


def package_model(config: TRMConfig, seed: int = 0, device: str | torch.device = "cpu") -> TRMForGridReasoning:
    torch.manual_seed(seed)
    model = TRMForGridReasoning(config).to(device).train()
    if config.H_cycles > 1:  # as TRMTrainer does: no gradient can reach the initial states
        model.y_init.requires_grad_(False)
        model.z_init.requires_grad_(False)
    return model


class GradOnlyCompiledCore(torch.nn.Module):
    """The shared network, run through `torch.compile` only where it builds a graph (the n + 1 calls
    with gradients); calls without gradients stay eager, where compiling made the bf16 forward slower
    (TRM_FACTS/CPU_PERF_NOTES). A benchmark variant, not a package feature."""

    def __init__(self, core: torch.nn.Module) -> None:
        super().__init__()
        self.eager = core
        self.compiled = torch.compile(core)

    def forward(self, hidden: torch.Tensor, injection: torch.Tensor) -> torch.Tensor:
        return (self.compiled if torch.is_grad_enabled() else self.eager)(hidden, injection)


def package_training_step(model: TRMForGridReasoning, batch_size: int, dtype: str,
                          compiled: bool = False) -> Callable[[], float]:
    """A closure running one supervision step of the package (optimizer as in TRMTrainer); returns the loss.
    `compiled` runs the network calls with gradients through `torch.compile` (GradOnlyCompiledCore).
    Runs on the device of the model's weights (returning the loss as a float waits for the device)."""
    device = next(model.parameters()).device
    optimizer = TRMOptimizer(build_param_groups(model, 1e-4, 1.0, 1e-4, 1.0))
    input_ids, labels = random_batch(model.config, batch_size, device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    if compiled:
        model.core = GradOnlyCompiledCore(model.core)
    carry = {"state": None}

    def step() -> float:
        with autocast_for(dtype, device.type):
            out = model(input_ids, labels=labels, state=carry["state"], generator=generator)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        carry["state"] = out.state
        return float(out.loss.detach())

    return step


def baseline_training_step(config: TRMConfig, batch_size: int, dtype: str, seed: int = 0) -> Callable[[], float]:
    """A closure running one supervision step of the plain eager baseline with torch AdamW."""
    torch.manual_seed(seed)
    model = PlainTRM(config).train()
    optimizer = plain_optimizer(model)
    input_ids, labels = random_batch(config, batch_size)
    carry = {"state": model.new_carry(input_ids, labels)}

    def step() -> float:
        with autocast_for(dtype):
            loss, carry["state"] = model.training_step(carry["state"], input_ids, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def package_solve(model: TRMForGridReasoning, input_ids: torch.Tensor, dtype: str, halting: str,
                  max_steps: int | None = None, samples: int = 1, noise_std: float = 0.0,
                  seed: int = 0) -> Callable[[], object]:
    """A closure running `model.solve` on `input_ids`; returns the TRMSolveOutput. `samples=K` runs K
    noisy trajectories per puzzle (latent noise `noise_std`, drawn from a generator seeded with `seed`
    afresh on every call, so that every call computes the same) and keeps one by the halting head."""
    model.eval()

    def run():
        generator = torch.Generator(input_ids.device).manual_seed(seed) if noise_std > 0 else None
        with autocast_for(dtype, input_ids.device.type):
            return model.solve(input_ids, halting=halting, max_steps=max_steps, samples=samples,
                               noise_std=noise_std, generator=generator)

    return run


def package_solve_stream(model: TRMForGridReasoning, input_ids: torch.Tensor, dtype: str, halting: str,
                         batch_size: int, refill: bool) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    """A closure solving every row of `input_ids` `batch_size` at a time; returns (predictions, steps).

    Without `refill`, one `solve` call per batch (under ACT the batch shrinks as puzzles halt); with
    it, one call whose `batch_size` slots take the next puzzle as soon as theirs halts."""
    model.eval()

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        with autocast_for(dtype, input_ids.device.type):
            if refill:
                out = model.solve(input_ids, halting=halting, slots=batch_size)
                return out.predictions, out.steps
            parts = [model.solve(input_ids[start:start + batch_size], halting=halting)
                     for start in range(0, len(input_ids), batch_size)]
        return torch.cat([p.predictions for p in parts]), torch.cat([p.steps for p in parts])

    return run


def saved_activation_bytes(model: TRMForGridReasoning, batch_size: int, dtype: str) -> int:
    """Bytes of the distinct tensors autograd saves for the backward of one supervision step.

    These are the activations of the n + 1 network calls run with gradients (plus the heads and the
    loss); the T - 1 cycles without gradients save nothing.
    """
    input_ids, labels = random_batch(model.config, batch_size)
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.device.type == "cpu" and not isinstance(tensor, torch.nn.Parameter):
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), autocast_for(dtype):
        out = model(input_ids, labels=labels)
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    del out
    return sum(size for pointer, size in storages.items() if pointer not in parameters)
