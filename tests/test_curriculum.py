"""The Sudoku curriculum: many givens first, few givens later, a deterministic function of the step."""

from __future__ import annotations

import os

import datasets
import pytest
import torch

from modeling_trm.training.curriculum import CurriculumStream, count_blanks, max_blanks_at
from modeling_trm.training.sample_stream import SampleStream
from modeling_trm.training.trainer import TRMTrainer, TRMTrainingArguments
from tiny_models import tiny_model

BLANK, DIGIT = 1, 2


def graded_dataset(blank_counts: list[int]) -> datasets.Dataset:
    """One 4x4 row per entry, its first `b` cells blank; column `row` identifies it."""
    ids = [[BLANK] * b + [DIGIT] * (16 - b) for b in blank_counts]
    return datasets.Dataset.from_dict({
        "input_ids": ids, "labels": [[DIGIT] * 16 for _ in blank_counts],
        "puzzle_identifiers": [0] * len(blank_counts), "row": list(range(len(blank_counts))),
    })


def blanks_of(batch: dict[str, torch.Tensor]) -> list[int]:
    return (batch["input_ids"] == BLANK).sum(-1).tolist()


def test_bound_rises_linearly_from_start_to_the_hardest_puzzle() -> None:
    # 36 + 18 * step // 1500
    assert [max_blanks_at(s, 36, 54, 1500) for s in (0, 83, 84, 750, 1499, 1500, 9000)] == [36, 36, 37, 45, 53, 54, 54]


def test_count_blanks_reads_the_question() -> None:
    assert count_blanks(graded_dataset([0, 3, 16])).tolist() == [0, 3, 16]


def test_easy_puzzles_come_first_and_every_puzzle_after_the_ramp() -> None:
    counts = [2, 2, 2, 4, 4, 4, 6, 6, 6, 8, 8, 8]
    stream = CurriculumStream(graded_dataset(counts), seed=5, curriculum_steps=6, start_blanks=2)
    assert sorted(blanks_of(stream.take(6, step=0))) == [2] * 6  # only the 2-blank rows (twice over)
    at_step_3 = blanks_of(stream.take(12, step=3))  # bound 2 + 6 * 3 // 6 = 5
    assert max(at_step_3) == 4 and sorted(set(at_step_3)) == [2, 4]
    after = blanks_of(stream.take(12, step=6))  # bound 8: one full pass over all 12 rows
    assert sorted(after) == sorted(counts)
    with pytest.raises(ValueError, match="admits 0 training rows"):
        CurriculumStream(graded_dataset(counts), seed=5, curriculum_steps=6, start_blanks=1)


def test_a_restored_stream_draws_what_the_uninterrupted_one_draws() -> None:
    dataset = graded_dataset([1, 3, 5, 7, 9, 11] * 3)
    first = CurriculumStream(dataset, seed=2, curriculum_steps=10)
    for step in range(3):
        first.take(4, step=step)
    state = first.state_dict()
    later = [first.take(4, step=s)["input_ids"].tolist() for s in (3, 7, 12)]

    restored = CurriculumStream(dataset, seed=2, curriculum_steps=10)
    restored.load_state_dict(state)
    assert [restored.take(4, step=s)["input_ids"].tolist() for s in (3, 7, 12)] == later
    other_seed = CurriculumStream(dataset, seed=3, curriculum_steps=10)
    other_seed.load_state_dict({**state, "seed": 3})
    assert [other_seed.take(4, step=s)["input_ids"].tolist() for s in (3, 7, 12)] != later


def make_trainer(output_dir, dataset, **overrides) -> TRMTrainer:
    settings = dict(output_dir=str(output_dir), per_device_train_batch_size=4, max_steps=6, report_to=[],
                    logging_steps=1, save_strategy="steps", save_steps=3, warmup_steps=2, disable_tqdm=True,
                    auto_bf16=False, seed=11, learning_rate=1e-3)
    settings.update(overrides)
    return TRMTrainer(model=tiny_model(seed=1, halt_exploration_prob=0.5, puzzle_emb_len=0),
                      args=TRMTrainingArguments(**settings), train_dataset=dataset)


def test_trainer_follows_the_curriculum_and_resumes_it_exactly(tmp_path) -> None:
    dataset = graded_dataset([2, 4, 6, 8, 10, 12] * 4)
    plain = make_trainer(tmp_path / "plain", dataset, max_steps=1)
    plain.train()
    assert type(plain.stream) is SampleStream  # curriculum_steps=0 keeps the default path

    straight = make_trainer(tmp_path / "a", dataset, curriculum_steps=4, curriculum_start_blanks=2)
    straight.train()
    assert isinstance(straight.stream, CurriculumStream) and straight.stream.level == 12
    resumed = make_trainer(tmp_path / "a", dataset, curriculum_steps=4, curriculum_start_blanks=2)
    resumed.train(resume_from_checkpoint=os.path.join(straight.args.output_dir, "checkpoint-3"))
    assert straight.stream.state_dict() == resumed.stream.state_dict()
    assert torch.equal(straight.carries[0].input_ids, resumed.carries[0].input_ids)
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
