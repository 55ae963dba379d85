"""Reference checkpoint conversion: names, shapes, errors, files, CLI, and numerical parity.

Parity is checked against `reference_rederivation.py`, an independent functional re-derivation of the
reference forward pass from TRM_FACTS.md that reads the reference-layout state dict directly.

Why the synthetic checkpoints use `layer_gain=0.3`: with unit-gain random layer weights the 42 block
applications per supervision step form a chaotic map, and the re-derivation run in fp32 and in fp64
already disagrees by O(1) after 3 steps (mlp_t) - no two fp32 implementations can agree to 1e-5 there.
At gain 0.3 the recursion is contractive like a trained one, fp32 rounding stays ~1e-6, and
`test_parity_check_detects_layout_mistakes` shows that every layout mistake still moves the logits by
more than 0.05, so the check keeps its teeth.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModel

from modeling_trm import TRMForGridReasoning
from modeling_trm.commands.convert import add_subcommands
from modeling_trm.convert import (
    ReferenceCheckpointError,
    convert_reference_checkpoint,
    convert_reference_state_dict,
    export_reference_state_dict,
    infer_reference_config,
    load_reference_model,
    load_reference_state_dict,
    save_reference_checkpoint,
    strip_reference_prefixes,
)
from reference_rederivation import ReferenceFunction, ReferenceRun, random_reference_state_dict
from tiny_models import tiny_model

PREFIX = "_orig_mod.model.inner."
# hidden 64, 4x4 grid + 16-token prefix (L = 32), vocab 6 (4x4 Sudoku), 3 puzzle ids, 2 layers.
VARIANTS = {
    "mlp_t": dict(preset="sudoku-mlp", overrides={}, run=ReferenceRun(pos_encodings="none")),
    "attention": dict(preset="sudoku-att", overrides={"num_heads": 2, "grid_shape": (4, 4)},
                      run=ReferenceRun(num_heads=2)),
}


def synthetic(mixer: str, **kwargs) -> dict[str, torch.Tensor]:
    settings = dict(hidden=64, vocab=6, seq_len=16, num_puzzle_ids=3, seed=1, layer_gain=0.3)
    settings.update(kwargs)
    return random_reference_state_dict(mixer, **settings)


def converted_model(mixer: str, sd: dict[str, torch.Tensor] | None = None, **overrides) -> TRMForGridReasoning:
    variant = VARIANTS[mixer]
    return load_reference_model(sd if sd is not None else synthetic(mixer), variant["preset"],
                                **{**variant["overrides"], **overrides})


def model_rollout(model: TRMForGridReasoning, inputs) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Evaluation-mode supervision steps with the carried state, one forward per step."""
    outputs, state = [], None
    with torch.no_grad():
        for ids, pid in inputs:
            out = model(ids, puzzle_identifiers=pid, state=state)
            state = out.state
            outputs.append((out.logits, out.q_halt_logits))
    return outputs


def max_differences(a, b) -> tuple[float, float]:
    logits = max((x[0] - y[0]).abs().max().item() for x, y in zip(a, b))
    q_halt = max((x[1] - y[1]).abs().max().item() for x, y in zip(a, b))
    return logits, q_halt


def batch(seed: int, rows: int = 3, vocab: int = 6, seq_len: int = 16, puzzle_ids: int = 3):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (rows, seq_len), generator=g), torch.randint(0, puzzle_ids, (rows,), generator=g)


# ----------------------------------------------------------------------------- conversion and round trip


