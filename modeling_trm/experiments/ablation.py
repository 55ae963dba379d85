"""`trm ablate --task sudoku6 --out DIR`: does this code reproduce the directions of the paper's ablations?

Every variant trains the demo-scale model with the same data, the same fixed number of supervision
steps and the same seeds; each is a recipe override (model config fields, training keys), never a
code fork. The model is scored with the paper protocol (all 16 supervision steps, EMA weights when
the variant has them) on the held-out puzzles. Results: DIR/ablations.json, DIR/ablations.md (table
with the paper's direction and a verdict per row) and DIR/ablations.png (mean, min..max over seeds).

Runs are written one by one (DIR/runs/VARIANT-seedK/result.json) and skipped when present, so an
interrupted ablation resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


# `trm ablate --task NAME` -> the demo recipe whose model and data the variants share.
ABLATION_TASKS: dict[str, str] = {"sudoku6": "demo"}
# Training settings every variant shares on top of the task recipe: among those tried on a 2-core CPU (batch 32/64,
# learning rate 1e-3/2e-3/3e-3), these reached the highest held-out accuracy per second of training; per sample,
# batch 32 and 64 learned alike (README, "Ablations").
ABLATION_TRAINING: dict[str, Any] = {"global_batch_size": 32, "learning_rate": 2e-3, "warmup_steps": 100}
# Model settings every variant shares on top of the task recipe: the paper's N_sup = 16 supervision steps per puzzle
# in training (the demo recipe trains with 2 for speed; the measured table in the README used 16).
ABLATION_MODEL: dict[str, Any] = {"halt_max_steps": 16}
# 900 steps x 2 seeds x 8 variants = 9.6 baseline-run equivalents per seed under the measured relative costs; with
# two single-thread workers on 2 cores the whole default ablation took 37.8 min wall (README, "Ablations").
DEFAULT_STEPS = 900
DEFAULT_SEEDS = 2
DEFAULT_EVAL_STEPS = 0  # periodic held-out evaluations per run (0: only the final one)
# Wall seconds per baseline supervision step of the whole ablation on a 2-core CPU without AMX (batch 32, bf16,
# two runs at once with one thread each): the baseline trained 900 steps in 204-211 s per worker (0.115 s per
# step for the pair), plus scoring, start-up and the tail where one worker waits. Converts `--budget-minutes` into a fixed step
# count (never a wall-clock stop: results must not depend on speed).
IDLE_SECONDS_PER_BASELINE_STEP = 0.125


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: how it departs from the baseline and what the paper found."""

    name: str
    change: str
    model: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    paper: str = "lower than the baseline"
    # measured wall time per training step relative to the baseline's (`python -m benchmarks.ablation_cost`);
    # None: the block-count model of `relative_cost` (which misses attention's extra work, for one)
    measured_cost: float | None = None

    def recipe_overrides(self) -> dict[str, dict[str, Any]]:
        model = dict(self.model)
        if self.name != BASELINE:
            model["ablation"] = self.name  # never mistaken for the paper's design or a preset
        return {"model": model, "training": dict(self.training)}

    def relative_cost(self, base_model: dict[str, Any]) -> float:
        """Block applications per training step relative to the baseline (backward counted as 2 forwards)."""
        settings = {**base_model, **self.model}
        layers, cycles, updates = settings["num_layers"], settings["H_cycles"], settings["L_cycles"] + 1
        grad_cycles = cycles if settings.get("backprop_all_cycles") else 1
        cost = layers * updates * ((cycles - grad_cycles) + 3 * grad_cycles)
        base = base_model["num_layers"] * (base_model["L_cycles"] + 1) * ((base_model["H_cycles"] - 1) + 3)
        return cost / base

    def expected_cost(self, base_model: dict[str, Any]) -> float:
        """Step time relative to the baseline's: measured where known, else the block-count model."""
        return self.measured_cost if self.measured_cost is not None else self.relative_cost(base_model)


