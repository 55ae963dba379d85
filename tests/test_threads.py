"""`modeling_trm.threads`: CPU quota and affinity, the rule that picks torch's thread count, and the commands
that apply and record it."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from tiny_models import tiny_model

from modeling_trm import threads
from modeling_trm.threads import (
    ThreadChoice,
    apply_thread_choice,
    automatic_threads,
    available_cpus,
    choose_threads,
    cpu_quota,
    current_threads,
    env_threads,
    quota_threads,
)


@pytest.fixture(autouse=True)
def clean_thread_state(monkeypatch):
    """No thread variables from the environment, no earlier choice; torch's count restored afterwards."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "_applied", None)
    monkeypatch.setattr(threads, "_observed_default", None)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def no_proc_cgroup(tmp_path):
    return tmp_path / "no-such-proc-cgroup"


def write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def fake_machine(monkeypatch, cpus: int, physical: int | None = None, quota: float | None = None,
                 busy: float | None = None) -> list[int]:
    """Affinity of `cpus` CPUs, `physical` cores, a cgroup quota and a load sample; returns the list of sample
    calls (a test can check that no sample was taken)."""
    samples: list[int] = []
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(cpus)))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(threads, "physical_cores", lambda cpus_=None: physical if physical is not None else cpus)
    monkeypatch.setattr(threads, "cpu_quota", lambda *args, **kwargs: quota)

    def sample(cpus_=None, seconds=0.2):
        samples.append(len(cpus_ or ()))
        return busy

    monkeypatch.setattr(threads, "others_busy_cpus", sample)
    return samples


# ----------------------------------------------------------------------------- cgroup quota


@pytest.mark.parametrize(("text", "expected"), [
    ("max 100000\n", None),
    ("max\n", None),
    ("150000 100000\n", 1.5),
    ("200000 100000\n", 2.0),
    ("50000 100000\n", 0.5),
    ("400000 200000\n", 2.0),
    ("300000\n", 3.0),  # period left out: the kernel's default 100 ms
    ("garbage here\n", None),
    ("", None),
])
def test_cgroup_v2_cpu_max(tmp_path, no_proc_cgroup, text, expected) -> None:
    write(tmp_path / "cpu.max", text)
    assert cpu_quota(tmp_path, no_proc_cgroup) == expected


@pytest.mark.parametrize(("quota", "period", "expected"), [
    ("-1", "100000", None),
    ("250000", "100000", 2.5),
    ("100000", "100000", 1.0),
    ("50000", "100000", 0.5),
    ("150000", None, None),  # no period file: unreadable, treated as no limit
])
def test_cgroup_v1_cfs_files(tmp_path, no_proc_cgroup, quota, period, expected) -> None:
    folder = tmp_path / "cpu,cpuacct"
    write(folder / "cpu.cfs_quota_us", quota + "\n")
    if period is not None:
        write(folder / "cpu.cfs_period_us", period + "\n")
    assert cpu_quota(tmp_path, no_proc_cgroup) == expected


def test_missing_files_mean_no_quota(tmp_path, no_proc_cgroup) -> None:
    assert cpu_quota(tmp_path, no_proc_cgroup) is None
    assert cpu_quota(tmp_path / "not-even-a-folder", no_proc_cgroup) is None


def test_quota_follows_the_process_cgroup_and_the_tightest_ancestor_binds(tmp_path) -> None:
    proc = write(tmp_path / "proc-self-cgroup", "0::/system.slice/job.scope\n")
    write(tmp_path / "cg" / "system.slice" / "job.scope" / "cpu.max", "300000 100000\n")
    assert cpu_quota(tmp_path / "cg", proc) == 3.0
    write(tmp_path / "cg" / "system.slice" / "cpu.max", "120000 100000\n")  # the parent's limit is tighter
    assert cpu_quota(tmp_path / "cg", proc) == pytest.approx(1.2)
    v1 = write(tmp_path / "proc-v1", "5:cpuacct,cpu:/docker/abc\n4:memory:/docker/abc\n")
    write(tmp_path / "v1" / "cpuacct,cpu" / "docker" / "abc" / "cpu.cfs_quota_us", "200000")
    write(tmp_path / "v1" / "cpuacct,cpu" / "docker" / "abc" / "cpu.cfs_period_us", "100000")
    assert cpu_quota(tmp_path / "v1", v1) == 2.0
    escaped = write(tmp_path / "proc-escaped", "0::/../../elsewhere\n")  # outside the namespace: not followed
    write(tmp_path / "ns" / "elsewhere" / "cpu.max", "100000 100000")
    assert cpu_quota(tmp_path / "ns", escaped) is None


