"""Fault injection, corrupt or mismatched files (issue 15, scenario 3).

Every broken checkpoint reaches `from_pretrained`, `trm eval`, `trm solve` and `trm convert-reference`
and must give one clear error naming the file (or folder) and the mismatch, before any compute, and
never a model with part of its weights freshly initialised. Each case is one injected fault; the
cases are listed in FOLDER_FAULTS and REFERENCE_FAULTS so the closing note can count them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import save_file
from tiny_models import tiny_model

from modeling_trm import TRMForGridReasoning
from modeling_trm.commands import main
from modeling_trm.convert import export_reference_state_dict
from modeling_trm.data.generate_sudoku import generate_sudoku_splits
from modeling_trm.data.metadata import save_trm_dataset
from modeling_trm.data.puzzle_csv import write_puzzle_csv
from modeling_trm.data.sudoku import build_sudoku_dataset
from modeling_trm.modeling_trm import CheckpointLoadError

pytestmark = pytest.mark.faults

PUZZLE = "1.3.....2..4...1"


@pytest.fixture(scope="module")
def sudoku_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sudoku")
    for split, rows in generate_sudoku_splits(4, 4, 6, seed=0).items():
        write_puzzle_csv(root / f"{split}.csv", rows)
    dataset, metadata = build_sudoku_dataset(root)
    return save_trm_dataset(dataset, metadata, root / "data")


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "good"
    tiny_model(num_puzzle_identifiers=1).save_pretrained(folder)
    return folder


def _edit_config(**changes) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        config.update(changes)
        (folder / "config.json").write_text(json.dumps(config))
    return edit


def _truncate_weights(fraction: float) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        path = folder / "model.safetensors"
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])
    return edit


def _drop_last_weight_byte(folder: Path) -> None:
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-1])


def _pickle_as_safetensors(folder: Path) -> None:
    torch.save(tiny_model(num_puzzle_identifiers=1).state_dict(), folder / "model.safetensors")


def _weights_of_another_config(**overrides) -> Callable[[Path], None]:
    """The folder's config.json beside the weights of a model built with `overrides` (another preset/run)."""
    def edit(folder: Path) -> None:
        other = tiny_model(seed=3, **{"num_puzzle_identifiers": 1, **overrides})
        save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(folder / "model.safetensors"),
                  metadata={"format": "pt"})
    return edit


# (name, edit, what the error must say). The "file" part of each message is checked separately.
FOLDER_FAULTS = [
    ("truncated-header", _truncate_weights(0.001), r"model\.safetensors: not a readable safetensors file"),
    ("truncated-half", _truncate_weights(0.5), r"model\.safetensors: not a readable safetensors file"),
    ("truncated-last-byte", _drop_last_weight_byte, r"model\.safetensors: not a readable safetensors file"),
    ("empty-weights", _truncate_weights(0.0), r"model\.safetensors: not a readable safetensors file"),
    ("pickle-as-safetensors", _pickle_as_safetensors, r"model\.safetensors: not a readable safetensors file"),
    ("config-vocab-size", _edit_config(vocab_size=7, id_to_symbol=["<pad>", ".", "1", "2", "3", "4", "5"]),
     r"embed_tokens\.weight has shape \[6, 32\] in the weights, the config needs \[7, 32\]"),
    ("config-hidden-size", _edit_config(hidden_size=64), r"lm_head\.weight has shape \[6, 32\] in the weights, "
                                                          r"the config needs \[6, 64\]"),
    ("config-more-layers", _edit_config(num_layers=3), r"missing from the weights: core\.layers\.2\."),
    ("config-fewer-layers", _edit_config(num_layers=1), r"in the weights but not in the model: core\.layers\.1\."),
    ("config-other-mixer", _edit_config(mixer="mlp_t", pos_encodings="none"),
     r"missing from the weights: core\.layers\.0\.mlp_t\.swiglu"),
    ("config-seq-len-mlp", None, r"mlp_t\.swiglu\.gate_up_proj\.weight has shape"),  # built in the test
    ("weights-of-mlp-preset", _weights_of_another_config(mixer="mlp_t", pos_encodings="none"),
     r"in the weights but not in the model: core\.layers\.0\.mlp_t"),
    ("weights-more-puzzle-ids", _weights_of_another_config(num_puzzle_identifiers=5),
     r"puzzle_embedding\.weight has shape \[5, 32\] in the weights, the config needs \[1, 32\]"),
    ("config-malformed-json", lambda folder: (folder / "config.json").write_text('{"model_type": "trm", "vocab'),
     r"config\.json"),
    ("config-invalid-value", _edit_config(hidden_size=0), r"hidden_size: must be a positive integer"),
]


