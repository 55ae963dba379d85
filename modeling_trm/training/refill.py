"""Refilling halted carry slots without reading the halted mask on the host.

The reference training loop gives every slot that halted at the previous step the next sample of the
stream, in slot order. Done directly, that needs the number of halted slots on the host before the step
(`halted.nonzero().cpu()`): a device-to-host sync at every step, which drains an accelerator's queue.

`RefillQueue` keeps exactly that order without the sync. Rows of the stream are moved to the device
ahead of time, as many as the coming steps could need (every slot halting at every step: one batch per
step); on the device, the i-th halted slot of a step takes queue row `consumed + i` (a cumulative sum of
the halted mask), and `consumed` advances by the number of halted slots, a device tensor. The host reads
`consumed` only when the trainer settles the queue: at logging and checkpoint steps, and when the rows
prefetched since the last settle would pass `max_bytes` (a memory bound; logging every few steps never
reaches it). Settling drops the used rows; the unused ones stay for the next steps, so the samples each
slot gets, and their order, are those the per-step sync handed out.
"""

from __future__ import annotations

from typing import Any

import torch

from .sample_stream import MODEL_COLUMNS

PREFETCH_BATCHES = 8  # rows read from the stream at a time, in batches (within the memory bound)


def narrowest_int_dtype(low: int, high: int) -> torch.dtype:
    """The smallest signed integer dtype holding [low, high] (queue rows are stored in it, cast on use)."""
    for dtype in (torch.int16, torch.int32):
        info = torch.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return dtype
    return torch.int64


class RefillQueue:
    """Stream rows on the device, handed to halted slots in stream order with no host sync per step."""

    def __init__(self, stream: Any, batch_size: int, device: torch.device | str,
                 dtypes: dict[str, torch.dtype] | None = None, max_bytes: float = 256 * 2**20) -> None:
        self.stream = stream
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.dtypes = dtypes or {}
        self.max_bytes = max_bytes
        self.rows: dict[str, torch.Tensor] | None = None  # queued rows, oldest first, on the device
        self.queued = 0  # rows in `rows` (host count)
        self.consumed = torch.zeros((), dtype=torch.int64, device=self.device)  # rows handed out since the settle
        self.steps_since_settle = 0  # an upper bound on `consumed` is batch_size times this

    # -- per step (no host read of a device value) ------------------------------------------------

    def next_batch(self, carry: Any | None, step: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The step's batch (halted slots hold their new sample, the others their own) and how many slots
        started a new sample (a device tensor). `carry` None: every slot takes one."""
        if self.stream_changes(step):
            self.settle(drop_unused=True)
        self._prefetch(step)
        size = self.batch_size
        if carry is None:
            halted = torch.ones(size, dtype=torch.bool, device=self.device)
        else:
            halted = carry.halted
        order = (self.consumed + torch.cumsum(halted, 0) - 1).clamp_(0, self.queued - 1)  # i-th halted -> row i
        batch = {}
        for name in MODEL_COLUMNS:
            fresh = self.rows[name][order].long()
            if carry is None:
                batch[name] = fresh
            else:
                mask = halted.view(-1, *([1] * (fresh.dim() - 1)))
                batch[name] = torch.where(mask, fresh, getattr(carry, name).long())
        started = halted.sum()
        self.consumed += started
        self.steps_since_settle += 1
        return batch, started

    def stream_changes(self, step: int) -> bool:
        """Whether the stream draws from another pool at `step` (a curriculum level change): rows queued
        earlier are then not the ones it would hand out."""
        changes = getattr(self.stream, "pool_changes_at", None)
        return bool(changes is not None and self.queued and changes(step))

    def _prefetch(self, step: int) -> None:
        """Queue rows until the next step finds a full batch whatever the earlier steps consumed."""
        worst_consumed = self.batch_size * self.steps_since_settle
        if self.rows is not None and self._bytes_per_row() * (worst_consumed + self.batch_size) > self.max_bytes \
                and self.steps_since_settle:
            self.settle()  # the memory bound: one host read, then the bound restarts from what was used
            worst_consumed = 0
        missing = worst_consumed + self.batch_size - self.queued
        if missing <= 0:
            return
        # a few batches at once: one stream read and one host-to-device copy every few steps, not every step
        missing = max(missing, min(PREFETCH_BATCHES * self.batch_size, self._rows_within(self.max_bytes) - self.queued))
        fresh = self.stream.take(missing, step)
        fresh = {name: fresh[name].to(self.dtypes.get(name, torch.int64)).to(self.device, non_blocking=True)
                 for name in MODEL_COLUMNS}
        self.rows = fresh if self.rows is None else {name: torch.cat((self.rows[name], fresh[name]))
                                                     for name in MODEL_COLUMNS}
        self.queued += missing

    def _rows_within(self, budget: float) -> int:
        """Rows that fit in `budget` bytes (before the first rows are queued: any number)."""
        return int(budget // self._bytes_per_row()) if self.rows is not None else PREFETCH_BATCHES * self.batch_size

    def _bytes_per_row(self) -> int:
        return sum(tensor[:1].numel() * tensor.element_size() for tensor in self.rows.values())

    # -- at logging and checkpoint steps (one host read) ---------------------------------------------

    def settle(self, drop_unused: bool = False) -> None:
        """Read how many queued rows were handed out, drop them (and, with `drop_unused`, the rest)."""
        if self.rows is None or not self.steps_since_settle and not drop_unused:
            return
        used = self.queued if drop_unused else int(self.consumed.item())
        self.rows = {name: rows[used:].clone() for name, rows in self.rows.items()}
        self.queued -= used
        self.consumed.zero_()
        self.steps_since_settle = 0
        if not self.queued:
            self.rows = None

    def state_dict(self) -> dict[str, Any]:
        """The rows still queued (after a settle), so that a resumed run hands out the same samples."""
        self.settle()
        return {"rows": None if self.rows is None else {name: rows.cpu() for name, rows in self.rows.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        rows = state.get("rows")
        self.rows = None if rows is None else {name: rows[name].to(self.device) for name in MODEL_COLUMNS}
        self.queued = 0 if rows is None else len(rows[MODEL_COLUMNS[0]])
        self.consumed.zero_()
        self.steps_since_settle = 0


__all__ = ["RefillQueue", "narrowest_int_dtype"]
