"""`trm convert-reference` with the run's `all_config.yaml` (issue 23 item 1).

pretrain.py of the reference code dumps its whole `PretrainConfig` (`yaml.dump(config.model_dump())`, so
keys sorted) as `all_config.yaml` beside the `step_N` files: training fields at the top level (`data_paths`,
`global_batch_size`, `ema`, ...) and an `arch:` section holding `name`, `loss` and the architecture keys of
`config/arch/trm.yaml` (H_cycles, L_cycles, H_layers, L_layers, hidden_size, num_heads, expansion,
puzzle_emb_ndim, puzzle_emb_len, pos_encodings, forward_dtype, mlp_t, no_ACT_continue, halt_max_steps,
halt_exploration_prob). The fixtures below write that structure for small random reference state dicts.
"""

from __future__ import annotations

import argparse
import json
import shutil

import pytest
import torch
import yaml
from reference_rederivation import (
    ReferenceFunction,
    ReferenceRun,
    random_reference_state_dict,
)
from test_convert import model_rollout
from transformers import AutoModel

from modeling_trm.commands import convert as convert_cli
from modeling_trm.convert import (
    REFERENCE_RUN_CONFIG,
    REFERENCE_RUN_CONFIG_COPY,
    REFERENCE_RUN_CONFIG_FIELD,
    ReferenceCheckpointError,
    convert_reference_checkpoint,
    infer_reference_config,
    load_reference_model,
)

ARCH_NAME = "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1"
# The flag-driven conversion of today, per mixer (as in test_convert.py).
FLAG_PATH = {
    "mlp_t": dict(preset="sudoku-mlp", overrides={}),
    "attention": dict(preset="sudoku-att", overrides={"num_heads": 2, "grid_shape": (4, 4)}),
}


def synthetic(mixer: str, **kwargs) -> dict[str, torch.Tensor]:
    settings = dict(hidden=64, vocab=6, seq_len=16, num_puzzle_ids=3, seed=1, layer_gain=0.3)
    settings.update(kwargs)
    return random_reference_state_dict(mixer, **settings)


def run_config(mixer: str, data_path: str = "data/sudoku-extreme-1k-aug-1000", **arch_changes) -> dict:
    """What pretrain.py dumps for a run whose shapes are those of `synthetic(mixer)`."""
    arch = {
        "name": ARCH_NAME,
        "loss": {"name": "losses@ACTLossHead", "loss_type": "stablemax_cross_entropy"},
        "H_cycles": 3, "L_cycles": 6, "H_layers": 0, "L_layers": 2,
        "hidden_size": 64, "num_heads": 2 if mixer == "attention" else 8, "expansion": 4,
        "puzzle_emb_ndim": 64, "puzzle_emb_len": 16,
        "pos_encodings": "rope" if mixer == "attention" else "none", "forward_dtype": "bfloat16",
        "mlp_t": mixer == "mlp_t", "no_ACT_continue": True,
        "halt_exploration_prob": 0.1, "halt_max_steps": 16,
    }
    arch.update(arch_changes)
    run = data_path.rsplit("/", 1)[-1].capitalize() + "-ACT-torch"
    return {
        "arch": arch, "beta1": 0.9, "beta2": 0.95, "checkpoint_every_eval": True,
        "checkpoint_path": f"checkpoints/{run}/pretrain_{mixer}", "data_paths": [data_path], "data_paths_test": [],
        "ema": True, "ema_rate": 0.999, "epochs": 50000, "eval_interval": 5000, "eval_save_outputs": [],
        "evaluators": [], "freeze_weights": False, "global_batch_size": 768, "load_checkpoint": None, "lr": 1e-4,
        "lr_min_ratio": 1.0, "lr_warmup_steps": 2000, "min_eval_interval": 0, "project_name": run,
        "puzzle_emb_lr": 1e-4, "puzzle_emb_weight_decay": 1.0, "run_name": f"pretrain_{mixer}", "seed": 0,
        "weight_decay": 1.0,
    }


