"""Fault-injection hook for the fault tests: kill the training process at a named point, on purpose.

The tests (`pytest -m faults`) must land a `SIGKILL` at exact, reproducible places, including inside
checkpoint writing, which lasts milliseconds. The trainer calls `fault_point(name, step, rank)` at
those places; it does nothing unless the environment variable `TRM_FAULT_INJECT` names that point:

    TRM_FAULT_INJECT="kill:save-raw:8"        # SIGKILL this process at point save-raw of step 8
    TRM_FAULT_INJECT="kill:step:5:1"          # ... at the end of step 5, on rank 1 only

Points, in the order a run passes them: `step` (after the optimizer step and the EMA update),
`save-start` (checkpoint folder not yet written), `save-trainer` (the Trainer's own files written:
weights, optimizer, scheduler, RNG, trainer state), `save-raw` (raw weights written), `save-carry`
(this rank's carry written), `save-marker` (completion marker written, old checkpoints not yet
rotated). Never set it outside tests: the process dies without cleanup, as under a real kill.
"""

from __future__ import annotations

import os
import signal
import sys

FAULT_ENV = "TRM_FAULT_INJECT"
FAULT_POINTS = ("step", "save-start", "save-trainer", "save-raw", "save-carry", "save-marker")


def parse_fault(spec: str) -> tuple[str, int, int | None]:
    """`kill:POINT:STEP[:RANK]` -> (point, step, rank or None for every rank)."""
    parts = spec.split(":")
    if len(parts) not in (3, 4) or parts[0] != "kill" or parts[1] not in FAULT_POINTS:
        raise ValueError(f"{FAULT_ENV}={spec!r}: expected kill:POINT:STEP[:RANK] with POINT one of {FAULT_POINTS}")
    return parts[1], int(parts[2]), int(parts[3]) if len(parts) == 4 else None


def fault_point(point: str, step: int, rank: int) -> None:
    """SIGKILL this process if `TRM_FAULT_INJECT` names this point, step and rank."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    target_point, target_step, target_rank = parse_fault(spec)
    if (point, step) == (target_point, target_step) and target_rank in (None, rank):
        print(f"{FAULT_ENV}: killing rank {rank} at {point} of step {step}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["FAULT_ENV", "FAULT_POINTS", "fault_point", "parse_fault"]
