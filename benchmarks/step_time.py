"""Wall time of one training supervision step (forward of T cycles, backward of the last, optimizer step).

    python -m benchmarks.step_time --preset sudoku-mlp --batch-size 64 --repeats 3
    python -m benchmarks.step_time --recipe demo --batch-size 32 64 --hidden-size 64 128 --dtypes bf16 --repeats 8

Prints a table: dtype, median seconds per step, samples/s, achieved GFLOP/s (analytic count, see
modeling_trm/flops.py). Uses the package's model and optimizer exactly as TRMTrainer does.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from modeling_trm import TRMConfig, TRMForGridReasoning
from modeling_trm.dtypes import native_dtype
from modeling_trm.flops import training_step_flops
from modeling_trm.training.optim import TRMOptimizer, build_param_groups


def time_training_step(preset: str, batch_size: int, dtype: str, repeats: int, warmup: int = 1) -> list[float]:
    return time_config_steps(TRMConfig.from_preset(preset), batch_size, dtype, repeats, warmup)


def time_config_steps(config: TRMConfig, batch_size: int, dtype: str, repeats: int, warmup: int = 1,
                      learning_rate: float = 1e-4, weight_decay: float = 1.0,
                      max_seconds: float | None = None) -> list[float]:
    """Seconds of each timed step (after `warmup` untimed ones) on random tokens, carry kept across steps.

    With `max_seconds`, fewer than `repeats` steps are timed once that much time has passed since the first
    step (warm-up included) and at least one step is timed: a bound for very slow (contended) settings."""
    torch.manual_seed(0)
    model = TRMForGridReasoning(config).train()
    optimizer = TRMOptimizer(build_param_groups(model, learning_rate, weight_decay, learning_rate, weight_decay))
    ids = torch.randint(1, config.vocab_size, (batch_size, config.seq_len))
    labels = torch.randint(2, config.vocab_size, (batch_size, config.seq_len))
    state = None
    times = []
    began = time.perf_counter()
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
            if max_seconds is not None and time.perf_counter() - began > max_seconds:
                break
    return times


def recipe_config(name: str, hidden_size: int | None = None) -> TRMConfig:
    """The model a generated-Sudoku recipe trains (grid size from its data), optionally at another width."""
    from modeling_trm.recipes_io import load_recipe

    recipe = load_recipe(name)
    if recipe["data"]["builder"] != "generated-sudoku":
        raise ValueError(f"--recipe {name}: only generated-Sudoku recipes have their grid size in the recipe")
    overrides = dict(recipe["model"].get("overrides", {}))
    if hidden_size is not None:
        overrides["hidden_size"] = hidden_size
    size = int(recipe["data"]["args"]["size"])
    return TRMConfig.from_preset(recipe["model"]["preset"], **overrides, seq_len=size * size, vocab_size=size + 2,
                                 grid_shape=(size, size),
                                 id_to_symbol=["<pad>", "."] + [str(d) for d in range(1, size + 1)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="sudoku-mlp")
    parser.add_argument("--recipe", default=None, help="time the model of this generated-Sudoku recipe instead")
    parser.add_argument("--hidden-size", type=int, nargs="+", default=[None], help="with --recipe: widths to time")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtypes", default=None,
                        help="comma-separated, e.g. fp32,bf16 (default: the CPU's native dtype: bf16 with "
                             "AVX512-BF16 / AMX, else fp32, where bf16 is emulated and many times slower)")
    args = parser.parse_args()
    name = args.recipe or args.preset
    print(f"{'model':<14} {'width':>5} {'batch':>5} {'dtype':<5} {'s/step':>8} {'samples/s':>10} {'GFLOP/s':>8}  "
          f"threads={torch.get_num_threads()}")
    for hidden in args.hidden_size:
        config = recipe_config(args.recipe, hidden) if args.recipe else TRMConfig.from_preset(args.preset)
        for batch in args.batch_size:
            flops = training_step_flops(config, batch)
            for dtype in (args.dtypes or native_dtype("cpu")).split(","):
                median = statistics.median(time_config_steps(config, batch, dtype, args.repeats))
                print(f"{name:<14} {config.hidden_size:>5} {batch:>5} {dtype:<5} {median:>8.3f} {batch / median:>10.1f} "
                      f"{flops / median / 1e9:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