@pytest.mark.parametrize(("quota", "expected"), [(1.5, 1), (0.5, 1), (0.01, 1), (2.0, 2), (2.99, 2), (16.0, 16)])
def test_fractional_quotas_round_down_to_at_least_one_thread(quota, expected) -> None:
    assert quota_threads(quota) == expected


# ----------------------------------------------------------------------------- affinity and the automatic count


def test_available_cpus_is_the_smaller_of_affinity_and_quota(monkeypatch, tmp_path, no_proc_cgroup) -> None:
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    assert available_cpus(tmp_path, no_proc_cgroup) == 8
    write(tmp_path / "cpu.max", "150000 100000")
    assert available_cpus(tmp_path, no_proc_cgroup) == 1
    write(tmp_path / "cpu.max", "400000 100000")
    assert available_cpus(tmp_path, no_proc_cgroup) == 4
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {5, 6})
    assert available_cpus(tmp_path, no_proc_cgroup) == 2


def test_automatic_count_takes_the_smallest_limit(monkeypatch) -> None:
    fake_machine(monkeypatch, cpus=8, busy=0.0)
    choice = automatic_threads()
    assert (choice.threads, choice.source) == (8, "automatic")
    assert choice.reason.startswith("automatic: 8 of 64 CPUs usable")  # affinity 8 of the machine's 64
    fake_machine(monkeypatch, cpus=8, quota=2.5, busy=0.0)
    choice = automatic_threads()
    assert choice.threads == 2 and "cgroup quota 2.5 CPUs" in choice.reason
    fake_machine(monkeypatch, cpus=8, physical=4, busy=0.0)  # SMT: 8 CPUs on 4 cores, torch's default is 4
    choice = automatic_threads()
    assert choice.threads == 4 and "4 physical cores" in choice.reason


@pytest.mark.parametrize(("busy", "expected"), [(0.0, 8), (0.4, 8), (3.0, 5), (6.6, 1), (6.4, 2), (7.9, 1),
                                                (12.0, 1), (None, 8)])
def test_cpus_busy_with_other_processes_lower_the_count(monkeypatch, busy, expected) -> None:
    samples = fake_machine(monkeypatch, cpus=8, busy=busy)
    choice = automatic_threads()
    assert choice.threads == expected and samples == [8]
    assert ("busy with other processes" in choice.reason) == (busy is not None)


def test_no_load_sample_when_one_thread_is_all_there_is(monkeypatch) -> None:
    samples = fake_machine(monkeypatch, cpus=1, busy=0.0)
    assert automatic_threads().threads == 1 and samples == []
    samples = fake_machine(monkeypatch, cpus=8, quota=0.5, busy=0.0)
    assert automatic_threads().threads == 1 and samples == []


def test_processes_of_one_launch_share_the_count(monkeypatch) -> None:
    samples = fake_machine(monkeypatch, cpus=8, busy=7.0)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    choice = automatic_threads()
    assert choice.threads == 2 and samples == [] and "shared by 4 processes" in choice.reason
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert automatic_threads().threads == 1


def test_real_sample_of_this_machine_is_in_range() -> None:
    busy = threads.others_busy_cpus(threads.affinity_cpus(), seconds=0.05)
    assert busy is None or 0.0 <= busy <= len(threads.affinity_cpus() or range(64))
    assert 1 <= available_cpus() <= (threads.os.cpu_count() or 1)


