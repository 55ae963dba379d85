"""No host syncs inside training steps or a max-halting `solve` (issue 24 item 2).

A device-to-host read (`.item()`, `bool(tensor)`, `.cpu()`, `nonzero`, ...) makes the host wait for
the accelerator to finish everything queued so far: between logging steps none may happen. On a CPU
there is nothing to wait for, so these tests count the calls that would read a device value instead,
with a `TorchFunctionMode` that sees every tensor method call.
"""

from __future__ import annotations

import datasets
import pytest
import torch
from torch.overrides import TorchFunctionMode
from transformers import TrainerCallback

from modeling_trm.training.sample_stream import SampleStream
from modeling_trm.training.trainer import TRMTrainer, TRMTrainingArguments, last_complete_checkpoint
from tiny_models import random_batch, tiny_model

# every call that reads a tensor's value on the host (a sync when the tensor is on an accelerator), and
# indexing with a boolean mask, whose result's size depends on the values (torch runs nonzero inside)
SYNC_CALLS = {"item", "tolist", "__bool__", "cpu", "nonzero", "numpy", "__int__", "__float__", "__index__",
              "masked_select", "unique", "bool-mask index"}


def _bool_mask_index(name: str, args: tuple) -> bool:
    if name not in ("__getitem__", "__setitem__") or len(args) < 2:
        return False
    index = args[1] if isinstance(args[1], tuple) else (args[1],)
    return any(isinstance(part, torch.Tensor) and part.dtype == torch.bool for part in index)


class SyncCounter(TorchFunctionMode):
    """Records the name of every host-reading tensor call while `active`, and `markers` the caller adds."""

    def __init__(self, active: bool = True) -> None:
        super().__init__()
        self.active = active
        self.events: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if self.active and (name in SYNC_CALLS or _bool_mask_index(name, args)):
            self.events.append(name if name in SYNC_CALLS else "bool-mask index")
        return func(*args, **(kwargs or {}))

    def mark(self, marker: str) -> None:
        self.events.append(marker)

    @property
    def syncs(self) -> list[str]:
        return [event for event in self.events if event in SYNC_CALLS]


def test_the_counter_sees_each_kind_of_sync() -> None:
    values = torch.tensor([1.0, 0.0])
    with SyncCounter() as counter:
        values[0].item()
        values.tolist()
        bool(values[0])
        values.cpu()
        values.nonzero()
        torch.nonzero(values)
        values.numpy()
        int(values[0])
        float(values[1])
        values[values > 0]
        values.sum() + 1  # no read
        values[torch.tensor([0])]  # an index tensor: no read
    assert counter.syncs == ["item", "tolist", "__bool__", "cpu", "nonzero", "nonzero", "numpy", "__int__",
                             "__float__", "bool-mask index"]


# ----------------------------------------------------------------------------- training


def random_dataset(rows: int = 64, seed: int = 0) -> datasets.Dataset:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(2, 6, (rows, 16), generator=generator)
    labels[:, :2] = -100
    return datasets.Dataset.from_dict({
        "input_ids": torch.randint(1, 6, (rows, 16), generator=generator).tolist(), "labels": labels.tolist(),
        "puzzle_identifiers": (torch.arange(rows) % 3).tolist(),
    })


class CountSteps(TrainerCallback):
    """Counts from the first step's start to the last step's end (setup and the end of training excluded)."""

    def __init__(self, counter: SyncCounter) -> None:
        self.counter = counter

    def on_step_begin(self, args, state, control, **kwargs):
        self.counter.active = True

    def on_step_end(self, args, state, control, **kwargs):
        self.counter.mark("step")
        if state.global_step >= state.max_steps:
            self.counter.active = False


def mixed_halting_model(**overrides):
    """A tiny model whose slots halt after different numbers of steps (so refills are partial)."""
    model = tiny_model(halt_max_steps=3, halt_exploration_prob=0.5, **overrides)
    with torch.no_grad():
        model.q_head.weight.normal_(0, 2.0, generator=torch.Generator().manual_seed(3))
        model.q_head.bias.fill_(0.0)
    return model


