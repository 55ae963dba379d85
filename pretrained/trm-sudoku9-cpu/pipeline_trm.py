"""The `grid-reasoning` pipeline: puzzles in the dataset's own symbols (or ARC grids) in, solved puzzles out.

    from transformers import pipeline
    solver = pipeline("grid-reasoning", model=model)                   # with this package imported
    solver = pipeline(model="org/trm-sudoku", trust_remote_code=True)  # a saved folder or Hub repo alone
    solver("1..4.4...3.1..1.")          # {"answer": "1234...", "steps": 2, "halt_probability": 0.97, "valid": True}
    solver(["1..4....", "..."], batch_size=16)                         # a list in, a list out

Inputs: a puzzle string of `seq_len` symbols of the model's vocabulary (Sudoku `"53..7...."`, a maze
row by row), a list of them, or for ARC models a 2-D list of colours 0..9 (or a list of such grids),
laid on the model's canvas as the dataset builder lays them. Every input is checked before any
compute; a bad one raises `ValueError` naming its index and the problem.

Outputs per puzzle: `answer` (the solved string, or for ARC the grid cut from the predicted canvas,
None when there is none), `steps` (supervision steps used), `halt_probability` (sigmoid of the last
q_halt logit) and, for Sudoku and maze models, `valid` (a legal complete Sudoku keeping the givens;
a shortest S-to-G maze path). `halting="act"` (default: stop once q_halt > 0) or `"max"` and
`max_steps=` go to `solve`; `batch_size=` and `device=` work as in other pipelines. Test-time scaling
(PTRM, see `solve`): `samples=K` noisy trajectories per puzzle with `noise_std=`, one kept by
`selection="halt"` (highest final q_halt logit) or `"vote"`, and `seed=` (an int) for the noise: each
batch draws from a generator seeded with it, so a call with the same inputs, seed and batch size gives
the same answers. `escalate=True` (with `escalate_after=` steps and `escalate_confidence=`, a halting
probability, default 0.5) gives the K trajectories only to puzzles whose halting head is not confident
after one; each result then says `escalated` and `total_steps`.

On CPU the first call picks torch's thread count as the `trm` commands do (`threads.py`: the CPUs this
process may use and other processes leave idle), unless the user set it (`torch.set_num_threads`,
`OMP_NUM_THREADS`) or a command already chose; the choice is logged at info level.

This file is copied next to saved checkpoints (`save_pretrained` records it in `custom_pipelines`), so
it imports only torch, numpy, transformers and modules of its own folder.
"""

from __future__ import annotations

import math
from collections.abc import Sized
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import AutoModel, Pipeline
from transformers.utils import logging
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

from .arc_canvas import arc_grid_to_canvas, crop_arc_prediction
from .grid_checks import is_shortest_maze_path, valid_sudoku_rows
from .modeling_trm import check_escalation_arguments, check_sampling_arguments
from .puzzle_text import encode_puzzle, render_answer, symbol_lookup
from .threads import apply_thread_choice

TASK = "grid-reasoning"
logger = logging.get_logger(__name__)
HALTING_MODES = ("act", "max")


def custom_pipelines_entry() -> dict[str, dict[str, Any]]:
    """The `custom_pipelines` field of a saved config: where `pipeline(model=DIR, trust_remote_code=True)`
    finds this class (same layout as `Pipeline.save_pretrained` writes)."""
    return {TASK: {"impl": f"{__name__.split('.')[-1]}.GridReasoningPipeline", "pt": ["AutoModel"]}}


@dataclass
class EncodedPuzzle:
    """One checked input: its token ids and where it came from (for messages)."""

    index: int | None
    input_ids: list[int]


def _is_grid(value: Any) -> bool:
    """A 2-D grid (rows of cells) rather than a flat puzzle or a list of puzzles."""
    if isinstance(value, np.ndarray):
        return value.ndim == 2
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(
        isinstance(row, (list, tuple, np.ndarray)) and not any(isinstance(c, (list, tuple)) for c in row)
        for row in value)


