"""Easy-to-hard ordering of Sudoku training samples: many givens first, few givens later.

The curriculum is a deterministic function of the optimizer step: at step `t` the stream draws only
puzzles with at most `max_blanks_at(t)` blank cells, a bound that rises linearly from `start_blanks`
at step 0 to the hardest puzzle in the set at `curriculum_steps` (and stays there). Within one bound
the rows come in seeded permutations, like `SampleStream`; the bound, the pass and the position are
the whole state, so a resumed run draws exactly the samples the uninterrupted run would have drawn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.sudoku import BLANK_ID
from .sample_stream import SampleStream


def count_blanks(dataset: Any) -> np.ndarray:
    """Blank cells (token `BLANK_ID`, the Sudoku encoding) of every row's question."""
    questions = np.asarray(dataset.with_format("numpy", columns=["input_ids"])["input_ids"])
    return (questions == BLANK_ID).sum(axis=1)


def max_blanks_at(step: int, start_blanks: int, end_blanks: int, curriculum_steps: int) -> int:
    """The blank bound at `step`: linear from `start_blanks` (step 0) to `end_blanks` (`curriculum_steps`)."""
    if step >= curriculum_steps:
        return end_blanks
    return start_blanks + (end_blanks - start_blanks) * step // curriculum_steps


class CurriculumStream(SampleStream):
    """`SampleStream` whose pool at step t holds the rows with at most `max_blanks_at(t)` blanks."""

    def __init__(self, dataset: Any, seed: int, curriculum_steps: int, start_blanks: int | None = None,
                 rank: int = 0, world_size: int = 1) -> None:
        if curriculum_steps <= 0:
            raise ValueError(f"curriculum_steps must be positive, got {curriculum_steps}")
        self.blanks = count_blanks(dataset)
        self.end_blanks = int(self.blanks.max())
        self.start_blanks = int(self.blanks.min()) if start_blanks is None else int(start_blanks)
        admitted = int((self.blanks <= self.start_blanks).sum())
        if admitted < world_size:
            raise ValueError(f"curriculum_start_blanks {self.start_blanks} admits {admitted} training rows, fewer "
                             f"than the {world_size} processes; the fewest blanks in the set is {int(self.blanks.min())}")
        self.curriculum_steps = curriculum_steps
        self.level = self.start_blanks
        super().__init__(dataset, seed, rank, world_size)

    def _epoch_order(self) -> np.ndarray:
        pool = np.flatnonzero(self.blanks <= self.level)
        permutation = pool[np.random.default_rng([self.seed, self.level, self.epoch]).permutation(len(pool))]
        usable = len(permutation) - len(permutation) % self.world_size
        return permutation[:usable][self.rank::self.world_size]

    def pool_changes_at(self, step: int) -> bool:
        """Whether `take` at `step` draws from another pool (rows taken ahead of it are not what it hands out)."""
        return max_blanks_at(step, self.start_blanks, self.end_blanks, self.curriculum_steps) != self.level

    def take(self, count: int, step: int | None = None) -> dict[str, torch.Tensor]:
        if step is not None:
            level = max_blanks_at(step, self.start_blanks, self.end_blanks, self.curriculum_steps)
            if level != self.level:
                self.level, self.epoch, self.position = level, 0, 0
                self._order = self._epoch_order()
        return super().take(count)

    def state_dict(self) -> dict[str, int]:
        return {**super().state_dict(), "level": self.level}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.level = state["level"]
        super().load_state_dict(state)


__all__ = ["CurriculumStream", "count_blanks", "max_blanks_at"]
