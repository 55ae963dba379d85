"""A 2-process CPU DDP run (torchrun, gloo): both ranks end with identical weights.

The ranks run `ddp_worker.py` forked from the warm interpreter (`warm=True`, see warm_trm), under the real
torchrun: what is tested is the Trainer under DDP, not a fresh interpreter's start.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fault_runs import run, torchrun_command


def test_two_process_ddp_keeps_ranks_identical(tmp_path) -> None:
    worker = Path(__file__).with_name("ddp_worker.py")
    result = run(torchrun_command(2, str(worker), str(tmp_path)), warm=True)
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
