"""Fault injection, hostile puzzle input through the `grid-reasoning` pipeline (issue 15, scenario 6).

Every generated input must be refused with a `ValueError` that names the puzzle index, before the
model runs, or be accepted with one well-formed result per puzzle; never an error from inside torch
or numpy, never a result of the wrong shape.
"""

from __future__ import annotations

import re
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import pipeline

from modeling_trm.configuration_trm import ARC_SYMBOLS
from tiny_models import tiny_model

pytestmark = pytest.mark.faults

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SUDOKU_SOLVER = pipeline("grid-reasoning", model=tiny_model(num_puzzle_identifiers=1).eval(), device="cpu")
ARC_MODEL = tiny_model(vocab_size=12, seq_len=36, grid_shape=(6, 6), task="arc", id_to_symbol=ARC_SYMBOLS,
                       blank_token_id=None, num_puzzle_identifiers=1, halt_max_steps=2).eval()
ARC_SOLVER = pipeline("grid-reasoning", model=ARC_MODEL, device="cpu")

NASTY = "1234.0#SGo ,\"\t\r\n\x00\x85\u2028é漢\U0001F600-"
puzzle_text = st.one_of(st.text(alphabet="1234.0", min_size=14, max_size=18), st.text(alphabet=NASTY, max_size=40),
                        st.just(""), st.just("1" * 100_000))
not_text = st.sampled_from([None, 7, 3.5, float("nan"), b"1..4.4...3.1..1.", ["1..4"], {"q": 1}])

cell = st.one_of(st.integers(0, 9), st.integers(-5, 15), st.integers(2**63, 2**64),
                 st.sampled_from([float("nan"), float("inf"), -1.0, 2.5, True, None, "3", [2]]))


def grid(cells, max_side: int = 8):
    return st.integers(1, max_side).flatmap(lambda w: st.lists(st.lists(cells, min_size=w, max_size=w),
                                                               min_size=1, max_size=max_side))


hostile_grid = st.one_of(grid(st.integers(0, 9), 6), grid(cell), st.just([[]]), st.just([[1, 2], [3]]),
                         st.just([[0] * 31]), st.just([[0] * 30] * 30), st.just([[[1]]]), st.just("12"))


def solve_or_refuse(solver, inputs, count: int) -> list[dict] | None:
    """The pipeline's outputs, or None when it refused; a refusal must come before the model runs."""
    with mock.patch.object(solver.model, "solve", wraps=solver.model.solve) as solve:
        try:
            outputs = solver(inputs)
        except ValueError as error:
            assert re.match(r"puzzle \d+: ", str(error)), str(error)
            assert solve.call_count == 0, "the model ran before the input was refused"
            return None
    outputs = outputs if isinstance(outputs, list) else [outputs]
    assert len(outputs) == count
    return outputs


@FUZZ
@given(st.lists(st.one_of(puzzle_text, not_text), min_size=1, max_size=4))
def test_sudoku_pipeline_on_hostile_batches(puzzles) -> None:
    outputs = solve_or_refuse(SUDOKU_SOLVER, puzzles, len(puzzles))
    if outputs is None:
        return
    for puzzle, out in zip(puzzles, outputs):
        assert isinstance(puzzle, str) and len(puzzle) == 16 and set(puzzle) <= set("1234.0")
        assert len(out["answer"]) == 16 and 1 <= out["steps"] <= 4 and isinstance(out["valid"], bool)
        assert 0.0 <= out["halt_probability"] <= 1.0


@FUZZ
@given(st.lists(hostile_grid, min_size=1, max_size=3))
def test_arc_pipeline_on_hostile_grids(grids) -> None:
    outputs = solve_or_refuse(ARC_SOLVER, grids, len(grids))
    if outputs is None:
        return
    for g, out in zip(grids, outputs):
        cells = np.asarray(g)
        assert cells.ndim == 2 and cells.shape[0] <= 6 and cells.shape[1] <= 6
        assert cells.dtype.kind in "iu" and cells.min() >= 0 and cells.max() <= 9
        answer = out["answer"]
        assert answer is None or (len(answer) <= 6 and all(len(row) == len(answer[0]) <= 6 for row in answer))


def test_a_bad_puzzle_late_in_a_batch_stops_the_call_before_any_compute() -> None:
    good = "1..4.4...3.1..1."
    with mock.patch.object(torch.nn.Module, "__call__", side_effect=AssertionError("model ran")):
        with pytest.raises(ValueError, match=r"^puzzle 3: .*17"):
            SUDOKU_SOLVER([good, good, good, good + "1"])