@pytest.mark.parametrize("mixer", ["mlp_t", "attention"])
def test_convert_load_and_export_round_trip(mixer: str) -> None:
    sd = synthetic(mixer)
    model = converted_model(mixer, sd)
    cfg = model.config
    assert (cfg.mixer, cfg.hidden_size, cfg.vocab_size, cfg.num_layers, cfg.num_puzzle_identifiers) == (mixer, 64, 6, 2, 3)
    assert (cfg.seq_len, list(cfg.grid_shape), cfg.puzzle_emb_len) == (16, [4, 4], 16)
    assert cfg.pos_encodings == ("none" if mixer == "mlp_t" else "rope")
    assert cfg.id_to_symbol == ["<pad>", ".", "1", "2", "3", "4"]  # 4x4 Sudoku symbols from vocab 6
    assert (cfg.H_cycles, cfg.L_cycles, cfg.halt_max_steps) == (3, 6, 16)  # from the preset
    # bf16 H_init/L_init -> fp32 y_init/z_init with the same values
    assert model.y_init.dtype == torch.float32 and torch.equal(model.y_init.data, sd[PREFIX + "H_init"].float())
    assert torch.equal(model.z_init.data, sd[PREFIX + "L_init"].float())
    assert torch.equal(model.puzzle_embedding.weight.data, sd[PREFIX + "puzzle_emb.weights"])

    exported = export_reference_state_dict(model)
    assert sorted(exported) == sorted(sd)
    for key, tensor in sd.items():
        assert exported[key].dtype == tensor.dtype, key
        assert torch.equal(exported[key], tensor), key
    assert exported[PREFIX + "H_init"].dtype == torch.bfloat16


def test_learned_positions_are_detected_and_round_trip() -> None:
    sd = synthetic("attention", learned_positions=True)
    model = converted_model("attention", sd)
    assert model.config.pos_encodings == "learned"
    assert torch.equal(model.embed_positions.weight.data, sd[PREFIX + "embed_pos.embedding_weight"])
    exported = export_reference_state_dict(model)
    assert all(torch.equal(exported[key], tensor) for key, tensor in sd.items())
    with pytest.raises(ReferenceCheckpointError, match="pos_encodings='rope'.*embed_pos.embedding_weight"):
        converted_model("attention", sd, pos_encodings="rope")


@pytest.mark.parametrize("prefix", ["_orig_mod.model.inner.", "model.inner.", ""])
def test_every_wrapper_prefix_converts_to_the_same_weights(prefix: str) -> None:
    plain = synthetic("mlp_t", prefix="")
    expected = convert_reference_state_dict(plain, infer_reference_config(plain, "sudoku-mlp"))
    sd = synthetic("mlp_t", prefix=prefix)
    assert set(strip_reference_prefixes(sd)) == set(plain)
    got = convert_reference_state_dict(sd, infer_reference_config(sd, "sudoku-mlp"))
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[key], expected[key]) for key in expected)


def test_export_of_a_model_trained_here_converts_back() -> None:
    model = tiny_model(seed=3, mixer="attention", pos_encodings="rope").eval()
    exported = export_reference_state_dict(model, prefix="model.inner.")
    assert all(key.startswith("model.inner.") for key in exported)
    back = load_reference_model(exported, "sudoku-att", num_heads=4, grid_shape=(4, 4), puzzle_emb_len=2,
                                expansion=2.0, H_cycles=2, L_cycles=2)
    for name, tensor in model.state_dict().items():
        if name in ("y_init", "z_init"):  # fp32 here, bf16 in the reference layout
            assert torch.equal(back.state_dict()[name], tensor.to(torch.bfloat16).float()), name
        else:
            assert torch.equal(back.state_dict()[name], tensor), name


def test_transient_reference_buffers_are_dropped(caplog) -> None:
    sd = synthetic("attention")
    sd[PREFIX + "puzzle_emb.local_weights"] = torch.zeros(4, 64)
    sd[PREFIX + "puzzle_emb.local_ids"] = torch.zeros(4, dtype=torch.int32)
    sd[PREFIX + "L_level.layers.0.self_attn.rotary_emb.cos_cached"] = torch.zeros(32, 32)
    with caplog.at_level(logging.INFO, logger="modeling_trm.convert"):
        model = converted_model("attention", sd)
    assert "puzzle_emb.local_ids" in caplog.text and "cos_cached" in caplog.text
    assert model.config.num_puzzle_identifiers == 3


# ----------------------------------------------------------------------------- refusals


def test_missing_keys_are_all_named() -> None:
    sd = synthetic("mlp_t")
    del sd[PREFIX + "L_level.layers.1.mlp.down_proj.weight"]
    del sd[PREFIX + "q_head.bias"]
    with pytest.raises(ReferenceCheckpointError) as error:
        converted_model("mlp_t", sd)
    assert "missing keys: L_level.layers.1.mlp.down_proj.weight, q_head.bias" in str(error.value)