def write_run(folder, sd, config: dict | None, step: int = 100):
    """A published run folder: `step_N` and, unless config is None, `all_config.yaml` beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(sd, folder / f"step_{step}")
    if config is not None:
        (folder / REFERENCE_RUN_CONFIG).write_text(yaml.dump(config))
    return folder / f"step_{step}"


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="trm")
    convert_cli.add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def rollout(model, steps: int = 4):
    g = torch.Generator().manual_seed(0)
    ids, pid = torch.randint(0, 6, (3, 16), generator=g), torch.randint(0, 3, (3,), generator=g)
    outputs, state = [], None
    with torch.no_grad():
        for _ in range(steps):
            out = model(ids, puzzle_identifiers=pid, state=state)
            state = out.state
            outputs.append((out.logits, out.q_halt_logits))
    return outputs


def config_without_run(folder) -> dict:
    config = json.loads((folder / "config.json").read_text())
    config.pop(REFERENCE_RUN_CONFIG_FIELD, None)
    return config


# ----------------------------------------------------------------------------- same result as the flag path


@pytest.mark.parametrize("mixer", ["mlp_t", "attention"])
def test_run_config_beside_the_checkpoint_replaces_preset_and_flags(mixer: str, tmp_path, capsys) -> None:
    sd = synthetic(mixer)
    config = run_config(mixer)
    checkpoint = write_run(tmp_path / "run", sd, config)
    bare = write_run(tmp_path / "bare", sd, None)

    flags = FLAG_PATH[mixer]
    expected = convert_reference_checkpoint(bare, tmp_path / "flags", flags["preset"], **flags["overrides"])
    # no --preset; the attention grid is not in any all_config.yaml (pretrain.py takes seq_len from the data)
    argv = ["convert-reference", str(checkpoint), str(tmp_path / "yaml")]
    if mixer == "attention":
        argv += ["--grid-shape", "4", "4"]
    assert cli(argv) == 0
    assert "architecture from the run config" in capsys.readouterr().out
    out = tmp_path / "yaml"

    assert config_without_run(out) == config_without_run(expected)
    # the source config is recorded: a verbatim copy and the parsed dict in config.json
    assert (out / REFERENCE_RUN_CONFIG_COPY).read_bytes() == (tmp_path / "run" / REFERENCE_RUN_CONFIG).read_bytes()
    assert json.loads((out / "config.json").read_text())[REFERENCE_RUN_CONFIG_FIELD] == config
    assert not (expected / REFERENCE_RUN_CONFIG_COPY).exists()
    assert REFERENCE_RUN_CONFIG_FIELD not in json.loads((expected / "config.json").read_text())

    ours, theirs = AutoModel.from_pretrained(out).eval(), AutoModel.from_pretrained(expected).eval()
    assert getattr(ours.config, REFERENCE_RUN_CONFIG_FIELD)["data_paths"] == config["data_paths"]
    for (a_logits, a_q), (b_logits, b_q) in zip(rollout(ours), rollout(theirs)):
        assert torch.equal(a_logits, b_logits) and torch.equal(a_q, b_q)


def test_every_architecture_field_comes_from_the_run_config(tmp_path) -> None:
    """Non-default T, n, N_sup, heads, RoPE base, exploration and loss: the converted model follows the YAML
    and computes the re-derived reference function run with those settings."""
    sd = synthetic("attention")
    config = run_config("attention", H_cycles=2, L_cycles=4, halt_max_steps=8, num_heads=4, rope_theta=1000.0,
                        halt_exploration_prob=0.2, rms_norm_eps=1e-5,
                        loss={"name": "losses@ACTLossHead", "loss_type": "softmax_cross_entropy"})
    checkpoint = write_run(tmp_path / "run", sd, config)
    model = load_reference_model(checkpoint, grid_shape=(4, 4))
    cfg = model.config
    assert (cfg.H_cycles, cfg.L_cycles, cfg.halt_max_steps, cfg.num_heads, cfg.rope_theta) == (2, 4, 8, 4, 1000.0)
    assert (cfg.halt_exploration_prob, cfg.loss_type, cfg.mixer, cfg.task) == (0.2, "softmax", "attention", "sudoku")
    assert (cfg.hidden_size, cfg.num_layers, cfg.expansion, cfg.puzzle_emb_len) == (64, 2, 4.0, 16)

    reference = ReferenceFunction(sd, ReferenceRun(num_heads=4, H_cycles=2, L_cycles=4, halt_max_steps=8,
                                                   rope_base=1000.0))
    g = torch.Generator().manual_seed(0)
    inputs = [(torch.randint(0, 6, (3, 16), generator=g), torch.randint(0, 3, (3,), generator=g))] * 3
    expected = reference.rollout(inputs)
    got = model_rollout(model, inputs)
    assert max((a[0] - b[0]).abs().max().item() for a, b in zip(got, expected)) <= 1e-5


def test_sequence_length_and_sizes_are_used_where_the_run_config_has_them(tmp_path) -> None:
    sd = synthetic("attention")
    config = run_config("attention", seq_len=16, vocab_size=6, num_puzzle_identifiers=3,
                        puzzle_emb_ndim="${.hidden_size}")  # an unresolved hydra interpolation
    model = load_reference_model(write_run(tmp_path / "run", sd, config))
    assert (model.config.seq_len, list(model.config.grid_shape)) == (16, [4, 4])
    # mlp_t: the sequence width of the checkpoint is checked against arch.seq_len
    sd = synthetic("mlp_t")
    config = run_config("mlp_t", seq_len=16)
    assert load_reference_model(write_run(tmp_path / "mlp", sd, config)).config.seq_len == 16


def test_the_task_is_read_off_data_paths_and_preset_still_chooses_it(tmp_path) -> None:
    sd = synthetic("attention", vocab=12)
    maze = write_run(tmp_path / "maze", synthetic("attention"), run_config("attention", "data/maze-30x30-hard-1k"))
    assert load_reference_model(maze, grid_shape=(4, 4)).config.task == "maze"
    unknown = write_run(tmp_path / "unknown", sd, run_config("attention", "data/my-puzzles"))
    with pytest.raises(ReferenceCheckpointError, match=r"data_paths \['data/my-puzzles'\] name no known task.*--preset"):
        load_reference_model(unknown, grid_shape=(4, 4))
    assert load_reference_model(unknown, "arc", grid_shape=(4, 4)).config.task == "arc"


def test_flags_override_the_run_config(tmp_path) -> None:
    checkpoint = write_run(tmp_path / "run", synthetic("mlp_t"), run_config("mlp_t"))
    assert cli(["convert-reference", str(checkpoint), str(tmp_path / "out"), "--L-cycles", "4",
                "--halt-max-steps", "8"]) == 0
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert (config["L_cycles"], config["halt_max_steps"], config["H_cycles"]) == (4, 8, 3)


# ----------------------------------------------------------------------------- disagreement with the shapes


@pytest.mark.parametrize("mixer,field,value,checkpoint_value", [
    ("attention", "hidden_size", 128, "64"),
    ("mlp_t", "L_layers", 3, "2"),
    ("attention", "mlp_t", True, "False"),
    ("mlp_t", "mlp_t", False, "True"),
    ("attention", "expansion", 8, "[512, 64]"),
    ("mlp_t", "expansion", 8, "[512, 64]"),
    ("attention", "pos_encodings", "learned", "rope or none"),
    ("attention", "puzzle_emb_ndim", 32, "64"),
    ("attention", "vocab_size", 11, "6"),
    ("attention", "num_puzzle_identifiers", 5, "3"),
    ("mlp_t", "seq_len", 81, "16"),
])
def test_a_run_config_that_disagrees_with_the_shapes_is_refused(mixer, field, value, checkpoint_value,
                                                                tmp_path, capsys) -> None:
    checkpoint = write_run(tmp_path / "run", synthetic(mixer), run_config(mixer, **{field: value}))
    argv = ["convert-reference", str(checkpoint), str(tmp_path / "out")]
    if mixer == "attention":
        argv += ["--grid-shape", "4", "4"]
    assert cli(argv) == 1
    error = capsys.readouterr().err
    assert f"arch.{field}={value!r}" in error and "disagrees with the checkpoint" in error, error
    assert checkpoint_value in error and REFERENCE_RUN_CONFIG in error, error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing written


# ----------------------------------------------------------------------------- which file, and bad files


def test_config_path_overrides_the_file_beside_the_checkpoint(tmp_path) -> None:
    sd = synthetic("mlp_t")
    checkpoint = write_run(tmp_path / "run", sd, run_config("mlp_t", hidden_size=128))  # wrong
    good = tmp_path / "elsewhere.yaml"
    good.write_text(yaml.dump(run_config("mlp_t", L_cycles=3)))
    assert cli(["convert-reference", str(checkpoint), str(tmp_path / "out"), "--config", str(good)]) == 0
    assert (tmp_path / "out" / REFERENCE_RUN_CONFIG_COPY).read_bytes() == good.read_bytes()
    assert json.loads((tmp_path / "out" / "config.json").read_text())["L_cycles"] == 3
    # --no-run-config ignores the (wrong) file beside it: preset and flags only, nothing recorded
    assert cli(["convert-reference", str(checkpoint), str(tmp_path / "bare"), "--preset", "sudoku-mlp",
                "--no-run-config"]) == 0
    assert not (tmp_path / "bare" / REFERENCE_RUN_CONFIG_COPY).exists()
    assert cli(["convert-reference", str(checkpoint), str(tmp_path / "x"), "--config", str(good),
                "--no-run-config"]) == 2


def test_a_bare_checkpoint_still_needs_a_preset(tmp_path, capsys) -> None:
    bare = write_run(tmp_path / "bare", synthetic("mlp_t"), None)
    assert cli(["convert-reference", str(bare), str(tmp_path / "out")]) == 1
    assert "--preset" in capsys.readouterr().err
    assert cli(["convert-reference", str(bare), str(tmp_path / "out"), "--preset", "sudoku-mlp"]) == 0
    with pytest.raises(ReferenceCheckpointError, match="no run config"):
        infer_reference_config(synthetic("mlp_t"))


@pytest.mark.parametrize("text,message", [
    (None, "no such run config file"),
    ("arch: [unclosed\n  H_cycles: 3", "not valid YAML"),
    ("- just\n- a list\n", "not a run config \\(holds a list"),
    ("lr: 0.0001\nseed: 0\n", "no 'arch:' section"),
    ("", "not a run config \\(holds a NoneType"),
    (yaml.dump({**run_config("mlp_t"), "arch": {**run_config("mlp_t")["arch"],
                                                 "name": "recursive_reasoning.hrm@HierarchicalReasoningModel_ACTV1"}}),
     "arch.name is 'recursive_reasoning.hrm@HierarchicalReasoningModel_ACTV1', not the reference TRM"),
    (yaml.dump(run_config("mlp_t", H_cycles="three")), "arch.H_cycles must be an integer, got 'three'"),
    (yaml.dump(run_config("mlp_t", expansion=True)), "arch.expansion must be a number, got True"),
])
def test_missing_or_malformed_run_configs_are_refused(text, message, tmp_path, capsys) -> None:
    checkpoint = write_run(tmp_path / "run", synthetic("mlp_t"), None)
    path = tmp_path / "cfg.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ReferenceCheckpointError, match=message):
        load_reference_model(checkpoint, config_path=path)
    # the same file beside the checkpoint: the CLI reports it and writes nothing
    if text is not None:
        shutil.copyfile(path, tmp_path / "run" / REFERENCE_RUN_CONFIG)
        assert cli(["convert-reference", str(checkpoint), str(tmp_path / "out"), "--preset", "sudoku-mlp"]) == 1
        err = capsys.readouterr().err
        assert REFERENCE_RUN_CONFIG in err and "error:" in err
        assert not (tmp_path / "out").exists()


def test_cli_literal_matches_the_library() -> None:
    assert convert_cli.RUN_CONFIG == REFERENCE_RUN_CONFIG
