"""Where the time of one training supervision step goes: torch.profiler's top ops, grouped.

    python -m benchmarks.profile_step --preset sudoku-mlp --batch-size 32 [--impl package|baseline] [--rows 25]

Runs two untimed steps, then profiles one (CPU, self time per op) and prints the profiler's table
and the share of matmuls, SiLU/multiply/add/norm (elementwise), copies/casts and the rest.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from modeling_trm import TRMConfig
from modeling_trm.dtypes import native_dtype

from .workloads import baseline_training_step, package_model, package_training_step

GROUPS = {
    "matmul": ("aten::mm", "aten::bmm", "aten::addmm", "aten::_scaled_dot_product", "mkldnn"),
    "copies and casts": ("aten::copy_", "aten::clone", "aten::_to_copy", "aten::cat", "aten::contiguous"),
    "elementwise": ("aten::silu", "aten::mul", "aten::add", "aten::sub", "aten::div", "aten::pow", "aten::rsqrt",
                    "aten::linalg_vector_norm", "aten::sum", "aten::mean", "aten::addcmul", "aten::where",
                    "aten::neg", "aten::lerp", "aten::sqrt", "aten::fill_", "aten::log", "aten::exp"),
}


def group_of(name: str) -> str:
    for group, prefixes in GROUPS.items():
        if name.startswith(prefixes):
            return group
    return "other"


def profile_training_step(preset: str, batch_size: int, implementation: str, dtype: str | None = None):
    dtype = dtype or native_dtype("cpu")  # bf16 only on a CPU with bf16 units: emulated bf16 is no profile of it
    config = TRMConfig.from_preset(preset)
    if implementation == "package":
        step = package_training_step(package_model(config), batch_size, dtype)
    elif implementation == "baseline":
        step = baseline_training_step(config, batch_size, dtype)
    else:
        raise ValueError(f"implementation must be 'package' or 'baseline', got {implementation!r}")
    step()
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    return prof


def grouped_shares(prof) -> dict[str, float]:
    """Self CPU seconds per group (matmul, elementwise, copies and casts, other)."""
    totals: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        totals[group_of(event.key)] += event.self_cpu_time_total / 1e6
    return dict(totals)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="sudoku-mlp")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--impl", default="package", choices=("package", "baseline"))
    parser.add_argument("--dtype", default=None, choices=("bf16", "fp32"),
                        help="default: the CPU's native dtype (bf16 with AVX512-BF16 / AMX, else fp32)")
    parser.add_argument("--rows", type=int, default=25)
    args = parser.parse_args(argv)
    args.dtype = args.dtype or native_dtype("cpu")
    prof = profile_training_step(args.preset, args.batch_size, args.impl, args.dtype)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    shares = grouped_shares(prof)
    total = sum(shares.values())
    print(f"{args.impl} {args.preset} b{args.batch_size} {args.dtype}, {torch.get_num_threads()} threads: "
          + ", ".join(f"{name} {seconds:.2f} s ({100 * seconds / total:.0f}%)"
                      for name, seconds in sorted(shares.items(), key=lambda kv: -kv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