def test_unknown_keys_are_all_named() -> None:
    sd = synthetic("attention")
    sd[PREFIX + "L_level.layers.0.self_attn.q_norm.weight"] = torch.ones(32)
    sd[PREFIX + "H_level.layers.0.mlp.down_proj.weight"] = torch.ones(2, 2)
    with pytest.raises(ReferenceCheckpointError) as error:
        converted_model("attention", sd)
    assert "unknown keys: H_level.layers.0.mlp.down_proj.weight, L_level.layers.0.self_attn.q_norm.weight" in str(error.value)


def test_wrong_shapes_name_key_expected_and_actual() -> None:
    sd = synthetic("attention")
    sd[PREFIX + "L_level.layers.1.self_attn.o_proj.weight"] = torch.zeros(64, 63)
    with pytest.raises(ReferenceCheckpointError, match=r"L_level\.layers\.1\.self_attn\.o_proj\.weight: "
                                                       r"expected \[64, 64\], got \[64, 63\]"):
        converted_model("attention", sd)
    # an mlp_t layer whose sequence width disagrees with layer 0
    sd = synthetic("mlp_t")
    sd[PREFIX + "L_level.layers.1.mlp_t.down_proj.weight"] = torch.zeros(33, 256)
    with pytest.raises(ReferenceCheckpointError, match=r"L_level\.layers\.1\.mlp_t\.down_proj\.weight: "
                                                       r"expected \[32, 256\], got \[33, 256\]"):
        converted_model("mlp_t", sd)


def test_inconsistent_checkpoints_and_overrides_are_refused() -> None:
    with pytest.raises(ReferenceCheckpointError, match="hidden_size=128 contradicts.*64"):
        converted_model("mlp_t", hidden_size=128)
    with pytest.raises(ReferenceCheckpointError, match="grid_shape 5x5 has 25 cells.*32 = 16 prefix \\+ 16"):
        converted_model("mlp_t", grid_shape=(5, 5))
    mixed = {**synthetic("mlp_t"), **{k: v for k, v in synthetic("attention").items() if "self_attn" in k}}
    with pytest.raises(ReferenceCheckpointError, match="both 'self_attn' and 'mlp_t'"):
        converted_model("mlp_t", mixed)
    with pytest.raises(ReferenceCheckpointError, match="6 token ids but preset 'arc' names 12 symbols"):
        load_reference_model(synthetic("attention"), "arc", num_heads=2)
    ours = tiny_model().state_dict()
    with pytest.raises(ReferenceCheckpointError, match="this project's names"):
        load_reference_model(ours, "sudoku-att")
    with pytest.raises(ReferenceCheckpointError, match="unknown preset"):
        load_reference_model(synthetic("mlp_t"), "sudoku")


def test_files_that_are_not_state_dicts_are_refused(tmp_path) -> None:
    sd = synthetic("mlp_t")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ReferenceCheckpointError, match="list.pt: not a state dict"):
        load_reference_state_dict(tmp_path / "list.pt")
    torch.save({**sd, "step": 7}, tmp_path / "mixed.pt")
    with pytest.raises(ReferenceCheckpointError, match="not a state dict \\(entry 'step' holds a int"):
        load_reference_state_dict(tmp_path / "mixed.pt")
    (tmp_path / "garbage.pth").write_bytes(b"not a zip or pickle")
    with pytest.raises(ReferenceCheckpointError, match="garbage.pth: cannot be read"):
        load_reference_state_dict(tmp_path / "garbage.pth")
    with pytest.raises(ReferenceCheckpointError, match="no such file"):
        load_reference_state_dict(tmp_path / "absent.pt")
    # a training wrapper around the state dict is unwrapped; extension-less and safetensors files read
    torch.save({"model": sd, "step": 7}, tmp_path / "step_7")
    assert load_reference_state_dict(tmp_path / "step_7").keys() == sd.keys()
    save_file(sd, str(tmp_path / "ckpt.safetensors"))
    loaded = load_reference_state_dict(tmp_path / "ckpt.safetensors")
    assert all(torch.equal(loaded[key], sd[key]) for key in sd)


