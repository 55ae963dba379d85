"""Fault-injection hook for the fault tests: kill the process at a named point, on purpose.

The tests (`pytest -m faults`) must land a `SIGKILL` at exact, reproducible places, including inside
checkpoint and dataset writing, which last milliseconds. The code calls `fault_point(name, ...)` at
those places; it does nothing unless the environment variable `TRM_FAULT_INJECT` names that point:

    TRM_FAULT_INJECT="kill:save-raw:8"        # SIGKILL this process at point save-raw of training step 8
    TRM_FAULT_INJECT="kill:step:5:1"          # ... at the end of step 5, on rank 1 only
    TRM_FAULT_INJECT="kill:staging-complete"  # ... when a finished output folder is about to be renamed

Training points, in the order a run passes them (they take a step, and optionally a rank): `step`
(after the optimizer step and the EMA update), `save-start` (checkpoint folder not yet written),
`save-trainer` (the Trainer's own files written: weights, optimizer, scheduler, RNG, trainer state),
`save-raw` (raw weights written), `save-carry` (this rank's carry written), `save-marker`
(completion marker written, old checkpoints not yet rotated).

Write points (`modeling_trm.data.atomic`, no step): `temp-file-written` (a temporary file is complete,
not yet renamed), `dataset-written` (the splits are in the staging folder, the metadata is not),
`staging-complete` (a staging folder is complete, not yet renamed), `old-moved-aside` (an old target
is moved aside, the new one not yet in). Never set it outside tests: the process dies without
cleanup, as under a real kill.
"""

from __future__ import annotations

import os
import signal
import sys

FAULT_ENV = "TRM_FAULT_INJECT"
FAULT_POINTS = ("step", "save-start", "save-trainer", "save-raw", "save-carry", "save-marker")
WRITE_POINTS = ("temp-file-written", "dataset-written", "staging-complete", "old-moved-aside")


def parse_fault(spec: str) -> tuple[str, int | None, int | None]:
    """`kill:POINT:STEP[:RANK]` (training points) or `kill:POINT` (write points) -> (point, step, rank).

    A missing step or rank is None: every step, every rank."""
    parts = spec.split(":")
    if parts[0] == "kill" and len(parts) == 2 and parts[1] in WRITE_POINTS:
        return parts[1], None, None
    if len(parts) not in (3, 4) or parts[0] != "kill" or parts[1] not in FAULT_POINTS:
        raise ValueError(f"{FAULT_ENV}={spec!r}: expected kill:POINT:STEP[:RANK] with POINT one of {FAULT_POINTS}, "
                         f"or kill:POINT with POINT one of {WRITE_POINTS}")
    return parts[1], int(parts[2]), int(parts[3]) if len(parts) == 4 else None


def fault_point(point: str, step: int | None = None, rank: int = 0) -> None:
    """SIGKILL this process if `TRM_FAULT_INJECT` names this point (and step and rank, where given)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    target_point, target_step, target_rank = parse_fault(spec)
    if point == target_point and target_step in (None, step) and target_rank in (None, rank):
        where = f"rank {rank} at {point} of step {step}" if step is not None else f"at {point}"
        print(f"{FAULT_ENV}: killing {where}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


__all__ = ["FAULT_ENV", "FAULT_POINTS", "WRITE_POINTS", "fault_point", "parse_fault"]