def train_counting(tmp_path, steps: int, model=None, **overrides):
    settings = dict(output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, max_steps=steps, report_to=[],
                    logging_strategy="no", save_strategy="no", warmup_steps=2, disable_tqdm=True, auto_bf16=False,
                    seed=5, learning_rate=1e-3)
    settings.update(overrides)
    dataset = random_dataset()
    trainer = TRMTrainer(model=model if model is not None else mixed_halting_model(),
                         args=TRMTrainingArguments(**settings), train_dataset=dataset)
    counter = SyncCounter(active=False)
    trainer.add_callback(CountSteps(counter))
    loaded: list[torch.Tensor] = []  # the rows each halted slot took, in slot order, step by step
    forward = trainer.model.forward

    def recording_forward(*args, state=None, **kwargs):
        halted = torch.ones(4, dtype=torch.bool) if state is None else state.halted
        counter.active, active = False, counter.active  # the test's own reads are not the trainer's
        loaded.extend(kwargs["input_ids"][halted.clone()].clone())
        counter.active = active
        return forward(*args, state=state, **kwargs)

    trainer.model.forward = recording_forward
    with counter:
        trainer.train()
    return trainer, counter, dataset, loaded


@pytest.mark.parametrize("accumulation", [1, 2])
def test_training_steps_do_not_sync_between_logging_steps(tmp_path, accumulation: int) -> None:
    steps = 8
    trainer, counter, dataset, loaded = train_counting(tmp_path, steps, gradient_accumulation_steps=accumulation)
    assert counter.events.count("step") == steps
    assert counter.syncs == [], f"host syncs inside {steps} training steps: {counter.syncs}"
    # the samples the slots took are the stream's, in order, as the per-step refill handed them out
    stream = SampleStream(dataset, seed=5).take(len(loaded))["input_ids"]
    assert torch.equal(torch.stack(loaded), stream)
    assert trainer.samples_started == len(loaded) and 0 < trainer.samples_finished <= len(loaded)
    assert 4 * accumulation < len(loaded) < 4 * accumulation * steps  # some slots halted, not all every step


def test_logging_steps_still_report_the_loss_and_gradient_norm(tmp_path, monkeypatch) -> None:
    """The gradient norm is computed only for the steps that log it, and the logs read the device sums."""
    norms = []
    from accelerate import Accelerator

    original = Accelerator.clip_grad_norm_
    monkeypatch.setattr(Accelerator, "clip_grad_norm_", lambda *a, **k: norms.append(1) or original(*a, **k))
    trainer, _, _, loaded = train_counting(tmp_path, 6, logging_strategy="steps", logging_steps=3)
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["step"] for entry in logs] == [3, 6] and all("grad_norm" in entry for entry in logs)
    assert len(norms) == 2 and logs[-1]["samples_started"] == len(loaded)
    assert all(torch.isfinite(torch.tensor(entry["loss"])) for entry in logs)


