"""`evaluate` module: ARC pass@k after undoing augmentations and voting across variants.

Load with `evaluate.load("eval/metrics/arc_pass_at_k")`. The arithmetic lives in
`modeling_trm.metrics.arc` and follows the authors' `evaluators/arc.py` step for step; this file only
adapts it to `evaluate`. One row per prediction of one augmented variant of one test input.
"""

import json
from pathlib import Path

import datasets
import evaluate

from modeling_trm.metrics.arc import (
    PASS_AT_K,
    arc_references_from_labels,
    arc_references_from_test_puzzles,
    rank_arc_candidates,
    score_arc_ranking,
    write_arc_submission,
)

_DESCRIPTION = """\
ARC-AGI scoring exactly as the TRM authors' evaluator (evaluators/arc.py). Each prediction (a 30x30 canvas
of token ids: 0 PAD, 1 EOS, colour c = c + 2) is cropped to the largest top-left rectangle of colours (the
empty grid when there is none, which votes too) and its augmentation undone; identical grids of one test
input pool their votes; candidates rank by votes, then by the mean sigmoid(q_halt) of their voters, then
first seen. `pass@k` is the share of a task's test inputs whose true grid is among the top k, averaged over
tasks (the paper reports pass@2). The true grids come from the label canvases in `references` (each undone
with its row's augmentation; all rows of one output must agree), and only test inputs that appear in some
row are scored, unless `test_puzzles` lists the tasks (the authors' test_puzzles.json): then every task in
it counts, in its order, and a task without rows scores 0. Rows of task "<blank>" cast no vote.
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
    test_puzzles (`dict` or `str`, *optional*): the authors' `test_puzzles.json` (content or path): the true
        grids and the task list to score and submit; rows of other tasks are ignored.
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
        ks=PASS_AT_K, submission_path=None, test_puzzles=None,
    ):
        truth = arc_references_from_labels(task_ids, test_indices, augmentations, references)
        ranked = rank_arc_candidates(task_ids, test_indices, augmentations, predictions, q_halt_logits)
        num_test_outputs = None
        if test_puzzles is not None:
            if not isinstance(test_puzzles, dict):
                test_puzzles = json.loads(Path(test_puzzles).read_text())
            listed = arc_references_from_test_puzzles(test_puzzles)
            for key, grid in truth.items():
                if key in listed and (listed[key].shape != grid.shape or (listed[key] != grid).any()):
                    raise ValueError(f"ARC output {key}: the label canvases disagree with test_puzzles")
            truth = listed
            ranked = {key: candidates for key, candidates in ranked.items() if key in listed}
            num_test_outputs = {task: len(puzzle["test"]) for task, puzzle in test_puzzles.items()}
        result = score_arc_ranking(ranked, truth, ks)
        result["num_predictions"] = len(task_ids)
        if submission_path is not None:
            write_arc_submission(submission_path, ranked, num_test_outputs)
        return result
