"""Learning test: a tiny TRM trained with TRMTrainer solves held-out generated 4x4 Sudoku.

Seeded, generous threshold (chance is ~0% exact); not a timing test. Hidden size 32, T = 2 cycles of n = 1 latent step,
200 steps at batch 32 and learning rate 3e-3, with N_sup = 2 in training (the demo recipe's choice: each step brings up
to 16 new puzzles), scored with 16 steps. Held-out exact accuracy of this run on an AVX2 CPU, read every 50 steps: 0% up
to step 100, 52.5% at 150, 90% at 200, 98% at 250. Other settings measured the same way: n = 2 (twice the latent
steps, ~1.5x the compute) 22.5% at 150 and 79% at 200; hidden 64, n = 2 at learning rate 1e-3 51% at 250 and 91% at
350 (~5x the compute of this run); with the paper's N_sup = 16 that needed 400 steps at batch 64.
On a CPU without bf16 units the bf16-autocast case trains in fp32, the same run as the fp32 case to the bit, so it
checks that autocast stayed off and reuses that run's scores instead of training it twice.
"""

from __future__ import annotations

import datasets
import pytest
import torch

from modeling_trm import TRMConfig, TRMForGridReasoning
from modeling_trm.data.generate_sudoku import generate_sudoku_splits
from modeling_trm.training.trainer import TRMTrainer, TRMTrainingArguments, cpu_supports_bf16


def encode(rows) -> datasets.Dataset:
    questions = [[1 if c == "." else int(c) + 1 for c in row.question] for row in rows]
    answers = [[int(c) + 1 for c in row.answer] for row in rows]
    return datasets.Dataset.from_dict({"input_ids": questions, "labels": answers, "puzzle_identifiers": [0] * len(rows)})


# Runs already trained in this process, by whether they used bf16 autocast: (losses, before, after).
TRAINED: dict[bool, tuple[list[float], dict, dict]] = {}


# bf16 is the default where the CPU has bf16 units (elsewhere that case runs in fp32 too).
@pytest.mark.parametrize("auto_bf16", [False, True], ids=["fp32", "bf16-autocast"])
def test_tiny_trm_learns_4x4_sudoku(tmp_path, auto_bf16: bool) -> None:
    splits = generate_sudoku_splits(4, 2000, 200, seed=0)
    train, test = encode(splits["train"]), encode(splits["test"])
    config = TRMConfig(vocab_size=6, seq_len=16, grid_shape=(4, 4), hidden_size=32, num_heads=2, H_cycles=2,
                       L_cycles=1, mixer="mlp_t", pos_encodings="none", puzzle_emb_len=0,
                       id_to_symbol=["<pad>", ".", "1", "2", "3", "4"], halt_max_steps=2, solve_max_steps=16)
    torch.manual_seed(0)
    args = TRMTrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=32, max_steps=200,
                                learning_rate=3e-3, warmup_steps=20, weight_decay=0.1, ema_decay=0.99, report_to=[],
                                logging_steps=50, save_strategy="no", disable_tqdm=True, auto_bf16=auto_bf16, seed=0,
                                per_device_eval_batch_size=200)
    if auto_bf16 and not cpu_supports_bf16() and not torch.cuda.is_available():
        assert not args.bf16  # no bf16 units: autocast stays off, so this is the fp32 run
    if args.bf16 not in TRAINED:
        trainer = TRMTrainer(model=TRMForGridReasoning(config), args=args, train_dataset=train)
        before = trainer.evaluate(test)
        trainer.train()
        after = trainer.evaluate(test)
        TRAINED[args.bf16] = ([entry["lm_loss"] for entry in trainer.state.log_history if "lm_loss" in entry],
                              before, after)
    losses, before, after = TRAINED[args.bf16]
    assert losses[-1] < 0.6 * losses[0]
    assert before["eval_exact_accuracy"] < 0.05
    assert after["eval_exact_accuracy"] > 0.5, after
