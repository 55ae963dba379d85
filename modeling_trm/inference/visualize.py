"""Pictures of TRM at work: one puzzle's refinement step by step, and accuracy versus step budget.

matplotlib is an optional extra (`pip install "modeling-trm[viz]"`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

CORRECT = "#b7e4c7"  # green: the cell equals the solution
WRONG = "#f4a6a6"  # red: it does not
GIVEN = "#e9ecef"  # grey: a clue of the question


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("pictures need matplotlib: pip install 'modeling-trm[viz]'") from error
    return plt


def _draw_grid(ax, cells: np.ndarray, colours: np.ndarray, symbols: Sequence[str], box: tuple[int, int] | None) -> None:
    rows, cols = cells.shape
    ax.imshow(np.zeros((rows, cols, 3)), extent=(0, cols, rows, 0))
    for r in range(rows):
        for c in range(cols):
            ax.add_patch(_rectangle(c, r, colours[r, c]))
            symbol = symbols[int(cells[r, c])] if 0 <= int(cells[r, c]) < len(symbols) else "?"
            ax.text(c + 0.5, r + 0.5, "" if symbol in (".", "<pad>") else symbol, ha="center", va="center",
                    fontsize=max(6, 120 // max(rows, cols)))
    for r in range(rows + 1):
        thick = box is not None and r % box[0] == 0
        ax.plot([0, cols], [r, r], color="black", linewidth=2.0 if thick else 0.5)
    for c in range(cols + 1):
        thick = box is not None and c % box[1] == 0
        ax.plot([c, c], [0, rows], color="black", linewidth=2.0 if thick else 0.5)
    ax.set_xlim(0, cols)
    ax.set_ylim(rows, 0)
    ax.set_xticks([])
    ax.set_yticks([])


def _rectangle(x: int, y: int, colour: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), 1, 1, facecolor=colour, edgecolor="none")


def sudoku_box_shape(size: int) -> tuple[int, int] | None:
    return {4: (2, 2), 6: (2, 3), 9: (3, 3)}.get(size)


def plot_refinement(question: Sequence[int], solution: Sequence[int], trajectory: np.ndarray,
                    halt_probabilities: Sequence[float], grid_shape: tuple[int, int], id_to_symbol: Sequence[str],
                    path: str | os.PathLike, steps_used: int | None = None, title: str = "TRM refinement") -> Path:
    """PNG: the question, then the predicted grid after each supervision step (green right, red
    wrong, grey givens) with sigmoid(q_halt) under each, and the solution."""
    plt = _pyplot()
    rows, cols = grid_shape
    question = np.asarray(question).reshape(rows, cols)
    solution = np.asarray(solution).reshape(rows, cols)
    steps = trajectory.shape[0] if steps_used is None else steps_used
    panels = steps + 2
    per_row = min(panels, 6)
    lines = math.ceil(panels / per_row)
    fig, axes = plt.subplots(lines, per_row, figsize=(2.4 * per_row, 2.9 * lines), squeeze=False)
    box = sudoku_box_shape(rows) if rows == cols else None
    given = question != 1 if "." in id_to_symbol else np.zeros_like(question, dtype=bool)
    _draw_grid(axes[0][0], question, np.where(given, GIVEN, "white"), id_to_symbol, box)
    axes[0][0].set_title("question", fontsize=9)
    for step in range(steps):
        ax = axes[(step + 1) // per_row][(step + 1) % per_row]
        grid = np.asarray(trajectory[step]).reshape(rows, cols)
        colours = np.where(grid == solution, CORRECT, WRONG)  # givens too: the model re-predicts every cell
        _draw_grid(ax, grid, colours, id_to_symbol, box)
        wrong = int((grid != solution).sum())
        ax.set_title(f"step {step + 1}: {wrong} wrong\nP(halt)={halt_probabilities[step]:.2f}", fontsize=8)
    ax = axes[(steps + 1) // per_row][(steps + 1) % per_row]
    _draw_grid(ax, solution, np.where(given, GIVEN, "white"), id_to_symbol, box)
    ax.set_title("solution", fontsize=9)
    for index in range(panels, lines * per_row):
        axes[index // per_row][index % per_row].axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, plt, path)


def plot_accuracy_by_steps(accuracy_by_steps: dict[int, float], path: str | os.PathLike,
                           act_point: tuple[float, float] | None = None, title: str = "Exact accuracy vs steps") -> Path:
    """PNG: exact accuracy on the test set after 1..N supervision steps (and the ACT operating point)."""
    plt = _pyplot()
    steps = sorted(accuracy_by_steps)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(steps, [100 * accuracy_by_steps[s] for s in steps], marker="o", label="fixed step budget")
    if act_point is not None:
        ax.scatter([act_point[0]], [100 * act_point[1]], color="red", zorder=3, label="ACT (mean steps)")
    ax.set_xlabel("supervision steps")
    ax.set_ylabel("exact accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, plt, path)


def plot_learning_curve(points: Sequence[tuple[int, float]], path: str | os.PathLike,
                        title: str = "Held-out exact accuracy during training") -> Path:
    """PNG: exact accuracy (EMA weights, paper protocol) on the held-out slice against optimizer steps."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    steps = [step for step, _ in points]
    ax.plot(steps, [100 * accuracy for _, accuracy in points], marker="o", markersize=3)
    ax.set_xlabel("optimizer steps (supervision steps)")
    ax.set_ylabel("exact accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_xlim(0, max(steps) if steps else 1)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, plt, path)


def plot_ablation_bars(rows: Sequence[dict], path: str | os.PathLike,
                       title: str = "TRM ablations: held-out exact accuracy") -> Path:
    """PNG: one bar per variant at its mean over seeds, the error bar spanning the seeds' min..max,
    every seed's value as a dot."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(rows) + 1.5), 3.8))
    positions = np.arange(len(rows))
    means = np.array([100 * row["mean"] for row in rows])
    lower = means - np.array([100 * min(row["values"]) for row in rows])
    upper = np.array([100 * max(row["values"]) for row in rows]) - means
    ax.bar(positions, means, color="#8fb8de", yerr=np.vstack([lower, upper]), capsize=4, edgecolor="black",
           linewidth=0.5)
    for position, row in zip(positions, rows):
        ax.scatter([position] * len(row["values"]), [100 * v for v in row["values"]], color="black", s=10, zorder=3)
    ax.set_xticks(positions)
    ax.set_xticklabels([row["name"] for row in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("exact accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, plt, path)


def _save(fig, plt, path: str | os.PathLike) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path
