"""SIGKILL `trm train` at seeded points (between steps and inside checkpoint writing), then `--resume`:
the final checkpoint (raw and EMA weights, optimizer, LR scheduler, RNG states, carry, data position,
trainer state) equals the uninterrupted run's bit for bit, and a partial checkpoint is never resumed.

Kills land either through the fault-injection hook (`modeling_trm.faults`, exact points) or from this
process at seeded moments (polling for a half-written checkpoint folder, or a seeded delay).
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from fault_runs import MAX_STEPS, SAVE_STEPS, assert_same_checkpoint, build_dataset, run, start, train_command, \
    write_recipe
from modeling_trm.faults import FAULT_POINTS
from modeling_trm.training.trainer import COMPLETE_MARKER, checkpoint_folders, last_complete_checkpoint

pytestmark = pytest.mark.faults
KILLED = -signal.SIGKILL


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, Path]:
    """The recipe, its dataset, and one uninterrupted run of MAX_STEPS steps (forked like the runs it is compared
    with; test_faults_seed checks that a forked run equals a fresh `trm train` process bit for bit)."""
    root = tmp_path_factory.mktemp("reference")
    recipe = write_recipe(root / "recipe.json")
    dataset = build_dataset(recipe, root / "dataset")
    result = run(train_command(recipe, root / "run", dataset=dataset), warm=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return {"recipe": recipe, "dataset": dataset, "run": root / "run"}


def resume_command(reference: dict[str, Path], out: Path, *extra: str) -> list[str]:
    """`--resume` when a complete checkpoint exists, else a fresh start (what a user would run next)."""
    resume = ["--resume"] if last_complete_checkpoint(str(out)) else []
    return train_command(reference["recipe"], out, *resume, *extra, dataset=reference["dataset"])


def complete_step(out: Path) -> int:
    path = last_complete_checkpoint(str(out))
    return 0 if path is None else int(path.rsplit("-", 1)[1])


def assert_marked_folders_are_whole(reference: dict[str, Path], out: Path) -> None:
    """Every folder `--resume` may choose (it has the marker) holds every file of a finished checkpoint."""
    whole = {p.name for p in (reference["run"] / f"checkpoint-{MAX_STEPS}").iterdir()}
    for _, path, complete in checkpoint_folders(str(out)):
        if complete:
            assert {p.name for p in Path(path).iterdir()} == whole, path


def assert_matches_reference(reference: dict[str, Path], out: Path) -> None:
    assert_same_checkpoint(reference["run"] / f"checkpoint-{MAX_STEPS}", out / f"checkpoint-{MAX_STEPS}")
    assert_same_checkpoint(reference["run"] / "model", out / "model")  # the final EMA model
    # leftovers of killed saves were replaced or rotated away: the same folders as the uninterrupted run
    assert [Path(p).name for _, p, _ in checkpoint_folders(str(out))] == \
        [Path(p).name for _, p, _ in checkpoint_folders(str(reference["run"]))]


def test_sigkill_at_seeded_steps_and_save_stages_then_resume_exactly(reference, tmp_path) -> None:
    # seed 6 draws save-carry:4 (nothing complete yet), save-raw:8, step:5, save-start:12, save-marker:12
    rng = random.Random(6)
    out = tmp_path / "run"
    for _ in range(5):
        resumed_from = complete_step(out)
        point = rng.choice(FAULT_POINTS)
        reachable = range(resumed_from + 1, MAX_STEPS + 1)
        step = rng.choice([s for s in reachable if point == "step" or s % SAVE_STEPS == 0])
        killed = run(resume_command(reference, out), fault=f"kill:{point}:{step}", warm=True)
        assert killed.returncode == KILLED, killed.stderr[-3000:]
        saved = step if point == "save-marker" else (step - 1) // SAVE_STEPS * SAVE_STEPS
        assert complete_step(out) == saved, (point, step)
        assert_marked_folders_are_whole(reference, out)
    final = run(resume_command(reference, out), warm=True)
    assert final.returncode == 0, final.stderr[-3000:]
    assert_matches_reference(reference, out)


def test_resume_refuses_partial_checkpoints_and_never_loses_the_last_complete_one(reference, tmp_path) -> None:
    out = tmp_path / "run"
    # killed after the Trainer's files of the first checkpoint, before its carry and marker
    killed = run(resume_command(reference, out, "--save-total-limit", "1"), fault="kill:save-raw:4", warm=True)
    assert killed.returncode == KILLED
    refused = run(train_command(reference["recipe"], out, "--resume", dataset=reference["dataset"]), warm=True)
    assert refused.returncode == 2
    assert "no complete checkpoint" in refused.stderr and "checkpoint-4" in refused.stderr \
        and COMPLETE_MARKER in refused.stderr, refused.stderr[-2000:]
    # with one checkpoint kept, the Trainer deleted checkpoint-4 before checkpoint-8 was complete:
    # a kill there left nothing to resume from. Rotation now waits for the completion marker.
    killed = run(resume_command(reference, out, "--save-total-limit", "1"), fault="kill:save-carry:8", warm=True)
    assert killed.returncode == KILLED
    assert complete_step(out) == 4
    final = run(resume_command(reference, out, "--save-total-limit", "1"), warm=True)
    assert final.returncode == 0, final.stderr[-3000:]
    assert_same_checkpoint(reference["run"] / f"checkpoint-{MAX_STEPS}", out / f"checkpoint-{MAX_STEPS}")
    assert [Path(p).name for _, p, _ in checkpoint_folders(str(out))] == [f"checkpoint-{MAX_STEPS}"]


def kill_when(process, condition, timeout_s: float = 240.0) -> bool:
    """SIGKILL `process` as soon as `condition()` holds; False if it exited first."""
    deadline = time.monotonic() + timeout_s
    while process.poll() is None and time.monotonic() < deadline:
        if condition():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.001)
    assert process.poll() is not None, "the training process hung"
    return False


def test_sigkill_from_outside_mid_save_and_at_seeded_delays_then_resume_exactly(reference, tmp_path) -> None:
    rng = random.Random(5)
    out = tmp_path / "run"
    kills = 0
    for attempt in range(3):
        before = complete_step(out)
        process = start(resume_command(reference, out), tmp_path / f"log{attempt}.txt", warm=True)
        if attempt < 2:  # mid-save: the moment a new checkpoint folder exists without its marker
            def condition() -> bool:
                return any(not done and step > before for step, _, done in checkpoint_folders(str(out)))
        else:  # a seeded delay after the run's first new checkpoint: lands between or inside steps/saves
            delay, seen = rng.uniform(0.0, 0.3), []

            def condition() -> bool:
                if not seen and complete_step(out) > before:
                    seen.append(time.monotonic())
                return bool(seen) and time.monotonic() - seen[0] >= delay
        if kill_when(process, condition):
            kills += 1
            assert process.returncode == KILLED
            assert_marked_folders_are_whole(reference, out)
        assert complete_step(out) >= before
    assert kills >= 2  # the run must not have outpaced the poll
    final = run(resume_command(reference, out), warm=True)
    assert final.returncode == 0, final.stderr[-3000:]
    assert_matches_reference(reference, out)


def test_an_explicit_partial_checkpoint_is_refused(tmp_path) -> None:
    from test_trainer import make_trainer

    trainer = make_trainer(tmp_path, max_steps=2, save_strategy="steps", save_steps=2)
    trainer.train()
    checkpoint = Path(trainer.args.output_dir, "checkpoint-2")
    (checkpoint / COMPLETE_MARKER).unlink()
    with pytest.raises(ValueError, match=r"checkpoint-2 is not a complete checkpoint \(no trm_checkpoint_complete"):
        make_trainer(tmp_path, max_steps=4).train(resume_from_checkpoint=str(checkpoint))


def test_a_checkpoint_written_again_is_not_marked_complete_while_it_is_rewritten(tmp_path, monkeypatch) -> None:
    # a second run into the same folder rewrote checkpoint-2 in place under the old marker: a crash there
    # left a "complete" checkpoint mixing two runs' files. Now the folder is cleared before it is written.
    from modeling_trm.training import trainer as trainer_module
    from test_trainer import make_trainer

    make_trainer(tmp_path, max_steps=2, save_strategy="steps", save_steps=2).train()

    def crash(point: str, step: int, rank: int) -> None:
        if point == "save-raw":
            raise KeyboardInterrupt("crash while writing checkpoint-2 again")

    monkeypatch.setattr(trainer_module, "fault_point", crash)
    with pytest.raises(KeyboardInterrupt):
        make_trainer(tmp_path, max_steps=2, save_strategy="steps", save_steps=2, seed=12).train()
    assert last_complete_checkpoint(str(tmp_path / "run")) is None