def _broken_folder(good_dir: Path, tmp_path: Path, name: str, edit) -> Path:
    folder = tmp_path / name
    if name == "config-seq-len-mlp":  # an mlp_t model (its mixer width is the sequence length), config for 6x6
        tiny_model(num_puzzle_identifiers=1, mixer="mlp_t", pos_encodings="none").save_pretrained(folder)
        _edit_config(seq_len=36, grid_shape=[6, 6])(folder)
        return folder
    shutil.copytree(good_dir, folder)
    edit(folder)
    return folder


@pytest.mark.parametrize("name, edit, message", FOLDER_FAULTS, ids=[case[0] for case in FOLDER_FAULTS])
def test_broken_model_folder_is_refused_by_from_pretrained_eval_and_solve(
        name, edit, message, good_dir, sudoku_dir, tmp_path, capsys, monkeypatch) -> None:
    folder = _broken_folder(good_dir, tmp_path, name, edit)
    named = str(folder / "model.safetensors") if "safetensors" in message else str(folder)

    with pytest.raises((CheckpointLoadError, OSError, ValueError), match=message) as raised:
        TRMForGridReasoning.from_pretrained(folder)
    assert named in str(raised.value)

    def no_compute(*args, **kwargs):
        raise AssertionError("solve() ran on a checkpoint that should have been refused")

    monkeypatch.setattr(TRMForGridReasoning, "solve", no_compute)
    out = tmp_path / "results.json"
    capsys.readouterr()
    assert main(["eval", "--model", str(folder), "--dataset", str(sudoku_dir), "--out", str(out),
                 "--no-progress"]) == 2
    error = capsys.readouterr().err
    messages = [line for line in error.splitlines() if line.startswith("trm eval: error: ")]
    assert len(messages) == 1 and "Traceback" not in error  # one message, no traceback
    assert named in messages[0]
    assert not out.exists()

    puzzles = tmp_path / "puzzles.txt"
    try:  # a puzzle of the length the config asks for, so that the weights are what is refused
        seq_len = json.loads((folder / "config.json").read_text())["seq_len"]
    except ValueError:
        seq_len = len(PUZZLE)
    puzzles.write_text((PUZZLE * 3)[:seq_len] + "\n")
    assert main(["solve", str(folder), str(puzzles)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no answer printed
    assert named in captured.err and "Traceback" not in captured.err


def test_seq_len_of_an_attention_model_is_checked_against_data_and_puzzles(good_dir, sudoku_dir, tmp_path,
                                                                         capsys) -> None:
    """Attention weights do not depend on the sequence length, so loading cannot tell; the data can."""
    folder = tmp_path / "six-by-six"
    shutil.copytree(good_dir, folder)
    _edit_config(seq_len=36, grid_shape=[6, 6])(folder)
    assert TRMForGridReasoning.from_pretrained(folder).config.seq_len == 36
    assert main(["eval", "--model", str(folder), "--dataset", str(sudoku_dir), "--out",
                 str(tmp_path / "r.json"), "--no-progress"]) == 2
    assert "seq_len: model 36, dataset 16" in capsys.readouterr().err
    puzzles = tmp_path / "puzzles.txt"
    puzzles.write_text(PUZZLE + "\n")
    assert main(["solve", str(folder), str(puzzles)]) == 2
    assert f"{puzzles} line 1: expected 36 symbols, got 16" in capsys.readouterr().err


def test_the_partial_load_opt_in_still_works(good_dir, tmp_path) -> None:
    """`ignore_mismatched_sizes=True` keeps transformers' behaviour: the caller asked for a partial load."""
    folder = _broken_folder(good_dir, tmp_path, "more-ids", _weights_of_another_config(num_puzzle_identifiers=5))
    model = TRMForGridReasoning.from_pretrained(folder, ignore_mismatched_sizes=True)
    assert model.puzzle_embedding.weight.shape == (1, 32)
    loaded, info = TRMForGridReasoning.from_pretrained(good_dir, output_loading_info=True)
    assert info["missing_keys"] == set() and isinstance(loaded, TRMForGridReasoning)


# ----------------------------------------------------------------------------- reference checkpoints

PREFIX = "_orig_mod.model.inner."


def _reference_state_dict() -> dict[str, torch.Tensor]:
    return export_reference_state_dict(tiny_model(num_puzzle_identifiers=1, mixer="mlp_t", pos_encodings="none",
                                                  puzzle_emb_len=16))


def _write_reference(path: Path, change: str) -> None:
    sd = _reference_state_dict()
    if change == "missing-key":
        del sd[PREFIX + "lm_head.weight"]
    elif change == "extra-key":
        sd[PREFIX + "L_level.layers.0.extra.weight"] = torch.zeros(2)
    elif change == "wrong-shape":
        sd[PREFIX + "q_head.bias"] = torch.zeros(3)
    elif change == "integer-tensor":
        sd[PREFIX + "q_head.bias"] = torch.zeros(2, dtype=torch.int64)
    if change == "pickle-as-safetensors":
        torch.save(sd, path)
    elif change == "truncated-safetensors":
        save_file(sd, str(path))
        path.write_bytes(path.read_bytes()[:-7])
    elif change == "truncated-pickle":
        torch.save(sd, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif change == "code-pickle":  # a pickle that would run code: refused by weights_only loading
        torch.save({"state": sd, "hook": shutil.rmtree}, path)
    else:
        torch.save(sd, path)


REFERENCE_FAULTS = [
    ("missing-key", "step_1", r"missing keys: lm_head\.weight"),
    ("extra-key", "step_1", r"unknown keys: L_level\.layers\.0\.extra\.weight"),
    ("wrong-shape", "step_1", r"q_head\.bias: expected \[2\], got \[3\]"),
    ("integer-tensor", "step_1", r"q_head\.bias: expected a floating-point tensor"),
    ("pickle-as-safetensors", "ckpt.safetensors", r"ckpt\.safetensors: not a readable safetensors file"),
    ("truncated-safetensors", "ckpt.safetensors", r"ckpt\.safetensors: not a readable safetensors file"),
    ("truncated-pickle", "step_1", r"step_1: cannot be read with torch\.load"),
    ("code-pickle", "step_1", r"step_1: cannot be read with torch\.load\(weights_only=True\)"),
]


@pytest.mark.parametrize("change, filename, message", REFERENCE_FAULTS, ids=[case[0] for case in REFERENCE_FAULTS])
def test_broken_reference_checkpoint_is_refused_and_writes_nothing(change, filename, message, tmp_path,
                                                                  capsys) -> None:
    import re

    checkpoint = tmp_path / filename
    _write_reference(checkpoint, change)
    out = tmp_path / "converted"
    assert main(["convert-reference", str(checkpoint), str(out), "--preset", "sudoku-mlp",
                 "--grid-shape", "4", "4"]) == 1
    error = capsys.readouterr().err
    assert re.search(message, error), error
    assert "Traceback" not in error
    assert sorted(p.name for p in tmp_path.iterdir()) == [filename]  # no output, no staging folder


def test_the_unbroken_reference_checkpoint_converts(tmp_path, capsys) -> None:
    """The baseline of the cases above: the same file without the fault converts and loads."""
    _write_reference(tmp_path / "step_1", "none")
    assert main(["convert-reference", str(tmp_path / "step_1"), str(tmp_path / "out"), "--preset", "sudoku-mlp",
                 "--grid-shape", "4", "4"]) == 0
    assert TRMForGridReasoning.from_pretrained(tmp_path / "out").config.seq_len == 16
