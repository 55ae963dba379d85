"""`solve` with ACT vs the full 16 steps, on a small model trained here (4x4 Sudoku).

An untrained model never halts early (q_halt starts at sigmoid(-5)), so ACT can only be judged on a
trained one. The repo has no checkpoint, so the suite trains a tiny TRM on generated 4x4 Sudoku with
`TRMTrainer` (the recipe of tests/test_training_learns.py, trained longer) and caches it under
`benchmarks/.cache/` (ignored by git); it is retrained when the folder is missing or the recipe
changed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from modeling_trm import TRMConfig, TRMForGridReasoning
from modeling_trm.data.atomic import atomic_directory

CACHE_DIR = Path(__file__).resolve().parent / ".cache"

DEMO_MODEL = dict(vocab_size=6, seq_len=16, grid_shape=(4, 4), hidden_size=64, num_heads=2, H_cycles=2, L_cycles=2,
                  mixer="mlp_t", pos_encodings="none", puzzle_emb_len=0,
                  id_to_symbol=["<pad>", ".", "1", "2", "3", "4"])
DEMO_TRAINING = dict(per_device_train_batch_size=64, max_steps=700, learning_rate=1e-3, warmup_steps=20,
                     weight_decay=0.1, ema_decay=0.99, seed=0)
DEMO_DATA = dict(size=4, num_train=2000, num_test=1000, seed=0)
# The trained demo model is sure of every test puzzle after one step (q_halt 5.3 to 6.2 there, 5th to 95th
# percentile), so plain ACT halts all of them at step 1 and refilling slots has nothing to do. With its
# halting threshold raised to 5 (halt once q_halt > 5) the same network stops puzzles at 1 to 16 steps:
# measured on the 1,000 test puzzles in bf16, batches of 64, 963 at step 1, 28 at 2, 6 at 16, 3 in between.
VARIED_HALTING_THRESHOLD = 5.0


def _recipe_key() -> str:
    text = json.dumps([DEMO_MODEL, DEMO_TRAINING, DEMO_DATA], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def demo_puzzles() -> dict[str, dict[str, torch.Tensor]]:
    """Generated 4x4 puzzles as token ids (0 pad, 1 blank, 2..5 digits): train and test splits."""
    from modeling_trm.data.generate_sudoku import generate_sudoku_splits
    from modeling_trm.experiments.demo import encode_rows

    splits = generate_sudoku_splits(DEMO_DATA["size"], DEMO_DATA["num_train"], DEMO_DATA["num_test"],
                                    seed=DEMO_DATA["seed"])
    out = {}
    for name, rows in splits.items():
        encoded = encode_rows(rows)
        out[name] = {"input_ids": torch.tensor(encoded["input_ids"]), "labels": torch.tensor(encoded["labels"])}
    return out


def train_demo_model(puzzles: dict[str, dict[str, torch.Tensor]], workdir: str) -> TRMForGridReasoning:
    """Train the tiny model with TRMTrainer in fp32; returns the EMA model (what is evaluated and saved)."""
    import datasets

    from modeling_trm.training.trainer import TRMTrainer, TRMTrainingArguments

    train = puzzles["train"]
    dataset = datasets.Dataset.from_dict({"input_ids": train["input_ids"].tolist(), "labels": train["labels"].tolist(),
                                          "puzzle_identifiers": [0] * len(train["input_ids"])})
    torch.manual_seed(DEMO_TRAINING["seed"])
    args = TRMTrainingArguments(output_dir=workdir, report_to=[], logging_steps=100, save_strategy="no",
                                disable_tqdm=True, auto_bf16=False, **DEMO_TRAINING)
    trainer = TRMTrainer(model=TRMForGridReasoning(TRMConfig(**DEMO_MODEL)), args=args, train_dataset=dataset)
    trainer.train()
    model = TRMForGridReasoning(TRMConfig(**DEMO_MODEL))
    model.load_state_dict(trainer.ema.state_dict_for(trainer.model) if trainer.ema else trainer.model.state_dict())
    return model.eval()


def demo_model_folder(cache_dir: Path = CACHE_DIR) -> Path:
    """Where the demo model of the current recipe is cached (it exists once `config.json` is there)."""
    return cache_dir / f"act-demo-4x4-{_recipe_key()}"


def demo_model_cached(cache_dir: Path = CACHE_DIR) -> bool:
    return (demo_model_folder(cache_dir) / "config.json").exists()


def load_or_train_demo_model(cache_dir: Path = CACHE_DIR, log=print) -> tuple[TRMForGridReasoning, dict]:
    """The cached demo model, trained first when missing. Returns (model, info about how it was obtained)."""
    folder = demo_model_folder(cache_dir)
    if (folder / "config.json").exists():
        return TRMForGridReasoning.from_pretrained(folder).eval(), {"cached": True, "path": str(folder)}
    cache_dir.mkdir(parents=True, exist_ok=True)
    ignore = cache_dir / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    log(f"training the ACT demo model (4x4 Sudoku, {DEMO_TRAINING['max_steps']} steps); cached in {folder}")
    start = time.perf_counter()
    puzzles = demo_puzzles()
    with tempfile.TemporaryDirectory(dir=cache_dir) as workdir:
        model = train_demo_model(puzzles, os.path.join(workdir, "run"))
    with atomic_directory(folder, overwrite=True) as staging:  # a half-written model is never picked up
        model.save_pretrained(staging)
    seconds = time.perf_counter() - start
    log(f"trained in {seconds:.0f} s")
    return model, {"cached": False, "path": str(folder), "train_seconds": round(seconds, 1)}


def exact_accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    return float((predictions == labels).all(-1).float().mean())


def with_halting_threshold(model: TRMForGridReasoning, threshold: float) -> TRMForGridReasoning:
    """A copy of `model` whose ACT halts once q_halt > `threshold` (q_halt is linear in the q_head bias)."""
    shifted = copy.deepcopy(model)
    with torch.no_grad():
        shifted.q_head.bias[0] -= threshold
    return shifted
