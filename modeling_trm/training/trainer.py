"""`TRMTrainer`: deep supervision on `transformers.Trainer` (paper §4.1 and the reference training loop).

Each Trainer step is one supervision step for every slot of the batch: one forward, one backward,
one optimizer step. The per-slot state (carry) persists across steps; slots that halted take the
next samples from a seeded stream, the others keep refining their own puzzle, so the batch stays
full and no sample is dropped. Evaluation and the saved model use an EMA of the weights.

The Trainer's own dataloader is only a clock that sets the number of steps per epoch (dataset rows
divided by the global batch, as the reference counts epochs); the samples come from `SampleStream`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_callback import TrainerState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, TrainOutput

from ..data.atomic import write_text_atomically
from ..dtypes import cpu_supports_bf16, native_dtype
from ..faults import fault_point
from ..modeling_trm import IGNORE_INDEX, TRMForGridReasoning, TRMState
from .sample_stream import MODEL_COLUMNS, SampleStream, column_ranges
from .optim import EMAWeights, TRMOptimizer, build_param_groups
from .refill import RefillQueue, narrowest_int_dtype

RAW_WEIGHTS_NAME = "raw_model.safetensors"  # checkpoint: the non-EMA weights, to resume training
CARRY_NAME = "trm_carry_rank{rank}.pt"  # checkpoint: carry, sample stream and counters of one rank
COMPLETE_MARKER = "trm_checkpoint_complete"  # written last: a checkpoint without it is partial


def has_accelerator() -> bool:
    """Whether torch sees a GPU-like device (CUDA/ROCm, MPS, XPU) that the Trainer would pick over the CPU."""
    xpu = getattr(torch, "xpu", None)
    return bool(torch.cuda.is_available() or torch.backends.mps.is_available()
                or (xpu is not None and xpu.is_available()))


@dataclass
class TRMTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the TRM recipe's defaults (reference §4) and its extra knobs."""

    learning_rate: float = field(default=1e-4, metadata={"help": "Reference LR for all weights."})
    weight_decay: float = field(default=1.0, metadata={"help": "Decoupled weight decay (Sudoku/maze 1.0, ARC 0.1)."})
    adam_beta1: float = 0.9
    adam_beta2: float = field(default=0.95, metadata={"help": "Reference betas (0.9, 0.95)."})
    max_grad_norm: float = field(default=0.0, metadata={"help": "The reference does not clip gradients."})
    lr_scheduler_type: str = field(default="constant_with_warmup", metadata={"help": "Warm-up then constant."})
    warmup_steps: float = field(default=2000, metadata={"help": "Reference warm-up steps."})
    ema_decay: float = field(default=0.999, metadata={"help": "EMA of weights; 0 disables EMA."})
    puzzle_emb_lr: float = field(default=1e-4, metadata={"help": "Sign-SGD LR of the puzzle-id table (ARC 1e-2)."})
    puzzle_emb_weight_decay: float = field(default=1.0, metadata={"help": "Its decoupled decay (ARC 0.1)."})
    trm_optimizer: str = field(default="adamw", metadata={"help": "'adamw' or 'adam_atan2' (the reference rule)."})
    eval_halting: str = field(default="max", metadata={"help": "'max' (paper protocol), 'act', or 'both'."})
    eval_max_steps: int | None = field(default=None, metadata={"help": "Supervision steps at evaluation."})
    auto_bf16: bool = field(default=True, metadata={"help": "Enable bf16 autocast when the hardware has bf16 units."})
    stop_on_nonfinite_loss: bool = field(default=True, metadata={
        "help": "Raise instead of training on (and saving) NaN/inf weights; checkpoints already written stay. The "
                "loss is checked on the device every step and read at logging and checkpoint steps (no sync per step)."})
    logging_nan_inf_filter: bool = field(default=False, metadata={
        "help": "transformers' filter reads every step's loss on the host (a sync per step); off here: "
                "stop_on_nonfinite_loss raises on a non-finite loss instead."})
    refill_queue_mb: float = field(default=256.0, metadata={
        "help": "Device memory (MiB) the stream rows prefetched for refilling halted slots may take before the "
                "trainer reads how many were used (one host sync); they are read at logging steps anyway."})
    curriculum_steps: int = field(default=0, metadata={
        "help": "Sudoku curriculum: the blank-cell bound rises linearly to the hardest puzzle over this many "
                "steps (modeling_trm.training.curriculum); 0 = off, every row from the start."})
    curriculum_start_blanks: int | None = field(default=None, metadata={
        "help": "The curriculum's blank-cell bound at step 0 (default: the fewest blanks in the training set)."})

    def __post_init__(self) -> None:
        if self.trm_optimizer not in ("adamw", "adam_atan2"):
            raise ValueError(f"trm_optimizer must be 'adamw' or 'adam_atan2', got {self.trm_optimizer!r}")
        if self.eval_halting not in ("max", "act", "both"):
            raise ValueError(f"eval_halting must be 'max', 'act' or 'both', got {self.eval_halting!r}")
        if self.auto_bf16 and not self.bf16 and not self.fp16 and not self.use_cpu and torch.cuda.is_available():
            self.bf16 = native_dtype("cuda") == "bf16"  # bf16 hardware, not torch's emulation on older GPUs
        elif self.auto_bf16 and not self.bf16 and not self.fp16 and not torch.cuda.is_available() \
                and not torch.backends.mps.is_available() and cpu_supports_bf16():
            self.bf16 = True
            self.use_cpu = True  # transformers only accepts bf16 without a GPU when told it trains on CPU
        if not self.use_cpu and not has_accelerator():
            # On a machine with no accelerator the run is on the CPU anyway; saying so is what makes the Trainer
            # join the gloo process group under torchrun / `accelerate launch` (without it every rank runs alone).
            self.use_cpu = True
        super().__post_init__()


