"""The compute dtype a device runs natively: bf16 where it has bf16 units, fp32 elsewhere.

bf16 autocast only pays where the hardware multiplies bf16: CUDA GPUs that support it (Ampere and
later), and CPUs with AVX512-BF16 or AMX (Intel Cooper Lake, Sapphire Rapids and later; AMD Zen 4
and later). On other CPUs (AVX2-only or AVX-512 without BF16) torch emulates bf16 matmuls through
fp32 conversions: measured 2 GFLOP/s against fp32's 30 GFLOP/s per thread on an AVX2 AMD EPYC, so a
bf16 run there is about 15x slower than fp32, not faster. `trm train` (auto bf16), `trm eval
--dtype auto` and `trm bench` all pick the dtype through `native_dtype`.
"""

from __future__ import annotations

import torch

NO_BF16_UNITS = ("this CPU has no bf16 units (neither AVX512-BF16 nor AMX): torch emulates bf16 matmuls "
                 "there at a small fraction of fp32's speed")


def cpu_supports_bf16() -> bool:
    """bf16 autocast pays off on CPUs with bf16 matrix units (AVX512-BF16 / AMX)."""
    checker = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool((checker and checker()) or (amx and amx()))


def native_dtype(device: str | torch.device = "cpu") -> str:
    """`"bf16"` on a CUDA device with bf16 support and on a CPU with bf16 units, else `"fp32"`."""
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_available() and cuda_supports_bf16() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_supports_bf16() else "fp32"
    return "fp32"  # MPS, XPU, ...: not measured here; fp32 is always correct


def cuda_supports_bf16() -> bool:
    """bf16 in hardware (compute capability 8.0 and later, ROCm), not torch's emulation on older GPUs."""
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch before 2.3 has no `including_emulation` and counts hardware support only
        return bool(torch.cuda.is_bf16_supported())


def bf16_skip_reason(device: str | torch.device = "cpu") -> str | None:
    """Why bf16 is not run on `device` (None where it is the native dtype)."""
    if native_dtype(device) == "bf16":
        return None
    device = torch.device(device)
    if device.type == "cpu":
        return NO_BF16_UNITS
    if device.type == "cuda":
        return "this GPU has no bf16 hardware (compute capability below 8.0; torch.cuda.is_bf16_supported is False)"
    return f"bf16 is not measured on {device.type} devices"


__all__ = ["NO_BF16_UNITS", "bf16_skip_reason", "cpu_supports_bf16", "cuda_supports_bf16", "native_dtype"]
