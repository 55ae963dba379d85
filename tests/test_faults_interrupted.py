"""Fault injection, interrupted data builds and evaluations (issue 15, scenario 5).

`trm data build` and `trm eval` run as real processes (forked from a warm interpreter, `warm_trm`) and
are killed with SIGKILL mid-write: at each point of `modeling_trm.data.atomic.KILL_POINTS` (the documented
`TRM_FAULT_INJECT=kill:POINT` hook, so the kill lands exactly there), and at seeded delays after the
staging folder appears (polled, as a user's Ctrl-C or an OOM kill would land anywhere). After every kill
the output path holds nothing, the previous complete result, or the complete new one; re-running gives the
bytes of an uninterrupted run with the same seed (for results files: every field except the four timing
fields).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import warm_trm
from fault_runs import process_env
from tiny_models import tiny_model

from modeling_trm.commands import main
from modeling_trm.data.atomic import KILL_POINTS
from modeling_trm.data.generate_sudoku import generate_sudoku_splits
from modeling_trm.data.puzzle_csv import write_puzzle_csv

pytestmark = pytest.mark.faults

TIMING_FIELDS = ("created", "wall_time_s", "solve_time_s", "examples_per_s")
BUILD = ["data", "build", "sudoku-extreme", "--num-aug", "3", "--no-progress"]
KILLED = -signal.SIGKILL


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes: what "the same bytes" compares."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def comparable(results_path: Path) -> dict:
    results = json.loads(results_path.read_text())
    return {key: value for key, value in results.items() if key not in TIMING_FIELDS}


def trm_process(argv: list[str], kill_at: str | None = None) -> warm_trm.WarmProcess:
    """`trm ARGV` as its own process, forked from the warm interpreter (`warm_trm`); its stderr is kept."""
    return warm_trm.start(["trm", *argv], process_env(f"kill:{kill_at}" if kill_at is not None else None), None,
                          warm_trm.output_file("stderr"))


def kill_when_staging_appears(process: subprocess.Popen, parent: Path, pattern: str, delay: float) -> bool:
    """SIGKILL `process` `delay` seconds after a file matching `pattern` appears in `parent`; True if the
    kill landed while the staging entry still existed (mid-write), False if the process finished first."""
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if any(parent.glob(pattern)):
            time.sleep(delay)
            staged = any(parent.glob(pattern))
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
            return staged and process.returncode == KILLED
        time.sleep(0.0005)
    process.wait(timeout=60)
    return False


@pytest.fixture(scope="module")
def csv_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("csv")
    for split, rows in generate_sudoku_splits(4, 40, 8, seed=0).items():
        write_puzzle_csv(folder / f"{split}.csv", rows)
    return folder


@pytest.fixture(scope="module")
def reference(csv_dir, tmp_path_factory) -> dict[str, dict[str, bytes]]:
    """Uninterrupted builds with seed 1 (the result every rerun must reproduce) and seed 2 (a 'previous' one)."""
    root = tmp_path_factory.mktemp("reference")
    built = {}
    for seed in (1, 2):
        out = root / f"seed{seed}"
        assert main([*BUILD, "--csv-dir", str(csv_dir), "--out", str(out), "--seed", str(seed)]) == 0
        built[seed] = snapshot(out)
    return built


def test_two_uninterrupted_builds_write_identical_bytes(csv_dir, reference, tmp_path) -> None:
    """Regression: `state.json` held a random fingerprint and `trm_metadata.json` the build's seconds."""
    out = tmp_path / "again"
    assert main([*BUILD, "--csv-dir", str(csv_dir), "--out", str(out), "--seed", "1"]) == 0
    assert snapshot(out) == reference[1]
    assert {"trm_metadata.json", "train/state.json", "train/data-00000-of-00001.arrow"} <= set(reference[1])
    assert reference[2] != reference[1]  # the seed matters, so equal bytes are not a coincidence


def _check_after_kill_and_rerun(out: Path, csv_dir: Path, reference, previous: bool) -> None:
    allowed = [reference[1]] + ([reference[2]] if previous else [])
    assert not out.exists() or snapshot(out) in allowed  # nothing, the previous result, or the new one
    argv = [*BUILD, "--csv-dir", str(csv_dir), "--out", str(out), "--seed", "1"]
    assert main(argv + (["--overwrite"] if out.exists() else [])) == 0
    assert snapshot(out) == reference[1]