class _StepClock(Dataset):
    """The Trainer's dataloader: one item per micro-step; the data itself comes from `SampleStream`."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, int]:
        return {"trm_step": index}


def _first_item(items: list[dict[str, int]]) -> dict[str, int]:
    return items[0]


class _EMACallback(TrainerCallback):
    def __init__(self, trainer: "TRMTrainer") -> None:
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):  # after optimizer.step and zero_grad
        if self.trainer.ema is not None:
            self.trainer.ema.update(self.trainer.model)
        fault_point("step", state.global_step, args.process_index)
        return control


class TRMTrainer(Trainer):
    """Trainer for `TRMForGridReasoning` with deep supervision, a persistent carry and EMA weights."""

    def __init__(self, model: TRMForGridReasoning | None = None, args: TRMTrainingArguments | None = None,
                 **kwargs: Any) -> None:
        if args is None:
            args = TRMTrainingArguments(output_dir="trm_output")
        if not isinstance(args, TRMTrainingArguments):
            raise TypeError("TRMTrainer needs TRMTrainingArguments (it carries the EMA and puzzle-embedding knobs)")
        super().__init__(model=model, args=args, **kwargs)
        self._freeze_unreachable_parameters()
        self.ema = EMAWeights(self.model, args.ema_decay) if args.ema_decay > 0 else None
        self.add_callback(_EMACallback(self))
        self.stream: SampleStream | None = None
        self.carries: list[TRMState | None] = [None] * args.gradient_accumulation_steps
        self._micro_step = 0
        self.generator = torch.Generator(device=self.args.device)
        self.generator.manual_seed(args.seed + self.args.process_index)
        self.refill: RefillQueue | None = None
        self._refill_state: dict | None = None  # queued rows of a checkpoint, loaded before the queue exists
        device = self.args.device
        # Counters and the non-finite flag live on the device; the host reads them at logging and checkpoints.
        self._samples = torch.zeros(2, dtype=torch.int64, device=device)  # started, finished
        self._nonfinite = torch.zeros((), dtype=torch.bool, device=device)
        self._nonfinite_at = torch.zeros(2, dtype=torch.float64, device=device)  # step and loss of the first one
        self._metric_sums: dict[str, torch.Tensor] = {}
        self._id_dtypes: dict[str, torch.dtype] = {}

    @property
    def samples_started(self) -> int:
        """Samples loaded into slots so far (reads a device counter: not for use inside a step)."""
        return int(self._samples[0].item())

    @samples_started.setter
    def samples_started(self, value: int) -> None:
        self._samples[0] = int(value)

    @property
    def samples_finished(self) -> int:
        """Samples whose slot halted so far (reads a device counter)."""
        return int(self._samples[1].item())

    @samples_finished.setter
    def samples_finished(self, value: int) -> None:
        self._samples[1] = int(value)

    # -- setup -----------------------------------------------------------------------------------

    def _freeze_unreachable_parameters(self) -> None:
        """Parameters no gradient can reach would stall DDP; under the 1-step gradient (T > 1) the
        initial states only enter through no-grad cycles, and without a prefix the id table is unused.
        (Ablations: full back-propagation reaches both initial states; a single latent never reads y_init.)"""
        model = self.model
        config = model.config
        if config.H_cycles > 1 and not getattr(config, "backprop_all_cycles", False):
            model.y_init.requires_grad_(False)
            model.z_init.requires_grad_(False)
        if getattr(config, "single_latent", False):
            model.y_init.requires_grad_(False)
        if model.config.puzzle_emb_len == 0:
            model.puzzle_embedding.weight.requires_grad_(False)

    def _new_stream(self) -> SampleStream:
        args = self.args
        if args.curriculum_steps > 0:
            from .curriculum import CurriculumStream

            return CurriculumStream(self.train_dataset, args.seed, args.curriculum_steps, args.curriculum_start_blanks,
                                    args.process_index, args.world_size)
        return SampleStream(self.train_dataset, args.seed, args.process_index, args.world_size)

    def _global_batch_size(self) -> int:
        return self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps * self.args.world_size

    def get_train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            raise ValueError("TRMTrainer: training requires a train_dataset")
        if self.stream is None:
            self.stream = self._new_stream()
        if not self._id_dtypes:
            self._id_dtypes = self._check_training_rows()
        updates_per_epoch = max(1, math.ceil(len(self.train_dataset) / self._global_batch_size()))
        clock = _StepClock(updates_per_epoch * self.args.gradient_accumulation_steps)
        return DataLoader(clock, batch_size=1, shuffle=False, collate_fn=_first_item)

    def _check_training_rows(self) -> dict[str, torch.dtype]:
        """Every id of the training set in range, checked once on the host before training (the model then
        skips its per-step checks, which would read each batch back from the device); returns the narrowest
        dtype of each column, which the refill queue stores rows in."""
        config = self.model.config
        ranges = column_ranges(self.train_dataset)
        limits = {"input_ids": ("input_ids", config.vocab_size), "labels": ("labels", config.vocab_size),
                  "puzzle_identifiers": ("puzzle_identifiers", config.num_puzzle_identifiers)}
        dtypes = {}
        for name, (label, limit) in limits.items():
            low, high = ranges[name] or (0, 0)
            if low < 0 or high >= limit:
                extra = " other than -100" if name == "labels" else ""
                raise ValueError(f"the training set's {label} hold values{extra} outside [0, {limit}) of the model's "
                                 f"config: min {low}, max {high}")
            dtypes[name] = narrowest_int_dtype(min(low, -100), high)
        return dtypes

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            args = self.args
            groups = build_param_groups(
                self.model, lr=args.learning_rate, weight_decay=args.weight_decay,
                puzzle_emb_lr=args.puzzle_emb_lr, puzzle_emb_weight_decay=args.puzzle_emb_weight_decay,
                rule=args.trm_optimizer, betas=(args.adam_beta1, args.adam_beta2),
            )
            self.optimizer = TRMOptimizer(groups, lr=args.learning_rate, eps=args.adam_epsilon)
        return self.optimizer

    # -- one supervision step --------------------------------------------------------------------

    def _refill_queue(self) -> RefillQueue:
        if self.refill is None:
            if self.stream is None:
                self.stream = self._new_stream()
            self.refill = RefillQueue(self.stream, self.args.per_device_train_batch_size, self.args.device,
                                      self._id_dtypes, self.args.refill_queue_mb * 2**20)
            if self._refill_state is not None:
                self.refill.load_state_dict(self._refill_state)
                self._refill_state = None
        return self.refill

    def _next_batch(self, carry: TRMState | None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Full-size int64 batch on the device whose rows for halted slots hold new samples, the others their
        slot's own, and how many slots start a sample (a device tensor): no host sync (`RefillQueue`)."""
        return self._refill_queue().next_batch(carry, self.state.global_step)

    def training_step(self, model, inputs, num_items_in_batch=None) -> torch.Tensor:
        """One supervision step of this shard's slots. Nothing here reads a device value on the host: the
        refill, the counters, the metric sums and the non-finite check stay on the device until `log` (or a
        checkpoint) reads them, so an accelerator's queue never drains between logging steps."""
        shard = self._micro_step % self.args.gradient_accumulation_steps
        self._micro_step += 1
        carry = self.carries[shard]
        batch, started = self._next_batch(carry)

        if not model.training:
            model.train()
        with self.compute_loss_context_manager():
            # The ids were checked on the host once for the whole training set (`_check_training_rows`); the
            # halting rule's draws are made here, from the trainer's generator, so a compiled model traces whole.
            draws = None
            if self.model.config.halt_max_steps > 1:
                draws = self.model.exploration_draws(self.args.per_device_train_batch_size, self.args.device,
                                                     self.generator)
            outputs = model(**batch, state=carry, exploration=draws, check_values=False)
        # `outputs.loss` is the mean over this shard's slots; dividing by the number of shards makes the
        # accumulated gradient the mean over the global batch (DDP averages across processes).
        loss = outputs.loss / self.args.gradient_accumulation_steps
        if self.args.stop_on_nonfinite_loss:  # on the device: `check_finite` reads it at logging and saving
            first = ~torch.isfinite(loss.detach()) & ~self._nonfinite
            at = torch.stack((torch.full_like(loss.detach(), self.state.global_step, dtype=torch.float64),
                              loss.detach().double()))
            self._nonfinite_at.copy_(torch.where(first, at, self._nonfinite_at))
            self._nonfinite |= first
        self.accelerator.backward(loss)

        self.carries[shard] = outputs.state
        halted = outputs.state.halted.sum()
        self._samples += torch.stack((started, halted))
        names = list(outputs.metrics)
        values = [value.detach().double() for value in outputs.metrics.values()]
        if names and all(name in self._metric_sums for name in names):
            torch._foreach_add_([self._metric_sums[name] for name in names], values)
        else:
            for name, value in zip(names, values):
                self._metric_sums[name] = self._metric_sums.get(name, 0) + value
        self._metric_sums["slots"] = self._metric_sums.get("slots", 0) + float(outputs.state.batch_size)
        return loss.detach()

    def check_finite(self) -> None:
        """Raise if a step's loss was not finite since training started (one host read): called at logging,
        before every save and when training ends, so a diverged run never writes NaN weights."""
        if self.args.stop_on_nonfinite_loss and bool(self._nonfinite.item()):
            step, value = self._nonfinite_at.tolist()
            raise FloatingPointError(
                f"non-finite loss ({value}) at step {int(step)}: training diverged; lower the learning rate or set "
                f"max_grad_norm (the last complete checkpoint is untouched)"
            )

    def _get_grad_norm(self, model, grad_norm=None):
        """The gradient norm only at steps that log it (transformers computes it, and scales every gradient by
        1.0, at every step even without clipping)."""
        if grad_norm is not None or self.args.max_grad_norm > 0:
            return super()._get_grad_norm(model, grad_norm)
        step = self.state.global_step + 1  # the step being finished
        if self.args.logging_strategy == "steps":
            logs = bool(self.state.logging_steps) and step % self.state.logging_steps == 0
        else:
            logs = self.args.logging_strategy != "no"
        logs = logs or (step == 1 and self.args.logging_first_step) or step >= self.state.max_steps
        return super()._get_grad_norm(model, None) if logs else None

    def floating_point_ops(self, inputs: dict[str, Any]) -> int:
        from ..flops import training_step_flops

        return training_step_flops(self.model.config, self.args.per_device_train_batch_size)

    # -- logging ---------------------------------------------------------------------------------

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            self.check_finite()
            if self.refill is not None:
                self.refill.settle()
        if "loss" in logs and self._metric_sums:
            names = sorted(self._metric_sums)
            sums = torch.stack([torch.as_tensor(self._metric_sums[n], dtype=torch.float64) for n in names])
            sums = self.accelerator.reduce(sums.to(self.args.device), reduction="sum")
            total = dict(zip(names, sums.tolist()))
            count = max(total.get("count", 0.0), 1.0)
            slots = max(total.get("slots", 0.0), 1.0)
            logs["lm_loss"] = total["lm_loss"] / slots
            logs["q_halt_loss"] = total["q_halt_loss"] / slots
            logs["token_accuracy"] = total["token_accuracy"] / count
            logs["exact_accuracy"] = total["exact_accuracy"] / count
            logs["q_halt_accuracy"] = total["q_halt_accuracy"] / count
            logs["mean_halt_steps"] = total["steps"] / count
            logs["samples_finished_since_log"] = total["count"]
            started = self.accelerator.reduce(self._samples.double(), "sum")
            logs["samples_started"], logs["samples_finished"] = started.tolist()
            self._metric_sums = {}
        super().log(logs, start_time)

    # -- evaluation: solve with EMA weights ------------------------------------------------------

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise ValueError("TRMTrainer.evaluate needs an eval_dataset")
        if isinstance(dataset, dict):
            metrics: dict[str, float] = {}
            for name, part in dataset.items():
                metrics.update(self.evaluate(part, ignore_keys, f"{metric_key_prefix}_{name}"))
            return metrics
        start = time.time()
        modes = ("max", "act") if self.args.eval_halting == "both" else (self.args.eval_halting,)
        model = self.model
        was_training = model.training
        model.eval()
        metrics = {}
        context = self.ema.applied_to(model) if self.ema is not None else _nullcontext()
        with context:
            for mode in modes:
                scores = self._solve_and_score(dataset, mode)
                suffix = "" if len(modes) == 1 else f"_{mode}"
                for key, value in scores.items():
                    metrics[f"{metric_key_prefix}_{key}{suffix}"] = value
        model.train(was_training)
        metrics[f"{metric_key_prefix}_runtime"] = round(time.time() - start, 4)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    @torch.no_grad()
    def _solve_and_score(self, dataset: Any, halting: str) -> dict[str, float]:
        """Exact and token accuracy and mean steps over this rank's share, summed across ranks."""
        rows = dataset.with_format("torch", columns=list(MODEL_COLUMNS))
        indices = list(range(self.args.process_index, len(rows), self.args.world_size))
        batch_size = self.args.per_device_eval_batch_size
        sums = torch.zeros(4, dtype=torch.float64)  # exact, token accuracy, steps, count
        for start in range(0, len(indices), batch_size):
            part = rows[indices[start:start + batch_size]]
            input_ids = torch.as_tensor(part["input_ids"]).long().to(self.args.device)
            labels = torch.as_tensor(part["labels"]).long().to(self.args.device)
            pids = torch.as_tensor(part["puzzle_identifiers"]).long().to(self.args.device)
            with self.autocast_smart_context_manager():
                out = self.model.solve(input_ids, puzzle_identifiers=pids, halting=halting,
                                       max_steps=self.args.eval_max_steps)
            valid = labels != IGNORE_INDEX
            correct = (out.predictions == labels) & valid
            counts = valid.sum(-1).clamp_min(1)
            sums += torch.tensor([
                float((correct.sum(-1) == valid.sum(-1)).sum()),
                float((correct.sum(-1).double() / counts).sum()),
                float(out.steps.sum()),
                float(len(labels)),
            ], dtype=torch.float64)
        sums = self.accelerator.reduce(sums.to(self.args.device), reduction="sum").cpu()
        count = max(float(sums[3]), 1.0)
        return {"exact_accuracy": float(sums[0]) / count, "token_accuracy": float(sums[1]) / count,
                "mean_steps": float(sums[2]) / count, "num_examples": int(sums[3])}

    # -- saving and resuming ---------------------------------------------------------------------

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Saved models carry the EMA weights (what the paper evaluates); never those of a diverged run."""
        self.check_finite()
        if state_dict is None and self.ema is not None:
            state_dict = self.ema.state_dict_for(self.model)
        super()._save(output_dir, state_dict=state_dict)

    def _save_checkpoint(self, model, trial) -> None:
        """The Trainer's checkpoint plus raw weights and carry, then the completion marker, then rotation.

        A kill at any point leaves either a complete checkpoint or a folder without the marker, which
        `--resume` skips; older checkpoints are deleted only once the new one is complete."""
        self.check_finite()
        run_dir = self._get_output_dir(trial)
        output_dir = os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        step, rank = self.state.global_step, self.args.process_index
        if self.args.should_save and os.path.isdir(output_dir):
            shutil.rmtree(output_dir)  # a partial folder of a killed run (or one this run replaces)
        self.accelerator.wait_for_everyone()
        fault_point("save-start", step, rank)
        save_total_limit, self.args.save_total_limit = self.args.save_total_limit, None
        try:
            super()._save_checkpoint(model, trial)  # without its rotation: the new checkpoint is not complete yet
        finally:
            self.args.save_total_limit = save_total_limit
        fault_point("save-trainer", step, rank)
        os.makedirs(output_dir, exist_ok=True)
        if self.args.should_save:
            raw = {name: tensor.detach().contiguous().cpu() for name, tensor in self.model.state_dict().items()}
            _atomic_save(lambda path: save_file(raw, path), os.path.join(output_dir, RAW_WEIGHTS_NAME))
        fault_point("save-raw", step, rank)
        carry = {
            "carries": [None if c is None else c.to("cpu") for c in self.carries],
            "micro_step": self._micro_step,
            "stream": None if self.stream is None else self.stream.state_dict(),
            "refill": None if self.refill is None else self.refill.state_dict(),
            "generator": self.generator.get_state(),
            "samples_started": self.samples_started,
            "samples_finished": self.samples_finished,
            "metric_sums": self._metric_sums,
        }
        path = os.path.join(output_dir, CARRY_NAME.format(rank=rank))
        _atomic_save(lambda p: torch.save(carry, p), path)
        fault_point("save-carry", step, rank)
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            write_text_atomically(os.path.join(output_dir, COMPLETE_MARKER), json.dumps({"global_step": step}))
            fault_point("save-marker", step, rank)
            rotate_complete_checkpoints(run_dir, self.args.save_total_limit, self.state.best_model_checkpoint)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        """model.safetensors holds the EMA weights: load them as the EMA, then the raw weights."""
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        target = self.model if model is None else model
        if self.ema is not None:
            self.ema = EMAWeights(target, self.ema.decay)  # shadow <- the checkpoint's EMA weights
        raw_path = os.path.join(resume_from_checkpoint, RAW_WEIGHTS_NAME)
        if os.path.exists(raw_path):
            target.load_state_dict(load_file(raw_path), strict=True)
        carry_path = os.path.join(resume_from_checkpoint, CARRY_NAME.format(rank=self.args.process_index))
        if not os.path.exists(carry_path):
            raise FileNotFoundError(f"{carry_path} is missing: cannot resume the deep-supervision carry exactly")
        carry = torch.load(carry_path, weights_only=False)
        self._check_batch_layout(resume_from_checkpoint, carry["carries"])
        self.carries = [None if c is None else c.to(self.args.device) for c in carry["carries"]]
        self._micro_step = carry["micro_step"]
        if carry["stream"] is not None:
            if self.stream is None:
                self.stream = self._new_stream()
            self.stream.load_state_dict(carry["stream"])
        self.refill = None  # rebuilt on the next step from the restored stream and the rows it had queued
        self._refill_state = carry.get("refill")
        self.generator.set_state(carry["generator"])
        self.samples_started = carry["samples_started"]
        self.samples_finished = carry["samples_finished"]
        self._metric_sums = carry["metric_sums"]

    def _reload_finished_run(self, checkpoint: str) -> TrainOutput | None:
        """A checkpoint at the last step only needs loading: the Trainer would take one step more (it checks
        for the end after a step), so a run killed after its last checkpoint would end one step too far."""
        state = TrainerState.load_from_json(os.path.join(checkpoint, TRAINER_STATE_NAME))
        last_step = self.args.max_steps if self.args.max_steps > 0 else state.max_steps
        if state.global_step < last_step:
            return None
        self._load_from_checkpoint(checkpoint)
        self.state = state
        if self.args.should_save:  # a kill between its marker and the rotation left older checkpoints
            rotate_complete_checkpoints(self.args.output_dir, self.args.save_total_limit, state.best_model_checkpoint)
        return TrainOutput(state.global_step, 0.0, {"train_runtime": 0.0, "epoch": state.epoch})

    def _check_batch_layout(self, checkpoint: str, carries: list[TRMState | None]) -> None:
        """The carry holds one refining puzzle per slot: it only continues on the same slots."""
        ranks = len([name for name in os.listdir(checkpoint) if name.startswith("trm_carry_rank")])
        here = (self.args.world_size, self.args.gradient_accumulation_steps, [self.args.per_device_train_batch_size])
        saved = (ranks, len(carries), sorted({c.batch_size for c in carries if c is not None}) or here[2])
        if saved != here:
            raise ValueError(
                f"{checkpoint} was trained on {saved[0]} process(es) x {saved[1]} accumulation step(s) x {saved[2]} "
                f"samples; this run has {here[0]} x {here[1]} x {here[2]}: resume with the same global batch size, "
                f"number of processes and gradient accumulation (the carry holds one puzzle per slot)")

    def push_to_hub(self, commit_message: str | None = "End of training", blocking: bool = True,
                    token: str | None = None, revision: str | None = None, private: bool | None = None, **kwargs: Any):
        """Push the EMA model with this project's card (not the Trainer's generic card or raw weights)."""
        from ..publish import push_trainer_output

        return push_trainer_output(self, kwargs.pop("repo_id", None), kwargs.pop("results", None),
                                   recipe=kwargs.pop("recipe", None), training=kwargs.pop("training", None),
                                   private=private, revision=revision, commit_message=commit_message, token=token)

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any):
        if resume_from_checkpoint is True:
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                partial = [os.path.basename(path) for _, path, done in checkpoint_folders(self.args.output_dir)
                           if not done]
                found = (f"; {', '.join(partial)} lack the completion marker {COMPLETE_MARKER} (the run was stopped "
                         f"while writing them), so they cannot be resumed" if partial else "")
                raise ValueError(f"no complete checkpoint in {self.args.output_dir} to resume from{found}")
        elif isinstance(resume_from_checkpoint, str) and not is_complete_checkpoint(resume_from_checkpoint):
            raise ValueError(f"{resume_from_checkpoint} is not a complete checkpoint (no {COMPLETE_MARKER}: it was "
                             f"not fully written); resume from {last_complete_checkpoint(self.args.output_dir)}")
        if isinstance(resume_from_checkpoint, str):
            finished = self._reload_finished_run(resume_from_checkpoint)
            if finished is not None:
                return finished
        try:
            output = super().train(resume_from_checkpoint, *args, **kwargs)
            self.check_finite()
            return output
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            raise TrainingOutOfMemoryError(
                f"out of memory with a per-device batch of {self.args.per_device_train_batch_size} samples "
                f"({str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}). Lower the "
                f"per-device batch (--per-device-train-batch-size = --global-batch-size / processes / accumulation "
                f"steps): raise --gradient-accumulation-steps to keep the global batch, or lower --global-batch-size. "
                f"The last complete checkpoint is untouched: "
                f"{last_complete_checkpoint(self.args.output_dir) or 'none was written yet'}"
            ) from error


class TrainingOutOfMemoryError(MemoryError):
    """Training ran out of (host or device) memory; the message says how to make the batch fit."""


def is_out_of_memory(error: BaseException) -> bool:
    """Python/NumPy/Arrow `MemoryError`, torch's OutOfMemoryError, or the CPU allocator's RuntimeError."""
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


def is_complete_checkpoint(path: str) -> bool:
    return os.path.isfile(os.path.join(path, COMPLETE_MARKER))


def checkpoint_folders(output_dir: str) -> list[tuple[int, str, bool]]:
    """(step, path, complete) of every `checkpoint-N` folder, oldest step first."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        path = os.path.join(output_dir, name)
        number = name[len(PREFIX_CHECKPOINT_DIR) + 1:]
        if name.startswith(f"{PREFIX_CHECKPOINT_DIR}-") and number.isdigit() and os.path.isdir(path):
            found.append((int(number), path, is_complete_checkpoint(path)))
    return sorted(found)


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest `checkpoint-N` folder that finished writing (has the completion marker)."""
    complete = [path for _, path, done in checkpoint_folders(output_dir) if done]
    return complete[-1] if complete else None


def rotate_complete_checkpoints(output_dir: str, save_total_limit: int | None, keep: str | None = None) -> None:
    """Keep the newest `save_total_limit` complete checkpoints (and `keep`, the best one); delete older ones
    and partial folders older than the newest complete one (left by killed runs). The Trainer's own rotation
    counts partial folders as checkpoints and orders by mtime, so it could delete the last complete one."""
    if not save_total_limit or save_total_limit <= 0:
        return
    folders = checkpoint_folders(output_dir)
    complete = [path for _, path, done in folders if done]
    newest = max(step for step, _, done in folders if done) if complete else -1
    protected = {os.path.normpath(path) for path in complete[-save_total_limit:] + ([keep] if keep else [])}
    for step, path, done in folders:
        if (done or step < newest) and os.path.normpath(path) not in protected:
            shutil.rmtree(path, ignore_errors=True)


def _atomic_save(write, path: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    write(tmp)
    os.replace(tmp, path)


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