# ----------------------------------------------------------------------------- output folder and CLI


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="trm")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_writes_a_folder_that_automodel_loads(tmp_path, capsys) -> None:
    sd = synthetic("attention")
    torch.save(sd, tmp_path / "step_100")
    out = tmp_path / "converted"
    rc = _cli(["convert-reference", str(tmp_path / "step_100"), str(out), "--preset", "sudoku-att",
               "--num-heads", "2", "--grid-shape", "4", "4", "--L-cycles", "4", "--halt-max-steps", "8"])
    assert rc == 0 and "wrote" in capsys.readouterr().out
    assert {"config.json", "model.safetensors", "modeling_trm.py", "configuration_trm.py"} <= set(os.listdir(out))
    config = json.loads((out / "config.json").read_text())
    assert config["L_cycles"] == 4 and config["halt_max_steps"] == 8 and "auto_map" in config
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left

    loaded = AutoModel.from_pretrained(out).eval()
    direct = converted_model("attention", sd, L_cycles=4, halt_max_steps=8)
    for name, tensor in direct.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    inputs = [batch(0)] * 2
    assert max_differences(model_rollout(loaded, inputs), model_rollout(direct, inputs)) == (0.0, 0.0)

    # an existing non-empty folder is refused, then replaced with --overwrite
    assert _cli(["convert-reference", str(tmp_path / "step_100"), str(out), "--preset", "sudoku-att",
                 "--num-heads", "2", "--grid-shape", "4", "4"]) == 1
    assert "not empty" in capsys.readouterr().err
    assert _cli(["convert-reference", str(tmp_path / "step_100"), str(out), "--preset", "sudoku-att",
                 "--num-heads", "2", "--grid-shape", "4", "4", "--overwrite"]) == 0
    assert json.loads((out / "config.json").read_text())["L_cycles"] == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted", "step_100"]

    # and back: export-reference writes the reference layout again
    assert _cli(["export-reference", str(out), str(tmp_path / "exported.pt")]) == 0
    exported = torch.load(tmp_path / "exported.pt", weights_only=True)
    assert sorted(exported) == sorted(sd) and all(torch.equal(exported[k], sd[k]) for k in sd)


def test_a_failed_conversion_writes_nothing(tmp_path, monkeypatch) -> None:
    torch.save(synthetic("mlp_t"), tmp_path / "ckpt.pt")
    bad = synthetic("mlp_t")
    del bad[PREFIX + "lm_head.weight"]
    torch.save(bad, tmp_path / "bad.pt")
    assert _cli(["convert-reference", str(tmp_path / "bad.pt"), str(tmp_path / "out"), "--preset", "sudoku-mlp"]) == 1

    def broken_save(self, *args, **kwargs):
        (args[0] / "partial.bin").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(TRMForGridReasoning, "save_pretrained", broken_save)
    with pytest.raises(OSError, match="disk full"):
        convert_reference_checkpoint(tmp_path / "ckpt.pt", tmp_path / "out", "sudoku-mlp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt", "ckpt.pt"]


def test_save_reference_checkpoint_is_loadable_by_the_converter(tmp_path) -> None:
    sd = synthetic("mlp_t")
    path = save_reference_checkpoint(converted_model("mlp_t", sd), tmp_path / "sub" / "step_1")
    assert all(torch.equal(v, sd[k]) for k, v in load_reference_state_dict(path).items())


# ----------------------------------------------------------------------------- numerical parity


@pytest.mark.parametrize("mixer", ["mlp_t", "attention"])
def test_parity_with_the_rederivation_for_16_supervision_steps(mixer: str) -> None:
    sd = synthetic(mixer)
    model = converted_model(mixer, sd)
    reference = ReferenceFunction(sd, VARIANTS[mixer]["run"])
    inputs = [batch(0)] * 16
    expected = reference.rollout(inputs)
    got = model_rollout(model, inputs)
    # nothing trivially vanishes: the answers move across steps, q_halt and the logits are far from 0
    assert (expected[0][0] - expected[-1][0]).abs().max() > 1e-2
    assert expected[0][1].abs().min() > 1e-3 and expected[0][0].abs().max() > 0.5
    logits_diff, q_diff = max_differences(got, expected)
    assert logits_diff <= 1e-5 and q_diff <= 1e-5, (logits_diff, q_diff)


