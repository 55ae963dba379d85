"""TRMTrainer: deep supervision with a persistent carry, EMA, optimizers, exact resume, accumulation."""

from __future__ import annotations

import math
import os

import datasets
import pytest
import torch
from safetensors.torch import load_file

from modeling_trm.training.optim import EMAWeights, TRMOptimizer
from modeling_trm.training.sample_stream import SampleStream
from modeling_trm.training.trainer import TRMTrainer, TRMTrainingArguments, last_complete_checkpoint
from tiny_models import tiny_model


def random_dataset(rows: int = 48, seed: int = 0) -> datasets.Dataset:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 6, (rows, 16), generator=generator)
    labels = torch.randint(2, 6, (rows, 16), generator=generator)
    labels[:, :2] = -100  # some cells unscored
    return datasets.Dataset.from_dict({
        "input_ids": ids.tolist(), "labels": labels.tolist(),
        "puzzle_identifiers": (torch.arange(rows) % 3).tolist(), "row": list(range(rows)),
    })


def make_trainer(tmp_path, model=None, dataset=None, **overrides) -> TRMTrainer:
    settings = dict(output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, max_steps=4, report_to=[],
                    logging_steps=1, save_strategy="no", warmup_steps=2, disable_tqdm=True, auto_bf16=False,
                    per_device_eval_batch_size=16, seed=11, learning_rate=1e-3)
    settings.update(overrides)
    return TRMTrainer(model=model if model is not None else tiny_model(), args=TRMTrainingArguments(**settings),
                      train_dataset=dataset if dataset is not None else random_dataset())


def stream_rows(dataset, seed: int, count: int) -> list[int]:
    return SampleStream(dataset, seed).take(count)["input_ids"].tolist()


# ----------------------------------------------------------------------------- carry and accounting


def test_slots_continue_until_the_cap_then_take_the_next_samples(tmp_path) -> None:
    dataset = random_dataset()
    trainer = make_trainer(tmp_path, model=tiny_model(halt_max_steps=4, halt_exploration_prob=0.0),
                           dataset=dataset, max_steps=5)
    trainer.train()
    expected = stream_rows(dataset, seed=11, count=8)
    carry = trainer.carries[0]
    # an untrained halting head never fires, so all 4 slots ran 4 steps on samples 0..3, then took 4..7
    assert carry.input_ids.tolist() == expected[4:8]
    assert carry.steps.tolist() == [1, 1, 1, 1]
    assert (trainer.samples_started, trainer.samples_finished) == (8, 4)


def test_halted_slots_are_refilled_every_step_and_nothing_is_dropped(tmp_path) -> None:
    model = tiny_model(halt_max_steps=4, halt_exploration_prob=0.0)
    with torch.no_grad():
        model.q_head.bias.fill_(20.0)  # q_halt > 0: every slot halts after one step in training
    dataset = random_dataset()
    trainer = make_trainer(tmp_path, model=model, dataset=dataset, max_steps=3, learning_rate=1e-6)
    trainer.train()
    assert (trainer.samples_started, trainer.samples_finished) == (12, 12)
    assert trainer.carries[0].input_ids.tolist() == stream_rows(dataset, seed=11, count=12)[8:12]
    logged = [entry for entry in trainer.state.log_history if "samples_started" in entry]
    assert logged[-1]["samples_started"] == 12 and logged[-1]["mean_halt_steps"] == 1.0


def test_one_optimizer_step_per_supervision_step(tmp_path, monkeypatch) -> None:
    calls = []
    original = TRMOptimizer.step
    monkeypatch.setattr(TRMOptimizer, "step", lambda self, closure=None: calls.append(1) or original(self, closure))
    trainer = make_trainer(tmp_path, max_steps=5)
    trainer.train()
    assert len(calls) == 5 and trainer.state.global_step == 5


def test_sample_stream_is_seeded_covers_each_epoch_and_shards_ranks() -> None:
    dataset = random_dataset(rows=10)
    stream = SampleStream(dataset, seed=3)
    first_epoch = [row for row in stream.take(10)["input_ids"].tolist()]
    assert sorted(map(tuple, first_epoch)) == sorted(map(tuple, dataset["input_ids"]))
    again = SampleStream(dataset, seed=3)
    assert again.take(10)["input_ids"].tolist() == first_epoch
    rank0 = SampleStream(dataset, seed=3, rank=0, world_size=2).take(5)["input_ids"].tolist()
    rank1 = SampleStream(dataset, seed=3, rank=1, world_size=2).take(5)["input_ids"].tolist()
    assert sorted(map(tuple, rank0 + rank1)) == sorted(map(tuple, dataset["input_ids"]))
    with pytest.raises(ValueError, match="lacks columns"):
        SampleStream(dataset.remove_columns("labels"), seed=0)