BASELINE = "baseline"
# Paper figures on Sudoku-Extreme (Table 1 of arXiv:2510.04871; baseline TRM-MLP, T=3, n=6: 87.4%). measured_cost:
# training time relative to the baseline's in the default `trm ablate` run (900 steps, batch 32, one thread per run,
# mean of 2 seeds; README, "Ablations"); `python -m benchmarks.ablation_cost` measures it for single steps.
VARIANTS: tuple[Variant, ...] = (
    Variant(BASELINE, "2 layers, T=3, n=6, EMA, mlp_t, y/z split (the paper's design)", paper="87.4% (reference)", measured_cost=1.0),
    Variant("4-layers-n3", "4 layers, n=3 (half the recursion, same depth)", model={"num_layers": 4, "L_cycles": 3},
            paper="lower (79.5%)", measured_cost=1.14),
    Variant("no-ema", "no EMA of the weights", training={"ema_decay": 0.0}, paper="lower (79.9%)", measured_cost=1.01),
    Variant("single-latent", "one latent z, answer read from z (no y)", model={"single_latent": True},
            paper="lower (single feature)", measured_cost=1.04),
    Variant("full-backprop", "back-propagate through all T cycles (no no-grad cycles)",
            model={"backprop_all_cycles": True}, paper="lower (issue 14)", measured_cost=2.06),
    Variant("attention", "self-attention + RoPE instead of mlp_t", model={"mixer": "attention", "pos_encodings": "rope"},
            paper="lower (74.7%)", measured_cost=2.70),
    Variant("T2-n2", "T=2, n=2 (less recursion)", model={"H_cycles": 2, "L_cycles": 2}, paper="lower (Table 1)", measured_cost=0.38),
    Variant("T1-n2", "T=1, n=2 (least recursion)", model={"H_cycles": 1, "L_cycles": 2}, paper="lower (Figure 3)", measured_cost=0.30),
)


def variant_by_name(name: str) -> Variant:
    for variant in VARIANTS:
        if variant.name == name:
            return variant
    raise ValueError(f"unknown ablation variant {name!r}; choose from {[v.name for v in VARIANTS]}")


# ----------------------------------------------------------------------------- command line



def default_jobs() -> int:
    """One run per CPU this process may use (affinity mask, cgroup quota; not `os.cpu_count()`), at most 8."""
    from ..threads import available_cpus

    return max(1, min(available_cpus(), 8))


def steps_for_budget(minutes: float, variants: tuple[Variant, ...], seeds: int, recipe: dict[str, Any]) -> int:
    """Supervision steps per run so that all runs cost about `minutes` of idle 2-core training time."""
    if minutes <= 0:
        raise ValueError(f"--budget-minutes must be positive, got {minutes}")
    base = base_model_settings(recipe)
    relative = sum(v.expected_cost(base) for v in variants) * seeds
    return max(1, int(minutes * 60 / (IDLE_SECONDS_PER_BASELINE_STEP * relative)))


def base_model_settings(recipe: dict[str, Any]) -> dict[str, Any]:
    from ..configuration_trm import TRMConfig

    config = TRMConfig.from_preset(recipe["model"]["preset"], **recipe["model"].get("overrides", {}))
    return {"num_layers": config.num_layers, "H_cycles": config.H_cycles, "L_cycles": config.L_cycles}


# ----------------------------------------------------------------------------- running


def variant_recipe(recipe: dict[str, Any], variant: Variant, steps: int, seed: int, eval_steps: int) -> dict[str, Any]:
    """The task recipe with the variant's overrides, the fixed step budget and the seed."""
    out = json.loads(json.dumps(recipe))
    overrides = variant.recipe_overrides()
    out["name"] = f"{recipe['name']}-ablation-{variant.name}"
    out["model"].setdefault("overrides", {}).update({**ABLATION_MODEL, **overrides["model"]})
    training = out["training"]
    training.update(max_steps=steps, seed=seed, eval_halting="max", save_strategy="no", report_to=[],
                    disable_tqdm=True, logging_steps=max(1, min(100, steps)))
    training.pop("eval_steps", None)
    training.update(ABLATION_TRAINING)
    if eval_steps:
        training["eval_steps"] = eval_steps
    training.update(overrides["training"])
    return out


