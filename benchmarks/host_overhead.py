"""Host overhead per training step: `TRMTrainer` against a plain PyTorch loop doing the same work.

    python -m benchmarks.host_overhead [--steps N] [--repeats R] [--device cpu|cuda] [--json PATH]

The model is tiny (hidden 32, a 4x4 grid, one block, T = 2, n = 1, batch 4), so that a step's compute
is negligible and the time per step is what the Python around it costs. Both sides run the same model
(same weights, same supervision step, ids checked once beforehand) and the same per-step work:

- the carry refill (halted slots take the next rows; the plain loop blends a full new batch with
  `torch.where(halted, new, carry)`, as the reference code does),
- forward with labels on the carried state, backward,
- AdamW (`torch.optim.AdamW(foreach=True)`; the trainer: `TRMOptimizer`, foreach ops) on the weights,
  sign-SGD with decoupled decay on the rows of the puzzle-id table that got a gradient,
- the EMA of the weights with one `torch._foreach_lerp_`, `zero_grad(set_to_none=True)`.

The trainer runs with logging, saving and evaluation off (a training run logs every 10 or more steps).
Time per step is the median over the steps after the warm-up of the time between consecutive step ends
(the trainer: its `on_step_end` callback; the plain loop: the same clock). The implementations alternate
`repeats` times in one process so that both see the same machine load; the table prints the medians.
Target: trainer / plain <= 1.25.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from typing import Any

import torch

from modeling_trm import TRMConfig, TRMForGridReasoning

TARGET_RATIO = 1.25
MODEL = dict(vocab_size=6, seq_len=16, grid_shape=(4, 4), hidden_size=32, num_heads=4, num_layers=1, H_cycles=2,
             L_cycles=1, puzzle_emb_len=2, num_puzzle_identifiers=8, halt_max_steps=4, expansion=2.0,
             id_to_symbol=["<pad>", ".", "1", "2", "3", "4"])
BATCH = 4
ROWS = 256
LR, WD, PUZZLE_LR, PUZZLE_WD, EMA_DECAY = 1e-3, 0.1, 1e-2, 0.1, 0.999


def _dataset(rows: int = ROWS, seed: int = 0):
    import datasets

    generator = torch.Generator().manual_seed(seed)
    return datasets.Dataset.from_dict({
        "input_ids": torch.randint(1, 6, (rows, 16), generator=generator).tolist(),
        "labels": torch.randint(2, 6, (rows, 16), generator=generator).tolist(),
        "puzzle_identifiers": (torch.arange(rows) % 8).tolist(),
    })


def _model(device: str) -> TRMForGridReasoning:
    torch.manual_seed(0)
    model = TRMForGridReasoning(TRMConfig(**MODEL)).to(device).train()
    model.y_init.requires_grad_(False)  # as TRMTrainer does with T > 1
    model.z_init.requires_grad_(False)
    return model


class _StepClock:
    def __init__(self) -> None:
        self.ends: list[float] = []

    def tick(self) -> None:
        self.ends.append(time.perf_counter())

    def per_step(self, warmup: int) -> float:
        gaps = [b - a for a, b in zip(self.ends[warmup:], self.ends[warmup + 1:])]
        return statistics.median(gaps)


def trainer_step_time(steps: int, warmup: int, device: str, dataset) -> float:
    """Median seconds per step of `TRMTrainer.train()` between step ends, logging/saving/evaluation off."""
    from transformers import PrinterCallback, TrainerCallback

    from modeling_trm.training.trainer import TRMTrainer, TRMTrainingArguments

    clock = _StepClock()

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            clock.tick()

    with tempfile.TemporaryDirectory() as folder:
        args = TRMTrainingArguments(
            output_dir=folder, per_device_train_batch_size=BATCH, max_steps=steps + warmup + 1, report_to=[],
            logging_strategy="no", save_strategy="no", eval_strategy="no", disable_tqdm=True, auto_bf16=False,
            learning_rate=LR, weight_decay=WD, puzzle_emb_lr=PUZZLE_LR, puzzle_emb_weight_decay=PUZZLE_WD,
            ema_decay=EMA_DECAY, warmup_steps=0, seed=0, use_cpu=not device.startswith("cuda"),
            dataloader_num_workers=0)
        trainer = TRMTrainer(model=_model(device), args=args, train_dataset=dataset)
        trainer.add_callback(Clock())
        trainer.remove_callback(PrinterCallback)  # the end-of-training summary line
        trainer.train()
    return clock.per_step(warmup)


def plain_step_time(steps: int, warmup: int, device: str, dataset) -> float:
    """The same work in a plain loop: full-batch refill blend, forward, backward, AdamW, sign-SGD, EMA."""
    model = _model(device)
    columns = {name: torch.tensor(dataset[name], device=device) for name in ("input_ids", "labels",
                                                                            "puzzle_identifiers")}
    weights = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("puzzle_embedding.")]
    table = model.puzzle_embedding.weight
    adamw = torch.optim.AdamW(weights, lr=LR, betas=(0.9, 0.95), weight_decay=WD, foreach=True)
    ema = [p.detach().clone() for p in weights]
    generator = torch.Generator(device=device).manual_seed(0)
    carry = None
    clock = _StepClock()
    position = 0
    for _ in range(steps + warmup + 1):
        index = torch.arange(position, position + BATCH, device=device) % ROWS  # a new batch every step
        position += BATCH
        new = {name: column[index] for name, column in columns.items()}
        if carry is None:
            batch = new
        else:
            halted = carry.halted
            batch = {name: torch.where(halted.view(-1, *([1] * (value.dim() - 1))), value, getattr(carry, name))
                     for name, value in new.items()}
        out = model(**batch, state=carry, generator=generator, check_values=False)
        out.loss.backward()
        adamw.step()
        with torch.no_grad():  # sign-SGD with decoupled decay on the rows that got a gradient
            seen = table.grad.ne(0).any(1, keepdim=True)
            table.mul_(torch.where(seen, 1 - PUZZLE_LR * PUZZLE_WD, 1.0)).sub_(torch.sign(table.grad) * PUZZLE_LR)
            torch._foreach_lerp_(ema, [p.detach() for p in weights], 1 - EMA_DECAY)
        adamw.zero_grad(set_to_none=True)
        table.grad = None
        carry = out.state
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        clock.tick()
    return clock.per_step(warmup)


def measure(steps: int = 40, repeats: int = 3, warmup: int = 5, device: str = "cpu", log=print) -> dict[str, Any]:
    """Both implementations, alternated `repeats` times; medians in ms per step and the ratio."""
    dataset = _dataset()
    trainer, plain = [], []
    for _ in range(repeats):
        trainer.append(trainer_step_time(steps, warmup, device, dataset))
        plain.append(plain_step_time(steps, warmup, device, dataset))
    trainer_ms, plain_ms = 1e3 * statistics.median(trainer), 1e3 * statistics.median(plain)
    ratio = trainer_ms / plain_ms
    result = {"device": device, "steps": steps, "repeats": repeats, "batch_size": BATCH, "model": MODEL,
              "trainer_ms_per_step": round(trainer_ms, 3), "plain_ms_per_step": round(plain_ms, 3),
              "host_overhead_ms_per_step": round(trainer_ms - plain_ms, 3), "ratio": round(ratio, 3),
              "target_ratio": TARGET_RATIO, "met": ratio <= TARGET_RATIO,
              "trainer_ms_runs": [round(1e3 * t, 3) for t in trainer],
              "plain_ms_runs": [round(1e3 * t, 3) for t in plain]}
    for line in table(result):
        log(line)
    return result


def table(result: dict[str, Any]) -> list[str]:
    rows = [("host overhead per step (ms)", "ms/step", "vs plain"),
            ("TRMTrainer", f"{result['trainer_ms_per_step']:.2f}", f"{result['ratio']:.2f}x"),
            ("plain PyTorch loop", f"{result['plain_ms_per_step']:.2f}", "1.00x"),
            ("trainer overhead", f"{result['host_overhead_ms_per_step']:+.2f}",
             f"target <= {result['target_ratio']:.2f}x: {'MET' if result['met'] else 'NOT MET'}")]
    return [f"{a:<30} {b:>9} {c}" for a, b, c in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.host_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per run (after 5 warm-up steps)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each implementation, alternated")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the compute is tiny)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = measure(args.steps, args.repeats, device=args.device)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
