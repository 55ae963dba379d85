"""A 2-process CPU DDP run (torchrun, gloo): both ranks end with identical weights."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import torch


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_ddp_keeps_ranks_identical(tmp_path) -> None:
    worker = os.path.join(os.path.dirname(__file__), "ddp_worker.py")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), worker, str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TMPDIR": str(tmp_path)}  # torchelastic_*
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    assert rank0["world_size"] == rank1["world_size"] == 2
    for name, tensor in rank0["weights"].items():
        assert torch.equal(tensor, rank1["weights"][name]), name
    # each rank trained on its own shard of the data; the logged count sums both ranks
    assert not torch.equal(rank0["rows"], rank1["rows"])
    assert rank0["started"] == rank1["started"] == 4
    assert any("samples_started" in entry and entry["samples_started"] == 8 for entry in rank0["logs"])