def run_ablation(out: Path, recipe: dict[str, Any], variants: tuple[Variant, ...], steps: int, seeds: int,
                 eval_steps: int = 0, jobs: int = 1, threads_per_run: int | None = None) -> dict[str, Any]:
    """Train and score every (variant, seed) not done yet; rewrite the summary after each run.

    With `jobs` > 1 the runs train in worker processes, `jobs` at a time, each with `threads_per_run` torch
    threads (default: the CPUs this process may use / jobs, at least 1); the expensive variants of a seed
    start first so the workers finish together. With `jobs` 1 they train in this process, on its threads.
    """
    from ..data.build import build_from_recipe

    if steps < 1 or seeds < 1 or jobs < 1:
        raise ValueError(f"steps, seeds and jobs must be positive, got steps={steps}, seeds={seeds}, jobs={jobs}")
    out.mkdir(parents=True, exist_ok=True)
    settings = {"task_recipe": recipe["name"], "steps": steps, "seeds": seeds, "eval_steps": eval_steps,
                "variants": [v.name for v in variants], "data": recipe["data"]}
    _check_same_settings(out / "settings.json", settings)
    data_dir = out / "data"
    if not (data_dir / "dataset_dict.json").exists():
        build_from_recipe(recipe["data"], data_dir, progress=False)
    base = base_model_settings(recipe)
    estimate = sum(v.expected_cost(base) for v in variants) * seeds * steps * IDLE_SECONDS_PER_BASELINE_STEP
    print(f"[ablate] {len(variants)} variants x {seeds} seeds x {steps} steps in {jobs} process(es); about "
          f"{estimate / 60:.0f} min of training on an idle 2-core CPU (cost model: {IDLE_SECONDS_PER_BASELINE_STEP} s "
          f"per baseline step with the default --jobs)", flush=True)
    started = time.time()
    pending = [(variant, seed) for seed in range(seeds)  # every variant once before any second seed
               for variant in sorted(variants, key=lambda v: -v.expected_cost(base))
               if not (out / "runs" / f"{variant.name}-seed{seed}" / "result.json").exists()]

    def report(result: dict[str, Any]) -> None:
        print(f"[ablate] {result['variant']} seed {result['seed']}: exact {result['exact_accuracy']:.1%} "
              f"({result['train_runtime_s']:.0f} s training on {result['torch_threads']} thread(s), "
              f"{time.time() - started:.0f} s so far)", flush=True)
        summarize(out, variants, settings)

    if jobs == 1:
        for variant, seed in pending:
            report(train_variant(out, recipe, variant.name, steps, seed, eval_steps))
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        from ..threads import available_cpus

        threads = threads_per_run if threads_per_run is not None else max(1, available_cpus() // jobs)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=_worker_context(),
                                 initializer=_limit_torch_threads,
                                 initargs=(threads, f"trm ablate: {threads} per run, {jobs} runs at once")) as pool:
            futures = [pool.submit(train_variant, out, recipe, variant.name, steps, seed, eval_steps)
                       for variant, seed in pending]
            for future in as_completed(futures):
                report(future.result())
    return summarize(out, variants, settings)


def _worker_context() -> multiprocessing.context.BaseContext:
    """Workers that pay the training imports once: a forkserver (a fresh interpreter, no threads, so forking is
    safe) imports them, then forks each worker (~9 s of imports saved per worker on a 2-core CPU). Spawn where
    there is no forkserver (Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "modeling_trm.training.recipe_run", "modeling_trm.training.trainer",
                                    "modeling_trm.training.learning_curve", "modeling_trm.data.metadata"])
    return context


def _limit_torch_threads(threads: int, reason: str = "set by the ablation's parent process") -> None:
    """Worker initializer: `threads` torch threads, recorded with `reason` in each run's train_results.json."""
    from ..threads import apply_thread_choice

    apply_thread_choice(threads, announce=False, reason=reason)


def train_variant(out: Path, recipe: dict[str, Any], variant_name: str, steps: int, seed: int,
                  eval_steps: int) -> dict[str, Any]:
    """One (variant, seed) run from scratch into OUT/runs/VARIANT-seedK; its result.json is written last."""
    import torch
    from transformers import set_seed

    from ..training.recipe_run import train_from_recipe

    run_dir = out / "runs" / f"{variant_name}-seed{seed}"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an interrupted run restarts from scratch (same seed, same result)
    run_recipe = variant_recipe(recipe, variant_by_name(variant_name), steps, seed, eval_steps)
    set_seed(seed)  # initial weights come from the global generator
    trained = train_from_recipe(run_recipe, run_dir, dataset_dir=str(out / "data"))
    result = {"variant": variant_name, "seed": seed, "steps": trained["global_step"],
              "exact_accuracy": trained["metrics"]["eval_exact_accuracy"],
              "token_accuracy": trained["metrics"]["eval_token_accuracy"],
              "num_examples": trained["metrics"]["eval_num_examples"],
              "train_runtime_s": round(trained["train_runtime_s"], 1), "torch_threads": torch.get_num_threads(),
              "num_parameters": _parameter_count(run_dir / "model"),
              "learning_curve": trained["learning_curve"]}
    _write_json(run_dir / "result.json", result)
    return result