# ----------------------------------------------------------------------------- explicit settings win


def automatic_sentinel(monkeypatch) -> None:
    monkeypatch.setattr(threads, "automatic_threads", lambda *a, **k: ThreadChoice(1, "automatic: sentinel"))


def test_an_explicit_count_wins_over_everything(monkeypatch) -> None:
    automatic_sentinel(monkeypatch)
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    torch.set_num_threads(3)  # as if set by the user
    choice = choose_threads(2)
    assert (choice.threads, choice.reason, choice.source) == (2, "--threads option", "option")
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="--threads must be positive"):
            choose_threads(bad)


@pytest.mark.parametrize(("omp", "mkl", "expected"), [
    ("3", None, ("OMP_NUM_THREADS", 3)),
    ("3,2", None, ("OMP_NUM_THREADS", 3)),  # nested levels: the first
    (None, "2", ("MKL_NUM_THREADS", 2)),
    ("3", "2", ("MKL_NUM_THREADS", 2)),  # torch reads MKL_NUM_THREADS over OMP_NUM_THREADS
    ("0", None, None),
    ("many", None, None),
])
def test_thread_variables_are_read_as_torch_reads_them(monkeypatch, omp, mkl, expected) -> None:
    for name, value in (("OMP_NUM_THREADS", omp), ("MKL_NUM_THREADS", mkl)):
        if value is not None:
            monkeypatch.setenv(name, value)
    assert env_threads() == expected


def test_omp_num_threads_wins_over_the_automatic_count(monkeypatch) -> None:
    automatic_sentinel(monkeypatch)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    torch.set_num_threads(3)  # what torch starts with under OMP_NUM_THREADS=3: not a user's call
    choice = choose_threads()
    assert (choice.threads, choice.reason, choice.source) == (3, "OMP_NUM_THREADS=3", "environment")


def test_a_prior_torch_set_num_threads_wins(monkeypatch) -> None:
    """The rule: torch's count differs from torch's default (here 4 physical cores) -> the user set it."""
    automatic_sentinel(monkeypatch)
    fake_machine(monkeypatch, cpus=4)
    torch.set_num_threads(3)
    choice = choose_threads()
    assert (choice.threads, choice.source) == (3, "torch") and "torch.set_num_threads" in choice.reason
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's call is later than the environment it started with
    assert choose_threads().threads == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    torch.set_num_threads(4)  # equal to the default: indistinguishable from no call, so automatic
    assert choose_threads() == ThreadChoice(1, "automatic: sentinel")


def test_a_fresh_torch_import_is_known_to_be_at_its_default(tmp_path) -> None:
    """In a new process whose first torch import happens here, torch's count is its default even when the
    physical-core estimate disagrees (here it is made to say 99), so the automatic rule applies."""
    code = textwrap.dedent("""
        import json, sys
        from modeling_trm import threads
        assert "torch" not in sys.modules
        threads.physical_cores = lambda cpus=None: 99
        threads.automatic_threads = lambda *a, **k: threads.ThreadChoice(1, "automatic: sentinel")
        choice = threads.apply_thread_choice(announce=False)
        import torch
        print(json.dumps([choice.threads, choice.source, torch.get_num_threads(), threads._observed_default]))
    """)
    env = {key: value for key, value in os.environ.items()
           if key not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "LOCAL_WORLD_SIZE")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    count, source, now, observed = json.loads(result.stdout.strip().splitlines()[-1])
    assert (count, source, now) == (1, "automatic", 1) and observed >= 1


# ----------------------------------------------------------------------------- applying and recording


