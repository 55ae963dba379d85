"""`evaluate` module: share of predicted Sudoku grids that are legal complete solutions keeping the givens.

Load with `evaluate.load("eval/metrics/sudoku_validity")`. The arithmetic lives in
`modeling_trm.metrics.sudoku_validity`; this file only adapts it to `evaluate`.
"""

import datasets
import evaluate

from modeling_trm.metrics import sudoku_validity

_DESCRIPTION = """\
Sudoku validity for N x N puzzles (N = 4, 6 or 9; boxes 2x2, 2x3, 3x3). `valid_accuracy` is the share of
predictions that hold a digit in every cell, no repeated digit in any row, column or box, and every given
digit of the question; a legal solution that differs from the label counts. `exact_accuracy` is the share
equal to the label on every scored cell. Token ids: 0 PAD, 1 blank, digit d = d + 1.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list[list[int]]`): predicted token ids, N*N per puzzle.
    references (`list[list[int]]`): label token ids (the solutions).
    inputs (`list[list[int]]`): question token ids (1 = blank).
Returns:
    valid_accuracy (`float`), exact_accuracy (`float`), num_examples (`int`).
Examples:
    >>> metric = evaluate.load("eval/metrics/sudoku_validity")
    >>> metric.compute(predictions=[[2, 3, 4, 5, 4, 5, 2, 3, 3, 2, 5, 4, 5, 4, 3, 2]],
    ...                references=[[2, 3, 4, 5, 4, 5, 2, 3, 3, 2, 5, 4, 5, 4, 3, 2]],
    ...                inputs=[[2, 1, 1, 1, 1, 1, 1, 3, 1, 1, 1, 1, 1, 1, 1, 1]])
    {'valid_accuracy': 1.0, 'num_examples': 1, 'exact_accuracy': 1.0}
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
class SudokuValidity(evaluate.Metric):
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

    def _compute(self, predictions, references, inputs):
        return sudoku_validity(predictions, inputs, references=references)