def _parameter_count(model_dir: Path) -> int:
    """Parameters of a saved model, read from the shapes in its safetensors file."""
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as handle:
        return sum(math.prod(handle.get_slice(name).get_shape()) for name in handle.keys())


def _check_same_settings(path: Path, settings: dict[str, Any]) -> None:
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != settings:
            raise ValueError(f"{path.parent} holds an ablation with other settings ({previous}); use another --out")
    else:
        _write_json(path, settings)


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2))
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- summary


def summarize(out: Path, variants: tuple[Variant, ...], settings: dict[str, Any]) -> dict[str, Any]:
    """ablations.json, ablations.md and ablations.png from the finished runs."""
    rows = []
    for variant in variants:
        results = [json.loads(p.read_text()) for p in sorted((out / "runs").glob(f"{variant.name}-seed*/result.json"))]
        if not results:
            continue
        values = [r["exact_accuracy"] for r in results]
        rows.append({"name": variant.name, "change": variant.change, "paper": variant.paper,
                     "seeds": [r["seed"] for r in results], "values": values, "mean": statistics.fmean(values),
                     "token_accuracy": statistics.fmean(r["token_accuracy"] for r in results),
                     "min": min(values), "max": max(values), "num_parameters": results[0]["num_parameters"],
                     "train_runtime_s": [r["train_runtime_s"] for r in results]})
    baseline = next((row for row in rows if row["name"] == BASELINE), None)
    for row in rows:
        row["verdict"] = verdict(row, baseline)
    summary = {"settings": settings, "protocol": "exact accuracy on the held-out puzzles after 16 supervision steps, "
                                                 "EMA weights (none for no-ema), bf16 autocast where available",
               "rows": rows}
    _write_json(out / "ablations.json", summary)
    (out / "ablations.md").write_text(markdown_table(rows, settings))
    if rows:
        try:
            from ..inference.visualize import plot_ablation_bars

            plot_ablation_bars(rows, out / "ablations.png",
                               title=f"TRM ablations, {settings['steps']} steps, {settings['seeds']} seeds")
        except ImportError as error:
            print(f"bar chart not drawn: {error}")
    return summary


def verdict(row: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    """Did the paper's direction (the variant scores lower) come out? Judged on the seeds' ranges."""
    if baseline is None or row is baseline:
        return "-"
    if row["max"] < baseline["min"]:
        return "reproduced (lower on every seed)"
    if row["min"] > baseline["max"]:
        return "NOT reproduced (higher on every seed)"
    if row["mean"] < baseline["mean"]:
        return "lower on average, ranges overlap"
    return "NOT reproduced (not lower on average; ranges overlap)"


def markdown_table(rows: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    lines = [f"Ablations of `{settings['task_recipe']}`: {settings['steps']} supervision steps per run, seeds "
             f"0..{settings['seeds'] - 1}; exact accuracy on the held-out puzzles, paper protocol (16 steps, EMA).",
             "",
             "| variant | change | parameters | exact accuracy, mean ± half-range | per seed | token accuracy "
             "| paper (Sudoku-Extreme) | direction |",
             "|---|---|---:|---:|---|---:|---|---|"]
    for row in rows:
        half = (row["max"] - row["min"]) / 2
        per_seed = ", ".join(f"{100 * v:.1f}" for v in row["values"])
        lines.append(f"| {row['name']} | {row['change']} | {row['num_parameters']:,} | {100 * row['mean']:.1f}% ± "
                     f"{100 * half:.1f} | {per_seed} | {100 * row['token_accuracy']:.1f}% | {row['paper']} | {row['verdict']} |")
    return "\n".join(lines) + "\n"