def test_apply_sets_torch_prints_once_and_is_recorded(monkeypatch, capsys) -> None:
    fake_machine(monkeypatch, cpus=8, busy=5.0)  # 3 idle CPUs
    torch.set_num_threads(8)  # torch's default on this fake machine
    choice = apply_thread_choice()
    assert choice.threads == 3 and torch.get_num_threads() == 3
    assert capsys.readouterr().out == f"[threads] 3 ({choice.reason})\n"
    fake_machine(monkeypatch, cpus=8, busy=0.0)  # a second call keeps the first choice, silently
    assert apply_thread_choice() is choice and capsys.readouterr().out == ""
    assert current_threads().record() == {"count": 3, "reason": choice.reason}
    assert apply_thread_choice(2).threads == 2 and torch.get_num_threads() == 2
    assert capsys.readouterr().out == "[threads] 2 (--threads option)\n"
    torch.set_num_threads(5)  # a user's call after ours is recorded as the user's
    assert current_threads().record() == {"count": 5, "reason": "set with torch.set_num_threads"}


def command_args(argv: list[str]) -> argparse.Namespace:
    from modeling_trm.commands import build_parser

    return build_parser().parse_known_args(argv)[0]


@pytest.mark.parametrize("argv", [["train", "--recipe", "demo", "--output-dir", "x"], ["demo"],
                                  ["eval", "--model", "m", "--dataset", "d"], ["solve", "m"], ["ablate", "--out", "x"],
                                  ["app", "m"]])
def test_every_computing_command_takes_threads(argv) -> None:
    assert command_args([*argv, "--threads", "3"]).threads == 3
    assert command_args(argv).threads is None


def test_demo_and_ablate_apply_the_choice_before_they_run(monkeypatch, capsys, tmp_path) -> None:
    from modeling_trm.commands import ablate, main
    from modeling_trm.experiments import demo

    seen = []
    monkeypatch.setattr(demo, "run_demo", lambda *a, **k: seen.append(("demo", torch.get_num_threads())))
    assert main(["demo", "--threads", "2", "--output-dir", str(tmp_path / "d")]) == 0
    assert seen == [("demo", 2)] and "[threads] 2 (--threads option)" in capsys.readouterr().out

    def fake_ablation(out, recipe, variants, **kwargs):
        seen.append(("ablate", torch.get_num_threads(), kwargs["jobs"], kwargs["threads_per_run"]))

    monkeypatch.setattr(ablate, "run_ablation", fake_ablation)
    assert main(["ablate", "--out", str(tmp_path / "a"), "--threads", "1", "--jobs", "2"]) == 0
    assert seen[-1] == ("ablate", 1, 2, 1)  # an explicit count is per run
    monkeypatch.setattr(ablate, "apply_thread_choice", lambda explicit: ThreadChoice(4, "automatic: fake"))
    monkeypatch.setattr(threads, "available_cpus", lambda *a, **k: 4)
    assert main(["ablate", "--out", str(tmp_path / "a")]) == 0
    assert seen[-1][2:] == (4, 1)  # default jobs from the CPUs available; the automatic 4 split over them
    assert main(["ablate", "--out", str(tmp_path / "a"), "--jobs", "2"]) == 0
    assert seen[-1][2:] == (2, 2)
    assert main(["ablate", "--out", str(tmp_path / "a"), "--jobs", "0"]) == 2
    assert "--jobs must be positive" in capsys.readouterr().err


def test_trm_solve_reports_on_stderr_and_keeps_stdout_for_answers(tmp_path, capsys) -> None:
    from modeling_trm.commands import main

    tiny_model().save_pretrained(tmp_path / "model")
    puzzles = write(tmp_path / "puzzles.txt", "1.3.....2..4...1\n")
    assert main(["solve", str(tmp_path / "model"), str(puzzles), "--threads", "1"]) == 0
    captured = capsys.readouterr()
    assert "[threads] 1 (--threads option)" in captured.err.splitlines()
    assert len([line for line in captured.out.splitlines() if line]) == 1 and "[threads]" not in captured.out
    assert main(["solve", str(tmp_path / "model"), str(puzzles), "--threads", "0"]) == 2
    assert "--threads must be positive, got 0" in capsys.readouterr().err


