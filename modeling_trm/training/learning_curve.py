"""Learning curves: held-out exact accuracy during training, read from the Trainer's own log history.

With `eval_steps` set, the Trainer calls `TRMTrainer.evaluate` on a small held-out slice at that
interval (EMA weights, paper protocol, all supervision steps); its metrics go to every `report_to`
logger and into `trainer_state.json` like any evaluation. `LearningCurveCallback` only draws them
at the end of training, so it cannot change what is trained.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

CURVE_FILE = "learning_curve.png"
# Metric keys that hold held-out exact accuracy; with eval_halting="both" the paper protocol is "_max".
EXACT_KEYS = ("eval_exact_accuracy", "eval_exact_accuracy_max")


def curve_points(log_history: Iterable[Mapping[str, Any]]) -> list[tuple[int, float]]:
    """(step, held-out exact accuracy) of every evaluation in a Trainer log history, in step order."""
    points = {}
    for entry in log_history:
        for key in EXACT_KEYS:
            if key in entry and "step" in entry:
                points[int(entry["step"])] = float(entry[key])
                break
    return sorted(points.items())


class LearningCurveCallback(TrainerCallback):
    """Writes OUTPUT_DIR/learning_curve.png from the periodic evaluations when training ends."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = path
        self.written: Path | None = None

    def on_train_end(self, args, state, control, **kwargs):
        points = curve_points(state.log_history)
        if not points or not state.is_world_process_zero:
            return control
        from ..inference.visualize import plot_learning_curve

        path = Path(self.path) if self.path is not None else Path(args.output_dir) / CURVE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.written = plot_learning_curve(points, path)
        except ImportError as error:  # matplotlib is an optional extra; the numbers stay in the logs
            print(f"learning curve not drawn: {error}")
        return control


def format_curve(points: list[tuple[int, float]]) -> str:
    """'step 200: 12.0%, step 400: 55.5%, ...' for one printed line."""
    return ", ".join(f"step {step}: {accuracy:.1%}" for step, accuracy in points)
