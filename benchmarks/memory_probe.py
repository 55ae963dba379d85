"""Peak RSS of training steps in a fresh process (the suite's own process keeps freed memory mapped).

    python -m benchmarks.memory_probe --preset sudoku-mlp --batch-size 64 --impl package [--dtype bf16|fp32]

Prints one JSON object: RSS after imports and model set-up, peak RSS over `--steps` training steps,
and their difference (activations, gradients, optimizer state, allocator slack). The dtype defaults to
the CPU's native one (`modeling_trm.dtypes.native_dtype`): bf16 with AVX512-BF16 / AMX, else fp32.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from modeling_trm.dtypes import native_dtype

from .measure import current_rss_mb, peak_rss_mb, reset_peak_rss


def probe(preset: str, batch_size: int, implementation: str, dtype: str, steps: int) -> dict[str, float | str | int]:
    from modeling_trm import TRMConfig

    from .workloads import baseline_training_step, package_model, package_training_step

    config = TRMConfig.from_preset(preset)
    if implementation == "package":
        step = package_training_step(package_model(config), batch_size, dtype)
    else:
        step = baseline_training_step(config, batch_size, dtype)
    ready = current_rss_mb()
    reset_peak_rss()
    for _ in range(steps):
        step()
    peak = peak_rss_mb()
    return {"preset": preset, "batch_size": batch_size, "implementation": implementation, "dtype": dtype,
            "steps": steps, "rss_ready_mb": round(ready, 1), "peak_rss_mb": round(peak, 1),
            "step_added_mb": round(peak - ready, 1)}


def probe_in_subprocess(preset: str, batch_size: int, implementation: str, dtype: str | None = None,
                        steps: int = 2, timeout: float = 600) -> dict:
    """Run `probe` in a fresh Python process (same interpreter, repository root as cwd); `dtype` None:
    the CPU's native dtype."""
    dtype = dtype or native_dtype("cpu")
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", f"{__package__}.memory_probe", "--preset", preset, "--batch-size", str(batch_size),
               "--impl", implementation, "--dtype", dtype, "--steps", str(steps)]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"memory probe {command} failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="sudoku-mlp")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--impl", default="package", choices=("package", "baseline"))
    parser.add_argument("--dtype", default=None, choices=("bf16", "fp32"),
                        help="default: the CPU's native dtype (bf16 with AVX512-BF16 / AMX, else fp32)")
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args(argv)
    dtype = args.dtype or native_dtype("cpu")
    print(json.dumps(probe(args.preset, args.batch_size, args.impl, dtype, args.steps)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
