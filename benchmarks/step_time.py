"""Wall time of one training supervision step (forward of T cycles, backward of the last, optimizer step).

    python -m benchmarks.step_time --preset sudoku-mlp --batch-size 64 --repeats 3

Prints a table: dtype, median seconds per step, samples/s, achieved GFLOP/s (analytic count, see
modeling_trm/flops.py). Uses the package's model and optimizer exactly as TRMTrainer does.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from modeling_trm import TRMConfig, TRMForGridReasoning
from modeling_trm.flops import training_step_flops
from modeling_trm.optim import TRMOptimizer, build_param_groups


def time_training_step(preset: str, batch_size: int, dtype: str, repeats: int, warmup: int = 1) -> list[float]:
    return time_config_steps(TRMConfig.from_preset(preset), batch_size, dtype, repeats, warmup)


def time_config_steps(config: TRMConfig, batch_size: int, dtype: str, repeats: int, warmup: int = 1,
                      learning_rate: float = 1e-4, weight_decay: float = 1.0) -> list[float]:
    """Seconds of each timed step (after `warmup` untimed ones) on random tokens, carry kept across steps."""
    torch.manual_seed(0)
    model = TRMForGridReasoning(config).train()
    optimizer = TRMOptimizer(build_param_groups(model, learning_rate, weight_decay, learning_rate, weight_decay))
    ids = torch.randint(1, config.vocab_size, (batch_size, config.seq_len))
    labels = torch.randint(2, config.vocab_size, (batch_size, config.seq_len))
    state = None
    times = []
    for index in range(warmup + repeats):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            out = model(ids, labels=labels, state=state)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state = out.state
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="sudoku-mlp")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtypes", default="fp32,bf16")
    args = parser.parse_args()
    flops = training_step_flops(TRMConfig.from_preset(args.preset), args.batch_size)
    print(f"{'preset':<12} {'batch':>5} {'dtype':<5} {'s/step':>8} {'samples/s':>10} {'GFLOP/s':>8}  threads={torch.get_num_threads()}")
    for dtype in args.dtypes.split(","):
        median = statistics.median(time_training_step(args.preset, args.batch_size, dtype, args.repeats))
        print(f"{args.preset:<12} {args.batch_size:>5} {dtype:<5} {median:>8.2f} {args.batch_size / median:>10.1f} "
              f"{flops / median / 1e9:>8.0f}")


if __name__ == "__main__":
    main()
