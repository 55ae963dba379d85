"""Puzzle text <-> token ids, shared by `trm solve` and the `grid-reasoning` pipeline.

A puzzle is `seq_len` single-character symbols of the model's own vocabulary (`config.id_to_symbol`),
row by row; for Sudoku `0` is accepted as a blank besides `.`. Errors say what is wrong with the
puzzle; callers add where it came from (a file line, a pipeline input index).

This file is copied next to saved checkpoints (the pipeline imports it for `trust_remote_code`): it
imports only the standard library.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def symbol_lookup(config: Any) -> dict[str, int]:
    """Single-character symbols of the vocabulary (PAD and EOS never appear in a question)."""
    lookup = {symbol: index for index, symbol in enumerate(config.id_to_symbol) if len(symbol) == 1}
    if config.task == "sudoku" and config.blank_token_id is not None:
        lookup.setdefault("0", config.blank_token_id)
    return lookup


def encode_puzzle(question: str, config: Any, lookup: dict[str, int] | None = None) -> list[int]:
    """Token ids of one puzzle string; `ValueError` saying what is wrong (length or unknown symbols)."""
    lookup = symbol_lookup(config) if lookup is None else lookup
    if config.task == "sudoku":
        question = question.strip()  # Sudoku strings have no meaningful spaces (maze strings do)
    if len(question) != config.seq_len:
        raise ValueError(f"expected {config.seq_len} symbols, got {len(question)}")
    unknown = sorted({c for c in question if c not in lookup})
    if unknown:
        raise ValueError(f"symbols {unknown} are not in the model's vocabulary {sorted(lookup)}")
    return [lookup[c] for c in question]


def render_answer(tokens: Sequence[int], config: Any, as_grid: bool = False) -> str:
    """An answer as one line of symbols, or as rows of space-separated symbols (`as_grid`)."""
    symbols = [symbol if len(symbol) == 1 else "?" for symbol in config.id_to_symbol]
    text = "".join(symbols[t] for t in tokens)
    if not as_grid:
        return text
    cols = config.grid_shape[1]
    return "\n".join(" ".join(text[i:i + cols]) for i in range(0, len(text), cols)) + "\n"


__all__ = ["encode_puzzle", "render_answer", "symbol_lookup"]
