"""`evaluate` module: ARC pass@k after undoing augmentations and voting across variants.

Load with `evaluate.load("eval/metrics/arc_pass_at_k")`. The arithmetic lives in
`modeling_trm.metrics.arc`; this file only adapts it to `evaluate`. One row per prediction of one
augmented variant of one test input.
"""

import datasets
import evaluate

from modeling_trm.metrics import PASS_AT_K, arc_references_from_labels, rank_arc_candidates, score_arc_ranking
from modeling_trm.metrics import write_arc_submission

_DESCRIPTION = """\
ARC-AGI scoring as in the TRM paper. Each prediction (a 30x30 canvas of token ids: 0 PAD, 1 EOS, colour c
= c + 2) is cropped to its grid and its augmentation undone; identical grids of one test output pool their
votes; candidates rank by votes, then by the mean sigmoid(q_halt) of their voters. `pass@k` is the share of
a task's test outputs whose true grid is among the top k, averaged over tasks (the paper reports pass@2).
The true grids come from the label canvases in `references` (each undone with its row's augmentation; all
rows of one output must agree). Only test outputs that appear in some row are scored.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list[list[int]]`): predicted canvas token ids, 900 per row (0..11).
    references (`list[list[int]]`): label canvas of the same variant, 900 per row (-100 or 0 outside the grid).
    task_ids (`list[str]`): ARC task id of each row.
    test_indices (`list[int]`): index of the task's test output each row answers.
    augmentations (`list[str]`): augmentation name of each row's variant, e.g. "t3_p0921345678".
    q_halt_logits (`list[float]`): the model's halting logit for each prediction.
    ks (`list[int]`, *optional*, defaults to (1, 2, 5, 10, 100, 1000)): the k of pass@k.
    submission_path (`str`, *optional*): where to write a Kaggle `submission.json` of the top 2 candidates.
Returns:
    pass@k (`float`) for each k, num_tasks, num_test_outputs, num_predictions, num_voting_predictions (`int`).
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
class ArcPassAtK(evaluate.Metric):
    def _info(self):
        # int8 canvases: a full ARC evaluation is ~400k rows of 900 tokens, 8x smaller than int64.
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("int8")),
                    "references": datasets.Sequence(datasets.Value("int8")),
                    "task_ids": datasets.Value("string"),
                    "test_indices": datasets.Value("int64"),
                    "augmentations": datasets.Value("string"),
                    "q_halt_logits": datasets.Value("float64"),
                }
            ),
        )

    def _compute(
        self, predictions, references, task_ids, test_indices, augmentations, q_halt_logits,
        ks=PASS_AT_K, submission_path=None,
    ):
        truth = arc_references_from_labels(task_ids, test_indices, augmentations, references)
        ranked = rank_arc_candidates(task_ids, test_indices, augmentations, predictions, q_halt_logits)
        result = score_arc_ranking(ranked, truth, ks)
        result["num_predictions"] = len(task_ids)
        if submission_path is not None:
            write_arc_submission(submission_path, ranked)
        return result