class GridReasoningPipeline(Pipeline):
    """Solve grid puzzles with a `TRMForGridReasoning` (see the module docstring for inputs and outputs)."""

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def _sanitize_parameters(self, halting: str | None = None, max_steps: int | None = None, samples: int | None = None,
                             noise_std: float | None = None, selection: str | None = None, seed: int | None = None,
                             escalate: bool | None = None, escalate_after: int | None = None,
                             escalate_confidence: float | None = None, **unknown: Any):
        if unknown:
            raise ValueError(f"unknown grid-reasoning parameters {sorted(unknown)}; it takes halting, max_steps, "
                             "samples, noise_std, selection, seed, escalate, escalate_after, "
                             "escalate_confidence, batch_size and device")
        # test-time scaling (`solve`'s PTRM sampling), checked here so a bad value fails before any compute
        forward: dict[str, Any] = {key: value for key, value in (
            ("samples", samples), ("noise_std", noise_std), ("selection", selection), ("escalate", escalate),
            ("escalate_after", escalate_after), ("escalate_confidence", escalate_confidence)) if value is not None}
        check_sampling_arguments(forward.get("samples", 1), forward.get("noise_std", 0.0),
                                 forward.get("selection", "halt"), generator=None, max_batch_rows=None)
        check_escalation_arguments(forward.get("escalate", False), forward.get("escalate_after"),
                                   forward.get("samples", 1), forward.get("noise_std", 0.0), return_trajectory=False,
                                   escalate_confidence=forward.get("escalate_confidence"))
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
                raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
            forward["seed"] = seed
        if halting is not None:
            if halting not in HALTING_MODES:
                raise ValueError(f"halting must be one of {HALTING_MODES}, got {halting!r}")
            forward["halting"] = halting
        if max_steps is not None:
            if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
                raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
            forward["max_steps"] = max_steps
        return {}, forward, {}

    # -- inputs ---------------------------------------------------------------------------------

    def _is_batch(self, inputs: Any) -> bool:
        """A list of puzzles, rather than one (for ARC a grid is itself a list of rows)."""
        if self.model.config.task == "arc":
            return inputs.ndim == 3 if isinstance(inputs, np.ndarray) else not _is_grid(inputs)
        return isinstance(inputs, (list, tuple)) or (isinstance(inputs, np.ndarray) and inputs.ndim == 1)

    def encode(self, puzzle: Any, index: int | None = None) -> EncodedPuzzle:
        """Token ids of one input; `ValueError` naming the puzzle index and the problem."""
        where = f"puzzle {index}" if index is not None else "puzzle"
        try:
            ids = self._arc_ids(puzzle) if self.model.config.task == "arc" else self._text_ids(puzzle)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
        return EncodedPuzzle(index, ids)

    def _text_ids(self, puzzle: Any) -> list[int]:
        if not isinstance(puzzle, str):
            raise ValueError(f"expected a puzzle string of {self.model.config.seq_len} symbols, "
                             f"got {type(puzzle).__name__}")
        if not hasattr(self, "_lookup"):
            self._lookup = symbol_lookup(self.model.config)
        return encode_puzzle(puzzle, self.model.config, self._lookup)

    def _arc_ids(self, puzzle: Any) -> list[int]:
        if not _is_grid(puzzle):
            raise ValueError(f"expected a 2-D grid (a list of rows of colours 0..9), got {type(puzzle).__name__}")
        widths = {len(row) for row in puzzle}
        if len(widths) != 1 or 0 in widths:
            raise ValueError(f"grid rows must all have the same non-zero length, got {[len(row) for row in puzzle]}")
        canvas_rows, canvas_cols = (int(size) for size in self.model.config.grid_shape)
        rows, cols = len(puzzle), widths.pop()
        if rows > canvas_rows or cols > canvas_cols:
            raise ValueError(f"grid is {rows}x{cols}, larger than the model's {canvas_rows}x{canvas_cols} canvas")
        cells = np.asarray(puzzle)
        if cells.dtype.kind not in "iu" or cells.min() < 0 or cells.max() > 9:
            raise ValueError("grid cells must be integer colours 0..9")
        return arc_grid_to_canvas(cells, canvas_shape=(canvas_rows, canvas_cols)).reshape(-1).tolist()

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """Check every puzzle first, then solve: a bad puzzle fails the call before any compute."""
        if isinstance(inputs, (str, list, tuple, np.ndarray)):
            if self._is_batch(inputs):
                inputs = [self.encode(puzzle, index) for index, puzzle in enumerate(inputs)]
                if not inputs:
                    return []
            else:
                inputs = self.encode(inputs, 0)
        return super().__call__(inputs, *args, **kwargs)

    # -- the three stages -----------------------------------------------------------------------

    def preprocess(self, puzzle: Any) -> dict[str, torch.Tensor]:
        encoded = puzzle if isinstance(puzzle, EncodedPuzzle) else self.encode(puzzle)
        return {"input_ids": torch.tensor([encoded.input_ids], dtype=torch.long)}

    def _forward(self, model_inputs: dict[str, torch.Tensor], halting: str = "act", max_steps: int | None = None,
                 seed: int | None = None, **sampling: Any) -> dict[str, torch.Tensor]:
        if self.device.type == "cpu" and not getattr(self, "_threads_chosen", False):
            # the first CPU solve starts torch's thread pool: size it to the CPUs actually available
            logger.info(apply_thread_choice(announce=False).line())
            self._threads_chosen = True
        input_ids = model_inputs["input_ids"]
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        solved = self.model.solve(input_ids, max_steps=max_steps, halting=halting, generator=generator, **sampling)
        outputs = {"input_ids": input_ids, "predictions": solved.predictions, "steps": solved.steps,
                   "q_halt_logits": solved.q_halt_logits}
        if solved.escalated is not None:
            outputs.update(escalated=solved.escalated, total_steps=solved.total_steps)
        return outputs

    def postprocess(self, model_outputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        config = self.model.config
        tokens = model_outputs["predictions"][0].numpy()
        question = model_outputs["input_ids"][0].numpy()
        q_halt = float(model_outputs["q_halt_logits"].reshape(-1)[0])
        result: dict[str, Any] = {}
        if config.task == "arc":
            grid = crop_arc_prediction(tokens.reshape(config.grid_shape))
            result["answer"] = None if grid is None else grid.tolist()
        else:
            result["answer"] = render_answer(tokens.tolist(), config)
        result["steps"] = int(model_outputs["steps"].reshape(-1)[0])
        result["halt_probability"] = 1.0 / (1.0 + math.exp(-q_halt)) if q_halt > -700 else 0.0
        if "escalated" in model_outputs:  # escalate=True: whether it took K trajectories, and all their steps
            result["escalated"] = bool(model_outputs["escalated"].reshape(-1)[0])
            result["total_steps"] = int(model_outputs["total_steps"].reshape(-1)[0])
        if config.task == "sudoku":
            result["valid"] = bool(valid_sudoku_rows(tokens[None], question[None])[0])
        elif config.task == "maze":
            result["valid"] = is_shortest_maze_path(tokens.reshape(config.grid_shape), question.reshape(config.grid_shape))
        return result

    # -- batching without a tokenizer -----------------------------------------------------------

    def get_iterator(self, inputs, num_workers: int, batch_size: int, preprocess_params, forward_params,
                     postprocess_params):
        """As `Pipeline.get_iterator`, but batches are stacked here: every puzzle of a model has the same
        length, so there is nothing to pad (the base class pads with a tokenizer, which TRM has none of)."""
        if isinstance(inputs, Sized):
            dataset = PipelineDataset(inputs, self.preprocess, preprocess_params)
        else:  # a generator: read lazily, one worker
            dataset, num_workers = PipelineIterator(inputs, self.preprocess, preprocess_params), 0
        loader = DataLoader(dataset, num_workers=num_workers, batch_size=batch_size, collate_fn=_stack)
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)


def _stack(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.cat([item[key] for item in items]) for key in items[0]}


if TASK not in PIPELINE_REGISTRY.get_supported_tasks():  # a second copy (remote code) keeps the first
    PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=GridReasoningPipeline, pt_model=AutoModel)

__all__ = ["GridReasoningPipeline", "TASK", "custom_pipelines_entry"]
