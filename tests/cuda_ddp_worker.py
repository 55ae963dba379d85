"""Run by `torchrun --nproc_per_node 2` from test_cuda.py: one DDP training step over NCCL, one GPU per rank."""

import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, os.path.dirname(__file__))

from tiny_models import random_batch, tiny_model  # noqa: E402


def main(out_dir: str) -> None:
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl")
    device = torch.device("cuda", local_rank)
    model = tiny_model(seed=3, hidden_size=64).to(device).train()  # same seed: the same initial weights
    initial = {name: tensor.detach().clone().cpu() for name, tensor in model.state_dict().items()}
    ddp = DistributedDataParallel(model, device_ids=[local_rank], find_unused_parameters=True)
    optimizer = torch.optim.AdamW(ddp.parameters(), lr=1e-3, fused=True)
    ids, labels = random_batch(8, seed=10 + rank).to(device), random_batch(8, seed=20 + rank).to(device)
    losses = []
    for step in range(2):  # different data per rank; gradients are averaged, so the replicas stay equal
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = ddp(ids, labels=labels, generator=torch.Generator(device=device).manual_seed(step))
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(out.loss))
    torch.save({"weights": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
                "initial": initial, "losses": losses, "backend": dist.get_backend()},
               os.path.join(out_dir, f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
