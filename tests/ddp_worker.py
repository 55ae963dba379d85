"""Run by `torchrun --nproc_per_node 2` from test_trainer_ddp.py: a few TRMTrainer steps under CPU DDP."""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
torch.set_num_threads(1)

from modeling_trm.training.trainer import TRMTrainer, TRMTrainingArguments  # noqa: E402
from test_trainer import random_dataset  # noqa: E402
from tiny_models import tiny_model  # noqa: E402


def main(out_dir: str) -> None:
    args = TRMTrainingArguments(
        output_dir=os.path.join(out_dir, "run"), per_device_train_batch_size=4, max_steps=3, report_to=[],
        logging_steps=1, save_strategy="no", warmup_steps=1, disable_tqdm=True, auto_bf16=False, seed=5,
        ddp_backend="gloo", learning_rate=1e-3, use_cpu=True,
    )
    trainer = TRMTrainer(model=tiny_model(seed=3), args=args, train_dataset=random_dataset(rows=40))
    trainer.train()
    rank = trainer.args.process_index
    state = {name: tensor.detach().clone() for name, tensor in trainer.model.state_dict().items()}
    torch.save({"weights": state, "world_size": trainer.args.world_size,
                "rows": trainer.carries[0].input_ids.clone(), "started": trainer.samples_started,
                "logs": trainer.state.log_history},
               os.path.join(out_dir, f"rank{rank}.pt"))


if __name__ == "__main__":
    main(sys.argv[1])
