"""`evaluate` module: exact match and valid-shortest-path rate of predicted maze solutions.

Load with `evaluate.load("eval/metrics/maze_path")`. The arithmetic lives in
`modeling_trm.metrics.maze_path`; this file only adapts it to `evaluate`.
"""

import datasets
import evaluate

from modeling_trm.metrics import maze_path

_DESCRIPTION = """\
Maze metrics. `exact_accuracy`: the prediction equals the label on every scored cell. `valid_path_accuracy`:
the prediction marks ("o") one simple 4-connected chain of open cells from S to G, as long as the label's
path (S and G included), and changes no other cell. Mazes usually have several shortest paths and the label
marks one, so the second figure is the fairer one. Token ids: 0 PAD, 1 wall, 2 open, 3 S, 4 G, 5 path.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list[list[int]]`): predicted token ids, rows*cols per maze.
    references (`list[list[int]]`): labels (the question with one shortest path marked).
    inputs (`list[list[int]]`): questions.
    grid_shape (`tuple[int, int]`, *optional*): (rows, cols); defaults to a square grid.
Returns:
    exact_accuracy (`float`), valid_path_accuracy (`float`), num_examples (`int`).
Examples:
    >>> metric = evaluate.load("eval/metrics/maze_path")
    >>> metric.compute(predictions=[[3, 5, 1, 4]], references=[[3, 2, 5, 4]], inputs=[[3, 2, 2, 4]])
    {'exact_accuracy': 0.0, 'valid_path_accuracy': 0.0, 'num_examples': 1}
"""

_CITATION = """\
@article{jolicoeur2025trm,
  title={Less is More: Recursive Reasoning with Tiny Networks},
  author={Jolicoeur-Martineau, Alexia},
  journal={arXiv preprint arXiv:2510.04871},
  year={2025}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MazePath(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("int64")),
                    "references": datasets.Sequence(datasets.Value("int64")),
                    "inputs": datasets.Sequence(datasets.Value("int64")),
                }
            ),
        )

    def _compute(self, predictions, references, inputs, grid_shape=None):
        return maze_path(predictions, references, inputs, grid_shape=grid_shape)