# ----------------------------------------------------------------------------- optimizers and EMA


def test_ema_matches_hand_computation() -> None:
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0]]))
    ema = EMAWeights(model, decay=0.9)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[3.0, -2.0]]))
    ema.update(model)
    torch.testing.assert_close(ema.shadow["weight"], torch.tensor([[0.9 * 1 + 0.1 * 3, 0.9 * 2 + 0.1 * -2]]))
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.0, 0.0]]))
    ema.update(model)
    torch.testing.assert_close(ema.shadow["weight"], torch.tensor([[0.9 * 1.2, 0.9 * 1.6]]))
    with ema.applied_to(model):
        torch.testing.assert_close(model.weight.data, torch.tensor([[1.08, 1.44]]))
    assert torch.count_nonzero(model.weight) == 0  # raw weights restored


def test_signsgd_updates_only_rows_in_the_batch() -> None:
    table = torch.nn.Parameter(torch.tensor([[1.0, -1.0], [2.0, 2.0], [0.5, 0.0]]))
    optimizer = TRMOptimizer([dict(params=[table], lr=0.1, weight_decay=0.5, rule="signsgd")])
    embedding_grad = torch.zeros(3, 2)
    ids = torch.tensor([0, 2, 0])
    per_sample = torch.tensor([[0.3, -0.2], [-1.0, 0.0], [-0.5, 0.1]])
    embedding_grad.index_add_(0, ids, per_sample)  # id 0 sums to [-0.2, -0.1]
    table.grad = embedding_grad
    optimizer.step()
    decay = 1 - 0.1 * 0.5
    expected = torch.tensor([
        [1.0 * decay + 0.1, -1.0 * decay + 0.1],  # sign(-0.2) = sign(-0.1) = -1
        [2.0, 2.0],  # id 1 not in the batch: no decay, no step
        [0.5 * decay + 0.1, 0.0],  # sign(0) = 0
    ])
    torch.testing.assert_close(table.data, expected)


@pytest.mark.parametrize("rule", ["adam_atan2", "adamw"])
def test_adam_rules_match_hand_computation(rule: str) -> None:
    param = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = TRMOptimizer([dict(params=[param], lr=0.01, weight_decay=0.1, rule=rule, betas=(0.9, 0.95))],
                             eps=1e-8)
    grads = [torch.tensor([0.5, -1.0]), torch.tensor([-0.25, 2.0])]
    p, m, v = torch.tensor([1.0, -2.0]), torch.zeros(2), torch.zeros(2)
    for step, grad in enumerate(grads, start=1):
        param.grad = grad.clone()
        optimizer.step()
        m = 0.9 * m + 0.1 * grad
        v = 0.95 * v + 0.05 * grad * grad
        bc1, bc2 = 1 - 0.9 ** step, 1 - 0.95 ** step
        p = p * (1 - 0.01 * 0.1)
        if rule == "adam_atan2":
            p = p - 0.01 / bc1 * torch.atan2(m, v.sqrt() / math.sqrt(bc2))
        else:
            p = p - 0.01 / bc1 * m / (v.sqrt() / math.sqrt(bc2) + 1e-8)
        torch.testing.assert_close(param.data, p)


def test_parameter_groups_follow_the_recipe(tmp_path) -> None:
    trainer = make_trainer(tmp_path, puzzle_emb_lr=0.01, puzzle_emb_weight_decay=0.1, weight_decay=1.0)
    optimizer = trainer.create_optimizer()
    rules = {group["rule"]: group for group in optimizer.param_groups}
    assert rules["signsgd"]["lr"] == 0.01 and rules["signsgd"]["weight_decay"] == 0.1
    assert rules["signsgd"]["params"] == [trainer.model.puzzle_embedding.weight]
    assert rules["adamw"]["weight_decay"] == 1.0 and rules["adamw"]["betas"] == (0.9, 0.95)
    # with T > 1 no gradient reaches y_init/z_init, so they are frozen (DDP would stall on them)
    assert not trainer.model.y_init.requires_grad


# ----------------------------------------------------------------------------- saving and resuming


def test_saved_model_holds_ema_weights(tmp_path) -> None:
    trainer = make_trainer(tmp_path, max_steps=3, ema_decay=0.5)
    trainer.train()
    trainer.save_model(str(tmp_path / "final"))
    saved = load_file(str(tmp_path / "final" / "model.safetensors"))
    raw = trainer.model.state_dict()
    ema = trainer.ema.state_dict_for(trainer.model)
    for name in ema:
        assert torch.equal(saved[name], ema[name]), name
    assert not torch.equal(saved["lm_head.weight"], raw["lm_head.weight"])


