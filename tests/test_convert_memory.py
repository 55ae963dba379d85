"""Lean conversion (issue 23 item 3): the converted model holds the checkpoint's own tensors.

The measured ceilings (ARC-AGI-1 size: 876,406 x 512 fp32 puzzle table) come from
`python -m benchmarks.convert_memory`; these tests pin the mechanism that keeps them: a memory-mapped
read, no random model allocated first, no copy of the weights, separate shards for the puzzle table.
"""

from __future__ import annotations

import json

import torch
from test_convert_yaml import run_config, synthetic, write_run

from modeling_trm import TRMForGridReasoning, convert
from modeling_trm.convert import (
    _model_holding,  # the no-copy construction under test
    convert_reference_checkpoint,
    convert_reference_state_dict,
    infer_reference_config,
    load_reference_model,
    load_reference_state_dict,
)


def test_the_model_holds_the_checkpoint_tensors_without_copying(tmp_path) -> None:
    state = load_reference_state_dict(write_run(tmp_path / "run", synthetic("attention"), run_config("attention")))
    config = infer_reference_config(state, "sudoku-att", num_heads=2, grid_shape=(4, 4))
    weights = convert_reference_state_dict(state, config)
    model = _model_holding(config, weights)
    table = model.puzzle_embedding.weight
    assert table.data_ptr() == weights["puzzle_embedding.weight"].data_ptr()
    assert table.data_ptr() == state["_orig_mod.model.inner.puzzle_emb.weights"].data_ptr()
    assert not any(p.is_meta for p in model.parameters()) and not any(b.is_meta for b in model.buffers())
    # the RoPE tables, which no state dict holds, equal those of a model built the ordinary way
    fresh = TRMForGridReasoning(config)
    for (name, ours), (_, expected) in zip(model.named_buffers(), fresh.named_buffers()):
        assert torch.equal(ours, expected), name


def test_a_puzzle_table_over_the_shard_size_gets_its_own_shard_and_loads_back(tmp_path, monkeypatch) -> None:
    # 1,000 x 64 fp32 = 256 kB of table against a 200 kB shard size: the ARC case (1.8 GB against 1 GB), scaled down
    monkeypatch.setattr(convert, "CONVERTED_SHARD_SIZE", "200KB")
    checkpoint = write_run(tmp_path / "run", synthetic("mlp_t", num_puzzle_ids=1000), run_config("mlp_t"))
    out = convert_reference_checkpoint(checkpoint, tmp_path / "out")
    index = json.loads((out / "model.safetensors.index.json").read_text())["weight_map"]
    table_shard = index["puzzle_embedding.weight"]
    assert [name for name, shard in index.items() if shard == table_shard] == ["puzzle_embedding.weight"]
    assert len(set(index.values())) >= 2
    model = load_reference_model(checkpoint)
    reloaded = TRMForGridReasoning.from_pretrained(out)
    assert reloaded.state_dict().keys() == model.state_dict().keys()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, reloaded.state_dict()[name]), name
