"""`trm convert-reference REPO_ID --file PATH_IN_REPO OUT` against the local test Hub (issue 23 item 2).

Published reference checkpoints sit in Hub repos as `FOLDER/step_N` with the run's `all_config.yaml`
beside them (e.g. `arcprize/trm_arc_prize_verification`: `arc_v1/step_518071`). The clients run in
subprocesses pointed at `tests/hub_server.py` (see hub_fixtures.py); this process stays offline.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from hub_fixtures import run_hub_client, running_hub_server
from safetensors.torch import load_file
from test_convert_yaml import run_config, synthetic, write_run

from modeling_trm.convert import (
    REFERENCE_RUN_CONFIG,
    REFERENCE_RUN_CONFIG_COPY,
    convert_reference_checkpoint,
)

REPO = "org/trm-reference"

_CONVERT = """
import contextlib, io, json, os
from modeling_trm.commands import main

def convert(*argv):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(["convert-reference", *argv])
    return {"code": code, "stderr": err.getvalue(), "stdout": out.getvalue()}
"""


def weights(folder) -> dict[str, torch.Tensor]:
    merged = {}
    for path in sorted(folder.glob("*.safetensors")):
        merged.update(load_file(str(path)))
    return merged


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A Hub repo with a run folder `arc_v1/` (step_100 + all_config.yaml) in two commits: the second
    changes halt_max_steps 16 -> 8 in the run config; and a bare checkpoint `bare/step_7` (no config)."""
    base = tmp_path_factory.mktemp("convert-hub")
    checkpoint = write_run(base / "run", synthetic("mlp_t"), run_config("mlp_t"))
    write_run(base / "bare", synthetic("mlp_t"), None, step=7)
    changed = run_config("mlp_t", halt_max_steps=8)
    (base / "changed.yaml").write_text(yaml.dump(changed))
    with running_hub_server(base / "server") as endpoint:
        home = base / "hf_home"
        commits = run_hub_client(f"""
from huggingface_hub import HfApi
api = HfApi()
api.create_repo({REPO!r})
first = api.upload_folder(folder_path={str(base / "run")!r}, path_in_repo="arc_v1", repo_id={REPO!r}).oid
api.upload_folder(folder_path={str(base / "bare")!r}, path_in_repo="bare", repo_id={REPO!r})
second = api.upload_file(path_or_fileobj={str(base / "changed.yaml")!r}, path_in_repo="arc_v1/{REFERENCE_RUN_CONFIG}",
                         repo_id={REPO!r}).oid
emit([first, second])
""", endpoint, home)
        yield dict(base=base, endpoint=endpoint, home=home, checkpoint=checkpoint, first=commits[0])


def client(published, code: str, offline: bool = False):
    prefix = "import os\nos.environ['HF_HUB_OFFLINE'] = '1'\n" if offline else ""
    return run_hub_client(prefix + _CONVERT + code, published["endpoint"], published["home"])


def test_a_hub_checkpoint_converts_with_the_run_config_of_its_folder(published, tmp_path) -> None:
    out = tmp_path / "latest"
    older = tmp_path / "first-commit"
    results = client(published, f"""
emit([convert({REPO!r}, "--file", "arc_v1/step_100", {str(out)!r}),
      convert({REPO!r}, "--file", "arc_v1/step_100", "--revision", {published['first']!r}, {str(older)!r})])
""")
    assert [r["code"] for r in results] == [0, 0], results
    assert f"fetched {REPO}/arc_v1/step_100 and {REFERENCE_RUN_CONFIG}" in results[0]["stdout"]
    # main: the run config of the second commit; --revision: the first one's
    assert json.loads((out / "config.json").read_text())["halt_max_steps"] == 8
    assert json.loads((older / "config.json").read_text())["halt_max_steps"] == 16
    assert yaml.safe_load((out / REFERENCE_RUN_CONFIG_COPY).read_text())["arch"]["halt_max_steps"] == 8

    # the same tensors as converting the local file
    local = convert_reference_checkpoint(published["checkpoint"], tmp_path / "local")
    ours, expected = weights(older), weights(local)
    assert ours.keys() == expected.keys()
    for name in expected:
        assert torch.equal(ours[name], expected[name]), name


def test_hub_errors_name_the_repo_and_file_and_the_cache_serves_offline(published, tmp_path) -> None:
    cached = tmp_path / "cached"
    online = client(published, f"""
emit([convert({REPO!r}, "--file", "arc_v1/step_999", {str(tmp_path / "a")!r}),
      convert("org/no-such-repo", "--file", "arc_v1/step_100", {str(tmp_path / "b")!r}),
      convert({REPO!r}, "--file", "bare/step_7", {str(tmp_path / "c")!r}),
      convert({REPO!r}, "--file", "bare/step_7", "--preset", "sudoku-mlp", {str(tmp_path / "d")!r}),
      convert({REPO!r}, "--file", "arc_v1/step_100", {str(cached)!r})])
""")
    missing_file, missing_repo, bare, bare_with_preset, warm = online
    assert missing_file["code"] == 1 and f"{REPO}: no file 'arc_v1/step_999' in the repo" in missing_file["stderr"]
    assert missing_repo["code"] == 1 and "org/no-such-repo: no such model repo" in missing_repo["stderr"]
    # no all_config.yaml in bare/: the preset is needed, as for a bare local file
    assert bare["code"] == 1 and "preset" in bare["stderr"]
    assert bare_with_preset["code"] == 0 and warm["code"] == 0
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()

    offline = client(published, f"""
emit([convert({REPO!r}, "--file", "arc_v1/step_100", {str(tmp_path / "offline")!r}),
      convert({REPO!r}, "--file", "arc_v1/step_5", {str(tmp_path / "never")!r})])
""", offline=True)
    assert offline[0]["code"] == 0, offline[0]
    assert (tmp_path / "offline" / "config.json").read_bytes() == (cached / "config.json").read_bytes()
    assert offline[1]["code"] == 1 and "not in the local cache" in offline[1]["stderr"]


def test_hub_options_need_file_and_a_repo_id_without_file_is_explained(tmp_path, capsys) -> None:
    from modeling_trm.commands import main

    assert main(["convert-reference", "org/name", str(tmp_path / "out"), "--revision", "v1"]) == 2
    assert "--revision need --file" in capsys.readouterr().err
    assert main(["convert-reference", "org/name", str(tmp_path / "out")]) == 1
    assert "for a Hub repo, name the checkpoint in it with --file PATH_IN_REPO" in capsys.readouterr().err