def test_the_training_counter_catches_a_deliberate_sync(tmp_path, monkeypatch) -> None:
    from modeling_trm.modeling_trm import TRMForGridReasoning

    original = TRMForGridReasoning.compute_loss

    def syncing(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        result[0].item()
        return result

    monkeypatch.setattr(TRMForGridReasoning, "compute_loss", syncing)
    _, counter, _, _ = train_counting(tmp_path, 3)
    assert counter.syncs == ["item"] * 3


def test_a_tiny_refill_queue_bound_keeps_the_sample_order(tmp_path) -> None:
    """Past `refill_queue_mb` the trainer reads how many rows were used (a sync) and the order stays the same."""
    _, counter, dataset, loaded = train_counting(tmp_path, 6, refill_queue_mb=1e-6)
    assert counter.syncs  # the bound forces a read
    assert torch.equal(torch.stack(loaded), SampleStream(dataset, seed=5).take(len(loaded))["input_ids"])


def test_a_diverged_run_is_caught_at_the_next_save_and_writes_no_checkpoint(tmp_path) -> None:
    model = tiny_model()
    with torch.no_grad():
        model.lm_head.weight.fill_(float("nan"))
    args = TRMTrainingArguments(output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, max_steps=3,
                                report_to=[], logging_strategy="no", save_strategy="steps", save_steps=2,
                                disable_tqdm=True, auto_bf16=False, seed=5)
    trainer = TRMTrainer(model=model, args=args, train_dataset=random_dataset())
    with pytest.raises(FloatingPointError, match=r"non-finite loss \(nan\) at step 0"):
        trainer.train()
    assert last_complete_checkpoint(str(tmp_path / "run")) is None
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        trainer.save_model(str(tmp_path / "final"))


def test_a_training_set_with_bad_ids_is_refused_before_the_first_step(tmp_path) -> None:
    dataset = random_dataset().map(lambda row: {"labels": [9] + row["labels"][1:]})
    args = TRMTrainingArguments(output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, max_steps=1,
                                report_to=[], save_strategy="no", disable_tqdm=True, auto_bf16=False)
    with pytest.raises(ValueError, match=r"labels hold values other than -100 outside \[0, 6\).*max 9"):
        TRMTrainer(model=tiny_model(), args=args, train_dataset=dataset).train()


# ----------------------------------------------------------------------------- solve


def solve_counting(halting: str, **kwargs):
    model = mixed_halting_model().eval()
    counter = SyncCounter()
    step = model.supervision_step

    def marked_step(*args):
        result = step(*args)
        counter.mark("step")
        return result

    model.supervision_step = marked_step
    with counter:
        out = model.solve(random_batch(7, seed=2), halting=halting, **kwargs)
    return out, counter


@pytest.mark.parametrize("slots", [None, 3])
def test_max_halting_solve_syncs_only_after_its_last_step(slots) -> None:
    out, counter = solve_counting("max", max_steps=4, slots=slots)
    events = counter.events
    last_step = len(events) - 1 - events[::-1].index("step")
    assert counter.syncs == ["__bool__"]  # the deferred id check, once, when it returns
    assert all(event == "step" for event in events[:last_step + 1])
    assert events.count("step") == 4 * (1 if slots is None else 3)
    assert out.steps.tolist() == [4] * 7


@pytest.mark.parametrize("slots", [None, 3])
def test_act_solve_syncs_at_most_once_per_supervision_step(slots) -> None:
    out, counter = solve_counting("act", max_steps=5, slots=slots)
    between, gaps = 0, []
    for event in counter.events:
        if event == "step":
            gaps.append(between)
            between = 0
        else:
            between += 1
    gaps.append(between)  # after the last step: the last step's read and the id check
    assert max(gaps[1:-1], default=0) <= 1 and gaps[0] == 0 and gaps[-1] <= 2
    assert len(set(out.steps.tolist())) > 1  # the puzzles halted after different numbers of steps


def test_solve_answers_are_unchanged_by_the_sync_free_loop() -> None:
    """Slots or not, max or ACT: each puzzle's answer and step count do not depend on the batching."""
    model = mixed_halting_model().eval()
    ids = random_batch(7, seed=2)
    for halting in ("max", "act"):
        whole = model.solve(ids, halting=halting, max_steps=5)
        for slots in (1, 3):
            part = model.solve(ids, halting=halting, max_steps=5, slots=slots)
            assert torch.equal(part.predictions, whole.predictions) and torch.equal(part.steps, whole.steps)
            torch.testing.assert_close(part.q_halt_logits, whole.q_halt_logits)


def test_solve_still_names_bad_ids() -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match="vocabulary"):
        model.solve(torch.full((2, 16), 6), halting="max")
    with pytest.raises(ValueError, match="puzzle_identifiers"):
        model.solve(random_batch(2), puzzle_identifiers=torch.tensor([0, 3]))


# ----------------------------------------------------------------------------- on a GPU: CUDA's own detector


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_training_steps_and_max_solve_never_synchronize(tmp_path) -> None:
    """`torch.cuda.set_sync_debug_mode("error")` raises on any synchronizing CUDA call (a read of a device
    value, a boolean-mask index, a blocking copy): on for the steps between the first and the last."""

    class Strict(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step >= 1:  # the first step allocates the optimizer state (a pageable copy)
                torch.cuda.set_sync_debug_mode("error")

        def on_step_end(self, args, state, control, **kwargs):
            torch.cuda.set_sync_debug_mode("default")

    args = TRMTrainingArguments(output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, max_steps=6,
                                report_to=[], logging_strategy="no", save_strategy="no", disable_tqdm=True, seed=5)
    trainer = TRMTrainer(model=mixed_halting_model(), args=args, train_dataset=random_dataset())
    trainer.add_callback(Strict())
    try:
        trainer.train()
        model = trainer.model.eval()
        ids = random_batch(7, seed=2).cuda()
        model.solve(ids, halting="max", max_steps=3)  # warm-up outside the strict mode
        clamp = model._clamped_ids
        # the id check's one read, when solve returns, goes to a CPU flag: everything else must not sync
        model._clamped_ids = lambda *a: (*clamp(*a)[:2], torch.tensor(False))
        torch.cuda.set_sync_debug_mode("error")
        out = model.solve(ids, halting="max", max_steps=3, slots=3)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert out.steps.tolist() == [3] * 7