def test_parity_of_the_evaluation_carry_across_halts_and_new_samples() -> None:
    """halt_max_steps = 5 over 12 steps: slots restart from H_init/L_init on the new batch at steps 6 and 11."""
    sd = synthetic("attention")
    model = converted_model("attention", sd, halt_max_steps=5)
    reference = ReferenceFunction(sd, ReferenceRun(num_heads=2, halt_max_steps=5))
    inputs = [batch(step) for step in range(12)]
    logits_diff, q_diff = max_differences(model_rollout(model, inputs), reference.rollout(inputs))
    assert logits_diff <= 1e-5 and q_diff <= 1e-5, (logits_diff, q_diff)
    # and the restart really took the new inputs: step 6 equals a fresh run on batch 5
    fresh = reference.rollout([inputs[5]])[0]
    assert torch.allclose(model_rollout(model, inputs[:6])[5][0], fresh[0], atol=1e-5)


def _swapped_swiglu(h, gate_up, down):
    inner = gate_up.shape[0] // 2
    up, gate = h @ gate_up[:inner].T, h @ gate_up[inner:].T
    return (gate * torch.sigmoid(gate) * up) @ down.T


def _interleaved_rope(reference):
    def rope(t):
        d = t.shape[-1]
        freq = 1.0 / (reference.run.rope_base ** (2 * torch.arange(d // 2, dtype=torch.float32) / d))
        angle = torch.arange(t.shape[-2], dtype=torch.float32)[:, None] * freq
        a, b = t[..., 0::2], t[..., 1::2]
        return torch.stack((a * angle.cos() - b * angle.sin(), b * angle.cos() + a * angle.sin()), -1).flatten(-2)
    return rope


def _unscaled_prefix(reference):
    embed = reference.embed

    def unscaled(ids, pid):
        x = embed(ids, pid).clone()
        x[:, :16] /= math.sqrt(reference.D)
        return x
    return unscaled


@pytest.mark.parametrize("mixer,mistake", [
    ("mlp_t", "gate_up_swapped"), ("mlp_t", "prefix_unscaled"), ("attention", "rope_interleaved"),
    ("attention", "rope_base_1000"),
])
def test_parity_check_detects_layout_mistakes(mixer: str, mistake: str) -> None:
    """The 1e-5 agreement is not luck: a re-derivation with one §2/§7 detail wrong is far off."""
    sd = synthetic(mixer)
    run = VARIANTS[mixer]["run"]
    if mistake == "rope_base_1000":
        run = ReferenceRun(num_heads=2, rope_base=1000.0)
    reference = ReferenceFunction(sd, run)
    if mistake == "gate_up_swapped":
        reference.swiglu = _swapped_swiglu
    elif mistake == "prefix_unscaled":
        reference.embed = _unscaled_prefix(reference)
    elif mistake == "rope_interleaved":
        reference.rope = _interleaved_rope(reference)
    inputs = [batch(0)] * 2
    logits_diff, _ = max_differences(model_rollout(converted_model(mixer, sd), inputs), reference.rollout(inputs))
    assert logits_diff > 0.05, logits_diff


def test_parity_at_the_real_sudoku_mlp_size() -> None:
    """D 512, L 97, T 3, n 6: the published Sudoku-MLP shapes (5,028,866 parameters), 2 steps, batch 1."""
    sd = random_reference_state_dict("mlp_t", hidden=512, vocab=11, seq_len=81, num_puzzle_ids=1, seed=3,
                                     layer_gain=0.3)
    model = load_reference_model(sd, "sudoku-mlp")
    assert model.num_reference_parameters() == 5_028_866
    assert list(model.config.grid_shape) == [9, 9]
    ids = torch.randint(0, 11, (1, 81), generator=torch.Generator().manual_seed(0))
    inputs = [(ids, torch.zeros(1, dtype=torch.long))] * 2
    expected = ReferenceFunction(sd, ReferenceRun(pos_encodings="none")).rollout(inputs)
    logits_diff, q_diff = max_differences(model_rollout(model, inputs), expected)
    assert logits_diff <= 1e-5 and q_diff <= 1e-5, (logits_diff, q_diff)