def test_trm_eval_records_the_choice_in_the_protocol(tmp_path, capsys) -> None:
    from modeling_trm.commands import main
    from modeling_trm.data.generate_sudoku import generate_sudoku_splits
    from modeling_trm.data.metadata import save_trm_dataset
    from modeling_trm.data.puzzle_csv import write_puzzle_csv
    from modeling_trm.data.sudoku import build_sudoku_dataset

    for split, rows in generate_sudoku_splits(4, 2, 4, seed=0).items():
        write_puzzle_csv(tmp_path / f"{split}.csv", rows)
    dataset, metadata = build_sudoku_dataset(tmp_path)
    data = save_trm_dataset(dataset, metadata, tmp_path / "data")
    tiny_model(num_puzzle_identifiers=1).save_pretrained(tmp_path / "model")
    out = tmp_path / "results.json"
    assert main(["eval", "--model", str(tmp_path / "model"), "--dataset", str(data), "--out", str(out),
                 "--no-progress", "--threads", "1"]) == 0
    protocol = json.loads(out.read_text())["protocol"]
    assert protocol["threads"] == {"count": 1, "reason": "--threads option"} and protocol["torch_threads"] == 1
    assert "[threads] 1 (--threads option)" in capsys.readouterr().out
    assert main(["eval", "--model", str(tmp_path / "model"), "--dataset", str(data), "--out", str(out),
                 "--threads", "0"]) == 2
    assert "trm eval: error: --threads must be positive, got 0" in capsys.readouterr().err


def test_trm_train_records_the_choice_in_train_results(tmp_path, capsys) -> None:
    from test_train_cli import tiny_dataset_folder

    from modeling_trm.commands import main
    from modeling_trm.recipes_io import load_recipe

    recipe = load_recipe("sudoku-extreme-mlp")
    recipe["model"]["overrides"] = {"hidden_size": 16, "H_cycles": 1, "L_cycles": 1, "halt_max_steps": 2,
                                    "puzzle_emb_len": 2}
    recipe_path = write(tmp_path / "recipe.json", json.dumps(recipe))
    out = tmp_path / "run"
    assert main(["train", "--recipe", str(recipe_path), "--dataset", tiny_dataset_folder(tmp_path / "data"),
                 "--output-dir", str(out), "--threads", "1", "--global-batch-size", "8", "--max-steps", "1",
                 "--warmup_steps", "0", "--auto-bf16", "false", "--disable-tqdm", "true", "--use-cpu"]) == 0
    results = json.loads((out / "model" / "train_results.json").read_text())
    assert results["threads"] == {"count": 1, "reason": "--threads option"} and results["torch_num_threads"] == 1
    assert "[threads] 1 (--threads option)" in capsys.readouterr().out


def test_bench_applies_the_choice(monkeypatch, capsys) -> None:
    from modeling_trm.benchmarks import run as bench

    monkeypatch.setattr(bench, "run_suite", lambda plan: {"records": [], "threads_seen": torch.get_num_threads()})
    written = []
    monkeypatch.setattr(bench, "write_json", lambda path, payload: written.append(payload))
    assert bench.main(["--quick", "--threads", "1", "--json", "x.json"]) == 0
    assert written[0]["threads_seen"] == 1 and written[0]["threads"] == {"count": 1, "reason": "--threads option"}
    with pytest.raises(ValueError, match="--threads must be >= 1"):
        bench.main(["--threads", "0"])


def test_step_timer_time_bound_keeps_at_least_one_step() -> None:
    """`benchmarks.contention --quick` bounds each count by time; the timer still returns a measured step."""
    from modeling_trm.benchmarks.step_time import time_config_steps
    from tiny_models import tiny_config

    assert len(time_config_steps(tiny_config(), 2, "fp32", repeats=3, warmup=0, max_seconds=0.0)) == 1
    assert len(time_config_steps(tiny_config(), 2, "fp32", repeats=3, warmup=1)) == 3
