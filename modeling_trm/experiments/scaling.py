"""`trm scale`: exact accuracy against compute for depth, breadth, both, and adaptive escalation.

Test-time compute is where the field now finds its best Sudoku results (PTRM, arXiv:2605.19943;
Equilibrium Reasoners, arXiv:2605.21488). This sweeps the knobs of `solve` on one held-out split with
unchanged weights and states every point's cost in network calls per puzzle, so a user sees which
knob buys accuracy where:

- plain: one trajectory of the model's default steps (the paper's protocol), the reference point;
- depth: one trajectory, more supervision steps (read off one run of the deepest budget);
- breadth: K noisy trajectories of the default steps;
- both: K noisy trajectories of the deepest budget;
- adaptive: one trajectory under ACT first, K deep noisy ones only for unconfident puzzles (those whose
  halting probability stayed at or below a confidence threshold: 0.5, the ACT rule, or the ones asked for).

Each point is appended to `scaling.json` as soon as it is measured (atomically), so an interrupted
sweep resumes where it stopped; `scaling.md` and `scaling.png` are drawn from the file at the end.
Wall times are those of this machine at that moment: the accuracy and the calls do not depend on them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_FILE = "scaling.json"
TABLE_FILE = "scaling.md"
PLOT_FILE = "scaling.png"
DEFAULT_DEPTHS = (1, 2, 4, 8, 16, 32, 64)
DEFAULT_SAMPLES = (4, 16)
DEFAULT_NOISE_STD = 0.3
MODES = ("plain", "depth", "breadth", "both", "adaptive")


@dataclass(frozen=True)
class ScalePoint:
    """One setting of `solve` to measure."""

    mode: str  # plain, depth, breadth, both, adaptive
    max_steps: int
    samples: int = 1
    escalate_after: int | None = None
    escalate_confidence: float | None = None  # adaptive: None is the ACT rule, P(halt) > 0.5

    def key(self) -> str:
        key = f"{self.mode}/steps={self.max_steps}/samples={self.samples}/after={self.escalate_after}"
        return key if self.escalate_confidence is None else f"{key}/confidence={self.escalate_confidence}"


def plan_points(default_steps: int, depths: Sequence[int], samples: Sequence[int],
                modes: Sequence[str] = MODES,
                confidences: Sequence[float | None] = (None,)) -> list[ScalePoint]:
    """The sweep, cheapest first: plain, one depth run, then breadth, both and adaptive per K (one adaptive
    point per confidence threshold); only `modes` (the plain point, every ratio's reference, is always
    measured)."""
    if not depths or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in depths):
        raise ValueError(f"depths must be positive integers, got {list(depths)}")
    if any(isinstance(k, bool) or not isinstance(k, int) or k < 2 for k in samples):
        raise ValueError(f"samples must be integers >= 2 (K noisy trajectories), got {list(samples)}")
    unknown = sorted(set(modes) - set(MODES))
    if not modes or unknown:
        raise ValueError(f"modes must be some of {list(MODES)}, got {list(modes)}")
    from ..modeling_trm import is_halting_probability

    if not confidences or any(c is not None and not is_halting_probability(c) for c in confidences):
        raise ValueError(f"escalation confidences must be halting probabilities in (0, 1), got {list(confidences)}")
    deepest = max(depths)
    points = [ScalePoint("plain", default_steps)]
    if deepest != default_steps or len(set(depths)) > 1:
        points.append(ScalePoint("depth", deepest))
    for k in sorted(set(samples)):
        points.append(ScalePoint("breadth", default_steps, k))
        if deepest != default_steps:
            points.append(ScalePoint("both", deepest, k))
        points.extend(ScalePoint("adaptive", deepest, k, escalate_after=default_steps, escalate_confidence=c)
                      for c in dict.fromkeys(confidences))
    return [point for point in points if point.mode == "plain" or point.mode in modes]


def _rows_of(point: ScalePoint, results: dict[str, Any], depths: Sequence[int]) -> list[dict[str, Any]]:
    """The table rows one evaluation gives: a depth run gives one per budget (its wall time only on the deepest)."""
    compute = results["compute"]
    by_rating = {band: row["exact_accuracy"] for band, row in (results.get("accuracy_by_rating") or {}).items()}
    common = {"samples": point.samples, "escalate_after": point.escalate_after,
              "escalate_confidence": point.escalate_confidence, "escalated_fraction": compute["escalated_fraction"]}
    if point.mode != "depth":
        return [{"key": point.key(), "mode": point.mode, "max_steps": point.max_steps, **common,
                 "exact_accuracy": results["metrics"]["exact_accuracy"],
                 "mean_network_calls": compute["mean_network_calls"], "mean_total_steps": compute["mean_total_steps"],
                 "accuracy_by_rating": by_rating, "wall_time_s": results["wall_time_s"]}]
    deepest = point.max_steps == max(depths)
    return [{"key": f"depth/steps={d}", "mode": "depth", "max_steps": d, **common,
             "exact_accuracy": results["accuracy_by_steps"][str(d)],
             "mean_network_calls": float(d * compute["network_calls_per_step"]), "mean_total_steps": float(d),
             "accuracy_by_rating": by_rating if d == point.max_steps else {},
             "wall_time_s": results["wall_time_s"] if d == point.max_steps and deepest else None}
            for d in sorted(set(depths))]


def run_scaling(evaluate: Callable[..., dict[str, Any]], out_dir: str | os.PathLike, default_steps: int,
                depths: Sequence[int] = DEFAULT_DEPTHS, samples: Sequence[int] = DEFAULT_SAMPLES,
                noise_std: float = DEFAULT_NOISE_STD, selection: str = "halt", seed: int = 0,
                settings: dict[str, Any] | None = None, log: Callable[[str], None] = print,
                modes: Sequence[str] = MODES, confidences: Sequence[float | None] = (None,)) -> dict[str, Any]:
    """Measure every point of the plan with `evaluate(**solve_options)` (an `evaluate_model` with the model,
    split and batch size bound) and write scaling.json / .md / .png under `out_dir`; resumes a sweep
    whose settings match. `modes` and `confidences` are not settings: a later run with more of them adds
    their points."""
    from ..data.atomic import write_text_atomically

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"depths": sorted(set(depths)), "samples": sorted(set(samples)), "noise_std": noise_std,
                "selection": selection, "seed": seed, "default_steps": default_steps, **(settings or {})}
    path = out / RESULTS_FILE
    record: dict[str, Any] = {"settings": settings, "points": [], "rows": []}
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous.get("settings") != settings:
            raise ValueError(f"{path} holds a sweep with other settings ({previous.get('settings')}); "
                             f"pass another --out or --overwrite")
        record = previous
    done = set(record["points"])
    plan = plan_points(default_steps, depths, samples, modes, confidences)
    # a depth sweep no deeper than the default steps is the plain run itself: read it off that run
    shared_depth = next((p for p in plan if p.mode == "depth" and p.max_steps == default_steps), None)
    for point in plan:
        if point.key() in done:
            log(f"[scale] {point.key()}: already measured")
            continue
        options: dict[str, Any] = {"max_steps": point.max_steps, "halting": "max"}
        if point.samples > 1:
            options.update(samples=point.samples, noise_std=noise_std, selection=selection, seed=seed)
        if point.escalate_after is not None:
            options.update(escalate=True, escalate_after=point.escalate_after,
                           escalate_confidence=point.escalate_confidence)
        measured = [point]
        if point.mode == "plain" and shared_depth is not None and shared_depth.key() not in done:
            measured.append(shared_depth)
        if any(p.mode == "depth" for p in measured):
            options["step_budgets"] = sorted(set(depths))
        results = evaluate(**options)
        rows = [row for p in measured for row in _rows_of(p, results, depths)]
        record["rows"].extend(rows)
        record["points"].extend(p.key() for p in measured)
        done.update(p.key() for p in measured)
        write_text_atomically(path, json.dumps(record, indent=1, allow_nan=False) + "\n")
        for row in rows:
            log(f"[scale] {row['key']}: {row['exact_accuracy']:.1%} exact, "
                f"{row['mean_network_calls']:.0f} network calls per puzzle"
                + (f", {row['wall_time_s']:.1f} s" if row["wall_time_s"] is not None else ""))
    write_text_atomically(out / TABLE_FILE, scaling_table(record) + "\n")
    try:
        plot_scaling(record["rows"], out / PLOT_FILE)
    except ImportError as error:  # matplotlib is an optional extra; the table and the JSON stay
        log(f"[scale] plot not drawn: {error}")
    return record


def scaling_table(record: dict[str, Any]) -> str:
    """Markdown: one row per point, with its cost against the plain run's."""
    rows = record["rows"]
    plain = next((row for row in rows if row["mode"] == "plain"), None)
    bands = sorted({band for row in rows for band in row["accuracy_by_rating"]}, key=_band_order)
    settings = record["settings"]
    lines = [f"Noise std {settings['noise_std']}, selection {settings['selection']}, seed {settings['seed']}; "
             f"adaptive escalates puzzles still unconfident after {settings['default_steps']} steps of one "
             f"trajectory.", "",
             "| mode | steps | K | exact | network calls / puzzle | x plain calls | escalated | wall s | x plain wall |"
             + "".join(f" rating {band} |" for band in bands),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(bands)]
    for row in rows:
        calls_ratio = row["mean_network_calls"] / plain["mean_network_calls"] if plain else None
        wall_ratio = (row["wall_time_s"] / plain["wall_time_s"]
                      if plain and row["wall_time_s"] is not None and plain["wall_time_s"] else None)
        lines.append(
            f"| {_mode_label(row)} | {row['max_steps']} | {row['samples']} | {row['exact_accuracy']:.1%} | "
            f"{row['mean_network_calls']:.0f} | {_ratio(calls_ratio)} | "
            f"{row['escalated_fraction']:.1%} | "
            f"{'' if row['wall_time_s'] is None else format(row['wall_time_s'], '.1f')} | {_ratio(wall_ratio)} |"
            + "".join(f" {row['accuracy_by_rating'][band]:.1%} |" if band in row["accuracy_by_rating"] else " |"
                      for band in bands))
    return "\n".join(lines)


def _mode_label(row: dict[str, Any]) -> str:
    confidence = row.get("escalate_confidence")
    return row["mode"] if confidence is None else f"{row['mode']} (P(halt) > {confidence})"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def _band_order(band: str) -> int:
    return int(band.split("-")[0].rstrip("+"))


def plot_scaling(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Exact accuracy against network calls per puzzle (log scale), one line per mode."""
    from ..inference.visualize import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    styles = {"plain": "o", "depth": "s-", "breadth": "^-", "both": "D-", "adaptive": "*-"}
    for mode, style in styles.items():
        points = sorted((row["mean_network_calls"], row["exact_accuracy"]) for row in rows if row["mode"] == mode)
        if points:
            ax.plot([p[0] for p in points], [100 * p[1] for p in points], style, label=mode, markersize=7)
    ax.set_xscale("log")
    ax.set_xlabel("network calls per puzzle (log scale)")
    ax.set_ylabel("exact accuracy (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return _save(fig, plt, path)


__all__ = ["DEFAULT_DEPTHS", "DEFAULT_NOISE_STD", "DEFAULT_SAMPLES", "MODES", "ScalePoint", "plan_points", "plot_scaling",
           "run_scaling", "scaling_table"]
