"""Seconds per training step of every `trm ablate` variant beside the cost model that sizes its budget.

    OMP_NUM_THREADS=1 python -m benchmarks.ablation_cost --steps 6

Prints a table: variant, the cost model's step cost relative to the baseline (block applications,
backward counted as two forwards), the measured median s/step, its ratio to the baseline's, and the
ratio `trm ablate` budgets with (`Variant.measured_cost`). On a loaded machine the absolute times are
inflated; the ratios are what checks the cost model.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from modeling_trm import TRMConfig
from modeling_trm.dtypes import native_dtype
from modeling_trm.experiments.ablation import VARIANTS, base_model_settings, variant_recipe
from modeling_trm.recipes_io import load_recipe

from .step_time import time_config_steps

SUDOKU6_SYMBOLS = ["<pad>", "."] + [str(d) for d in range(1, 7)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    recipe = load_recipe("demo")
    base = base_model_settings(recipe)
    training = variant_recipe(recipe, VARIANTS[0], 1, 0, 0)["training"]  # what `trm ablate` trains with
    batch = int(training["global_batch_size"])
    dtype = native_dtype("cpu")  # as `trm ablate` trains: bf16 only where the CPU has bf16 units
    print(f"{'variant':<14} {'model cost':>10} {'s/step':>8} {'measured':>9} {'in use':>7}  "
          f"threads={torch.get_num_threads()}, batch {batch}, {dtype}")
    baseline = None
    for variant in VARIANTS:
        overrides = variant_recipe(recipe, variant, 1, 0, 0)["model"]["overrides"]
        config = TRMConfig.from_preset(recipe["model"]["preset"], **overrides, vocab_size=8, seq_len=36,
                                       grid_shape=(6, 6), id_to_symbol=SUDOKU6_SYMBOLS)
        median = statistics.median(time_config_steps(config, batch, dtype, args.steps, warmup=2,
                                                       learning_rate=training["learning_rate"],
                                                       weight_decay=training["weight_decay"]))
        baseline = baseline or median
        print(f"{variant.name:<14} {variant.relative_cost(base):>10.2f} {median:>8.3f} {median / baseline:>9.2f} "
              f"{variant.expected_cost(base):>7.2f}", flush=True)


if __name__ == "__main__":
    main()
