"""The matmul peak of this machine, measured in the same run as the model timings.

TRM's big matmuls are the channel SwiGLU projections on (batch * L) rows: [B*97, 512] x [512, 1536]
for Sudoku. Their best achieved GFLOP/s is the reference that `peak_fraction` divides by: a model
step cannot beat the matmuls it is made of, and elementwise work, casts and copies only lower it.
Only the dtypes the device runs natively are measured (`modeling_trm.dtypes.native_dtype`): on a CPU
without bf16 units a bf16 matmul is emulated (about 2 GFLOP/s on an AVX2 core), and measuring it
alone would take minutes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .measure import time_runs

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def matmul_gflops(rows: int, inner: int, cols: int, dtype: str, repeats: int = 5,
                  device: str = "cpu") -> tuple[float, float]:
    """Best and median GFLOP/s of `x @ w` with x [rows, inner], w [inner, cols] in `dtype` (output reused)."""
    torch_dtype = DTYPES[dtype]
    generator = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(rows, inner, generator=generator, device=device).to(torch_dtype)
    w = torch.randn(inner, cols, generator=generator, device=device).to(torch_dtype)
    out = torch.empty(rows, cols, dtype=torch_dtype, device=device)
    cuda = torch.device(device).type == "cuda"
    calls = 20 if cuda else 4  # several calls per timed run, so one run is long enough to time reliably

    def run() -> None:
        for _ in range(calls):
            torch.mm(x, w, out=out)
        if cuda:
            torch.cuda.synchronize(device)

    timing = time_runs(run, repeats=repeats, warmup=1)
    flops = 2.0 * rows * inner * cols * calls
    return flops / min(timing.wall) / 1e9, flops / timing.median / 1e9


def measure_peaks(batch_rows: int = 32 * 97, repeats: int = 5, dtypes: Sequence[str] = tuple(DTYPES),
                  device: str = "cpu") -> dict[str, dict[str, float]]:
    """Peak over the shapes TRM uses most, per dtype: {"bf16": {"gflops_per_s": ..., "shape": ...}, ...}."""
    shapes = [(batch_rows, 512, 1536), (batch_rows, 512, 3072), (batch_rows, 1536, 512)]
    peaks: dict[str, dict[str, float]] = {}
    for dtype in dtypes:
        best = None
        for shape in shapes:
            top, median = matmul_gflops(*shape, dtype=dtype, repeats=repeats, device=device)
            if best is None or top > best["gflops_per_s"]:
                best = {"gflops_per_s": round(top, 1), "median_gflops_per_s": round(median, 1),
                        "shape": f"[{shape[0]}, {shape[1]}] x [{shape[1]}, {shape[2]}]"}
        peaks[dtype] = best
    return peaks
