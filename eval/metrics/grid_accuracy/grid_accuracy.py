"""`evaluate` module: exact (whole-grid), token and blank-cell accuracy of predicted token grids.

Load with `evaluate.load("eval/metrics/grid_accuracy")`. The arithmetic lives in
`modeling_trm.metrics.grid_accuracy`; this file only adapts it to `evaluate`.
"""

import datasets
import evaluate

from modeling_trm.metrics import grid_accuracy

_DESCRIPTION = """\
Accuracy of predicted puzzle grids (token ids). `exact_accuracy` is the share of grids with every
scored cell right (the paper's accuracy); `token_accuracy` the share of scored cells right; with
`inputs` and `blank_token_id`, `blank_accuracy` is the accuracy over cells that were blank in the
question. Cells whose reference is PAD (`pad_token_id`, default 0) or -100 are not scored.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list[list[int]]`): predicted token ids, one sequence per grid.
    references (`list[list[int]]`): label token ids, same lengths.
    inputs (`list[list[int]]`, *optional*): question token ids, needed for `blank_accuracy`.
    blank_token_id (`int`, *optional*): id of a blank question cell (Sudoku: 1).
    pad_token_id (`int`, *optional*, defaults to 0): reference id that is not scored; `None` scores it.
Returns:
    exact_accuracy (`float`), token_accuracy (`float`), num_examples (`int`),
    blank_accuracy (`float` or `None`, only with `inputs` and `blank_token_id`).
Examples:
    >>> metric = evaluate.load("eval/metrics/grid_accuracy")
    >>> metric.compute(predictions=[[2, 3], [2, 2]], references=[[2, 3], [2, 3]])
    {'exact_accuracy': 0.5, 'token_accuracy': 0.75, 'num_examples': 2}
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
class GridAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("int64")),
                    "references": datasets.Sequence(datasets.Value("int64")),
                }
            ),
        )

    def _compute(self, predictions, references, inputs=None, blank_token_id=None, pad_token_id=0):
        return grid_accuracy(
            predictions, references, inputs=inputs, blank_token_id=blank_token_id, pad_token_id=pad_token_id
        )