@pytest.mark.parametrize("point, previous", [
    ("temp-file-written", False), ("dataset-written", True), ("staging-complete", True), ("old-moved-aside", True),
])
def test_data_build_killed_at_each_write_point(point, previous, csv_dir, reference, tmp_path) -> None:
    assert point in KILL_POINTS
    out = tmp_path / "data"
    argv = [*BUILD, "--csv-dir", str(csv_dir), "--out", str(out), "--seed", "1"]
    if previous:  # a complete earlier build with another seed, replaced with --overwrite
        assert main([*BUILD, "--csv-dir", str(csv_dir), "--out", str(out), "--seed", "2"]) == 0
        argv.append("--overwrite")
    process = trm_process(argv, kill_at=point)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == KILLED, stderr  # the kill landed at the point (it was reached)
    if point == "old-moved-aside":
        assert not out.exists()  # the one moment with neither: the old result is aside, the new not yet in
    elif previous:
        assert snapshot(out) == reference[2]  # the previous complete result, untouched
    else:
        assert not out.exists()
    _check_after_kill_and_rerun(out, csv_dir, reference, previous)


@pytest.mark.parametrize("seed", [0, 1])
def test_data_build_killed_at_a_seeded_moment_after_staging_starts(seed, csv_dir, reference, tmp_path) -> None:
    out = tmp_path / "data"
    previous = seed % 2 == 1
    argv = [*BUILD, "--csv-dir", str(csv_dir), "--out", str(out), "--seed", "1"]
    if previous:
        assert main([*BUILD, "--csv-dir", str(csv_dir), "--out", str(out), "--seed", "2"]) == 0
        argv.append("--overwrite")
    delay = random.Random(seed).uniform(0.0, 0.02)
    kill_when_staging_appears(trm_process(argv), tmp_path, ".data.*.tmp", delay)
    _check_after_kill_and_rerun(out, csv_dir, reference, previous)


# ----------------------------------------------------------------------------- trm eval


@pytest.fixture(scope="module")
def eval_inputs(reference, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval")
    model = root / "model"
    tiny_model(num_puzzle_identifiers=1).save_pretrained(model)
    dataset = root / "data"
    dataset.mkdir()
    for name, data in reference[1].items():
        (dataset / name).parent.mkdir(parents=True, exist_ok=True)
        (dataset / name).write_bytes(data)
    uninterrupted = root / "uninterrupted.json"
    assert main(["eval", *_eval_args(model, dataset, uninterrupted)]) == 0
    return {"model": model, "dataset": dataset, "uninterrupted": uninterrupted}


def _eval_args(model: Path, dataset: Path, out: Path) -> list[str]:
    # one thread named on the command line: the results record the count and where it came from, the same in
    # this process and a `trm` process
    return ["--model", str(model), "--dataset", str(dataset), "--out", str(out), "--no-progress", "--max-steps", "2",
            "--dtype", "fp32", "--threads", "1"]


@pytest.mark.parametrize("how", ["temp-file-written", "seeded-moment"])
def test_eval_killed_mid_write_keeps_the_previous_results(how, eval_inputs, tmp_path) -> None:
    out = tmp_path / "results.json"
    out.write_text('{"previous": "a complete earlier results file"}\n')
    previous = out.read_bytes()
    argv = ["eval", *_eval_args(eval_inputs["model"], eval_inputs["dataset"], out), "--overwrite"]
    if how == "temp-file-written":
        process = trm_process(argv, kill_at=how)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == KILLED, stderr
        assert out.read_bytes() == previous
    else:  # anywhere in the run: loading, solving or writing
        process = trm_process(argv)
        try:
            # the forked run takes ~0.8 s here (loading, solving, writing); before it was forked it spent its first
            # ~9 s importing, so a delay of 1-8 s always landed there
            process.wait(timeout=random.Random(5).uniform(0.0, 1.0))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
        assert out.read_bytes() == previous or comparable(out) == comparable(eval_inputs["uninterrupted"])
    assert main(argv) == 0  # rerun
    assert comparable(out) == comparable(eval_inputs["uninterrupted"])


def test_rerun_removes_the_hidden_staging_leftovers_of_a_killed_build(csv_dir, tmp_path) -> None:
    out = tmp_path / "data"
    argv = [*BUILD, "--csv-dir", str(csv_dir), "--out", str(out), "--seed", "1"]
    process = trm_process(argv, kill_at="staging-complete")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == KILLED, stderr
    assert list(tmp_path.glob(".data.*.tmp")) and not out.exists()  # the killed build's complete staging folder
    assert main(argv) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # the rerun cleared it


def test_staging_of_a_live_writer_is_kept(tmp_path) -> None:
    from modeling_trm.data.atomic import remove_stale_staging

    live = tmp_path / f".data.{os.getpid()}.abc123.tmp"
    dead = tmp_path / ".data.999999999.abc123.tmp"  # above any pid_max: no such process
    unrelated = tmp_path / ".data.notes.tmp"
    for folder in (live, dead, unrelated):
        folder.mkdir()
    assert remove_stale_staging(tmp_path / "data") == [dead]
    assert live.is_dir() and unrelated.is_dir() and not dead.exists()
