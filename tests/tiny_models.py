"""Tiny TRM configurations shared by the tests (hidden 32, 4x4 grids): fast on one CPU thread."""

from __future__ import annotations

from typing import Any

import torch

from modeling_trm import TRMConfig, TRMForGridReasoning

TINY_SUDOKU_SYMBOLS = ["<pad>", ".", "1", "2", "3", "4"]


def tiny_config(**overrides: Any) -> TRMConfig:
    settings: dict[str, Any] = dict(
        vocab_size=6, seq_len=16, grid_shape=(4, 4), hidden_size=32, num_heads=4, num_layers=2,
        H_cycles=2, L_cycles=2, puzzle_emb_len=2, num_puzzle_identifiers=3, halt_max_steps=4,
        id_to_symbol=TINY_SUDOKU_SYMBOLS, expansion=2.0,
    )
    settings.update(overrides)
    return TRMConfig(**settings)


def tiny_model(seed: int = 0, **overrides: Any) -> TRMForGridReasoning:
    torch.manual_seed(seed)
    return TRMForGridReasoning(tiny_config(**overrides))


def random_batch(batch: int, seed: int = 0, vocab: int = 6, seq_len: int = 16) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(1, vocab, (batch, seq_len), generator=generator)