def test_resume_continues_exactly(tmp_path) -> None:
    dataset = random_dataset()
    straight = make_trainer(tmp_path / "a", model=tiny_model(seed=1, halt_exploration_prob=0.5), dataset=dataset,
                            max_steps=6, save_strategy="steps", save_steps=3)
    straight.train()

    resumed = make_trainer(tmp_path / "b", model=tiny_model(seed=1, halt_exploration_prob=0.5), dataset=dataset,
                           max_steps=6, save_strategy="steps", save_steps=3)
    resumed.args.output_dir = straight.args.output_dir
    checkpoint = os.path.join(straight.args.output_dir, "checkpoint-3")
    assert last_complete_checkpoint(straight.args.output_dir).endswith("checkpoint-6")
    resumed.train(resume_from_checkpoint=checkpoint)

    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    for name, tensor in straight.ema.shadow.items():
        assert torch.equal(tensor, resumed.ema.shadow[name]), name
    assert torch.equal(straight.carries[0].input_ids, resumed.carries[0].input_ids)
    assert (straight.samples_started, straight.samples_finished) == (resumed.samples_started, resumed.samples_finished)


def test_gradient_accumulation_keeps_the_loss_scale(tmp_path) -> None:
    dataset = random_dataset()
    whole = make_trainer(tmp_path / "a", model=tiny_model(seed=2, halt_exploration_prob=0.0), dataset=dataset,
                         per_device_train_batch_size=4, gradient_accumulation_steps=1, max_steps=3)
    whole.train()
    split = make_trainer(tmp_path / "b", model=tiny_model(seed=2, halt_exploration_prob=0.0), dataset=dataset,
                         per_device_train_batch_size=2, gradient_accumulation_steps=2, max_steps=3)
    split.train()
    for name, tensor in whole.model.state_dict().items():
        torch.testing.assert_close(tensor, split.model.state_dict()[name], atol=2e-5, rtol=1e-4, msg=name)
    losses_whole = [e["loss"] for e in whole.state.log_history if "loss" in e]
    losses_split = [e["loss"] for e in split.state.log_history if "loss" in e]
    assert losses_whole == pytest.approx(losses_split, rel=1e-4)


# ----------------------------------------------------------------------------- evaluation


def test_evaluate_solves_with_ema_weights_and_reports_accuracy(tmp_path) -> None:
    dataset = random_dataset(rows=20)
    trainer = make_trainer(tmp_path, dataset=dataset, max_steps=2, eval_halting="both")
    trainer.train()
    metrics = trainer.evaluate(dataset)
    assert metrics["eval_num_examples_max"] == 20
    assert metrics["eval_mean_steps_max"] == trainer.model.config.halt_max_steps
    # cross-check exact accuracy by hand with the EMA weights
    with trainer.ema.applied_to(trainer.model):
        out = trainer.model.eval().solve(torch.tensor(dataset["input_ids"]),
                                         torch.tensor(dataset["puzzle_identifiers"]), halting="max")
    labels = torch.tensor(dataset["labels"])
    valid = labels != -100
    exact = (((out.predictions == labels) | ~valid).all(-1)).float().mean().item()
    token = (((out.predictions == labels) & valid).sum(-1) / valid.sum(-1)).mean().item()
    assert metrics["eval_exact_accuracy_max"] == pytest.approx(exact)
    assert metrics["eval_token_accuracy_max"] == pytest.approx(token)


def test_bf16_autocast_is_the_default_where_the_cpu_has_bf16_units(tmp_path) -> None:
    from modeling_trm.training.trainer import cpu_supports_bf16

    model = tiny_model()
    dtypes = []
    model.lm_head.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    trainer = make_trainer(tmp_path, model=model, max_steps=1, auto_bf16=True)
    assert trainer.args.bf16 == (cpu_supports_bf16() and not torch.cuda.is_available())
    trainer.train()
    assert dtypes[0] == (torch.bfloat16 if trainer.args.bf16 else torch.float32)
    assert make_trainer(tmp_path, max_steps=1, auto_bf16=False).args.bf16 is False


def test_a_diverged_run_stops_with_a_clear_error(tmp_path) -> None:
    model = tiny_model()
    with torch.no_grad():
        model.lm_head.weight.fill_(float("nan"))
    trainer = make_trainer(tmp_path, model=model, max_steps=2)
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        trainer.train()
