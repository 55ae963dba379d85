"""Dataset metadata: config overrides, TRMConfig application, save/load round trip, clear errors."""

import json

import numpy as np
import pytest
from datasets import DatasetDict, Value

from modeling_trm.configuration_trm import SUDOKU_SYMBOLS, TRMConfig
from modeling_trm.data.metadata import METADATA_FILENAME, DatasetMetadata, load_trm_dataset, save_trm_dataset
from modeling_trm.data.tables import dataset_from_columns, grid_features


def sudoku4_metadata() -> DatasetMetadata:
    return DatasetMetadata(
        task="sudoku", id_to_symbol=["<pad>", ".", "1", "2", "3", "4"], seq_len=16, grid_shape=(4, 4),
        pad_token_id=0, blank_token_id=1, source={"kind": "test"}, build_settings={"seed": 3},
    )


def tiny_dataset(seq_len: int = 16, rows: int = 3) -> DatasetDict:
    features = grid_features(seq_len, {"group": Value("int32")})

    def split(offset: int):
        ids = (np.arange(rows * seq_len).reshape(rows, seq_len) + offset) % 6
        return dataset_from_columns(
            {"input_ids": ids, "labels": ids, "puzzle_identifiers": np.zeros(rows), "group": np.arange(rows)}, features
        )

    return DatasetDict({"train": split(0), "test": split(1)})


def test_config_overrides_and_apply_to_set_every_dataset_field():
    metadata = sudoku4_metadata()
    assert metadata.config_overrides() == {
        "task": "sudoku", "vocab_size": 6, "seq_len": 16, "grid_shape": [4, 4], "num_puzzle_identifiers": 1,
        "id_to_symbol": ["<pad>", ".", "1", "2", "3", "4"], "pad_token_id": 0, "blank_token_id": 1,
    }
    config = TRMConfig.from_preset("sudoku-mlp")
    assert config.vocab_size == 11 and config.id_to_symbol == SUDOKU_SYMBOLS
    returned = metadata.apply_to(config)
    assert returned is config
    assert (config.vocab_size, config.seq_len, config.grid_shape) == (6, 16, [4, 4])
    assert config.id_to_symbol[-1] == "4" and config.blank_token_id == 1
    assert config.mixer == "mlp_t"  # the model's own choices are untouched
    # The same fields also build a config directly.
    assert TRMConfig(**metadata.config_overrides()).seq_len == 16


def test_apply_to_restores_the_config_when_the_result_is_invalid():
    metadata = sudoku4_metadata()
    metadata.seq_len = 15  # corrupted after construction: no longer rows*cols
    config = TRMConfig()
    with pytest.raises(ValueError, match="seq_len"):
        metadata.apply_to(config)
    assert (config.vocab_size, config.seq_len, config.grid_shape) == (11, 81, [9, 9])


def test_metadata_rejects_inconsistent_fields():
    with pytest.raises(ValueError, match="seq_len"):
        DatasetMetadata(task="maze", id_to_symbol=list("abc"), seq_len=10, grid_shape=(3, 3))
    with pytest.raises(ValueError, match="blank_token_id"):
        DatasetMetadata(task="maze", id_to_symbol=list("abc"), seq_len=9, grid_shape=(3, 3), blank_token_id=3)


def test_save_and_load_round_trip(tmp_path):
    dataset, metadata = tiny_dataset(), sudoku4_metadata()
    out = save_trm_dataset(dataset, metadata, tmp_path / "ds")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no staging folder left behind
    loaded, loaded_metadata = load_trm_dataset(out)
    assert loaded_metadata == metadata
    assert loaded_metadata.num_rows == {"train": 3, "test": 3}
    assert loaded["test"]["input_ids"] == dataset["test"]["input_ids"]
    assert loaded["train"].features == dataset["train"].features
    stored = json.loads((out / METADATA_FILENAME).read_text())
    assert stored["grid_shape"] == [4, 4] and stored["build_settings"] == {"seed": 3}


def test_save_refuses_to_overwrite_unless_asked(tmp_path):
    dataset, metadata = tiny_dataset(), sudoku4_metadata()
    save_trm_dataset(dataset, metadata, tmp_path / "ds")
    with pytest.raises(FileExistsError, match="already exists"):
        save_trm_dataset(dataset, metadata, tmp_path / "ds")
    metadata.build_settings = {"seed": 4}
    save_trm_dataset(dataset, metadata, tmp_path / "ds", overwrite=True)
    assert load_trm_dataset(tmp_path / "ds")[1].build_settings == {"seed": 4}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_save_rejects_a_dataset_that_disagrees_with_its_metadata(tmp_path):
    with pytest.raises(ValueError, match="81"):
        save_trm_dataset(tiny_dataset(seq_len=16), DatasetMetadata(
            task="sudoku", id_to_symbol=SUDOKU_SYMBOLS, seq_len=81, grid_shape=(9, 9)), tmp_path / "ds")
    with pytest.raises(ValueError, match="'test' split"):
        save_trm_dataset(DatasetDict({"train": tiny_dataset()["train"]}), sudoku4_metadata(), tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_trm_dataset(tmp_path / "missing")
    tiny_dataset().save_to_disk(str(tmp_path / "plain"))
    with pytest.raises(FileNotFoundError, match="trm_metadata.json"):
        load_trm_dataset(tmp_path / "plain")
    (tmp_path / "plain" / METADATA_FILENAME).write_text("{not json")
    with pytest.raises(ValueError, match="malformed JSON"):
        load_trm_dataset(tmp_path / "plain")
    (tmp_path / "plain" / METADATA_FILENAME).write_text(json.dumps({"task": "sudoku"}))
    with pytest.raises(ValueError, match="trm_metadata.json"):
        load_trm_dataset(tmp_path / "plain")
