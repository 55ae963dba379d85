"""Peak memory and time of the reference-compatible ARC build (issue 23 item 5: ARC-AGI-1 x 1000 within 4 GB).

    python -m benchmarks.arc_build_memory --input-file-prefix kaggle/combined/arc-agi [--num-aug 0 10 30]
        [--subsets training evaluation concept] [--test-set-name evaluation] [--stages layout full]
        [--work DIR] [--json PATH]

Each (stage, augmentations) point runs in a fresh single-threaded process, so its peak RSS
(`ru_maxrss`) is its own: stage `layout` writes the authors' folder (`write_reference_layout`), stage
`full` also imports it into our format (`build_arc_reference_compatible`, what `trm data build arc
--reference-compatible` runs). The table gives rows, peak RSS, wall time and the bytes written; the
last lines fit peak RSS and time linearly in the number of augmentations and extrapolate to 1000.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_GIB = 4.0
PAPER_NUM_AUG = 1000

_PROBE = """
import json, resource, sys, threading, time, warnings
peaks = {"RssAnon": 0, "RssFile": 0}
def sample():  # peaks of anonymous memory and of mapped file pages (ru_maxrss counts both)
    while True:
        with open("/proc/self/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in peaks:
                    peaks[key] = max(peaks[key], int(value.split()[0]))
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
import pyarrow
pyarrow.set_cpu_count(1); pyarrow.set_io_thread_count(1)
from modeling_trm.data.arc_reference_build import (ReferenceArcOptions, build_arc_reference_compatible,
                                                   write_reference_layout)
stage, prefix, num_aug, test_set, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
subsets = tuple(sys.argv[6:])
warnings.simplefilter("ignore")
started = time.perf_counter()
if stage == "layout":
    summary = write_reference_layout(ReferenceArcOptions(prefix, subsets, test_set, num_aug=num_aug), out)
    rows = summary.rows
else:
    dataset, _ = build_arc_reference_compatible(prefix, out, subsets=subsets, test_set_name=test_set, num_aug=num_aug)
    rows = {split: dataset[split].num_rows for split in dataset}
seconds = time.perf_counter() - started
time.sleep(0.05)
print(json.dumps({"rows": rows, "seconds": seconds, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "anon_kib": peaks["RssAnon"], "file_kib": peaks["RssFile"]}))
"""

_SINGLE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                        "NUMEXPR_NUM_THREADS", "RAYON_NUM_THREADS")}


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def measure(stage: str, prefix: str, num_aug: int, test_set: str, subsets: list[str], work: Path) -> dict:
    out = work / f"{stage}-{num_aug}"
    command = [sys.executable, "-c", _PROBE, stage, prefix, str(num_aug), test_set, str(out), *subsets]
    started = time.perf_counter()
    result = subprocess.run(command, check=False, capture_output=True, text=True, env={**os.environ, **_SINGLE_THREAD})
    if result.returncode != 0:
        raise RuntimeError(f"{stage} build with num_aug {num_aug} failed:\n{result.stderr[-3000:]}")
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    written = folder_bytes(out)
    shutil.rmtree(out)
    return {"stage": stage, "num_aug": num_aug, "rows": probe["rows"], "peak_rss_mib": probe["peak_kib"] / 1024,
            "peak_anon_mib": probe["anon_kib"] / 1024, "peak_file_mib": probe["file_kib"] / 1024,
            "build_seconds": probe["seconds"], "process_seconds": time.perf_counter() - started,
            "bytes_written": written}


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """(intercept, slope) of least squares."""
    n, mean_x, mean_y = len(xs), sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread if n > 1 and spread else 0.0
    return mean_y - slope * mean_x, slope


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input-file-prefix", default="kaggle/combined/arc-agi")
    parser.add_argument("--num-aug", type=int, nargs="+", default=[10, 30, 100],
                        help="augmentations per point; the fit uses the points above 0 (below ~5 augmentations the "
                             "row buffers are not yet all touched)")
    parser.add_argument("--subsets", nargs="+", default=["training", "evaluation", "concept"])
    parser.add_argument("--test-set-name", default="evaluation")
    parser.add_argument("--stages", nargs="+", choices=("layout", "full"), default=["layout", "full"])
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="arc-build-memory-", dir=args.work))
    points = []
    try:
        print(f"{'stage':<7} {'augs':>5} {'train rows':>11} {'test rows':>10} {'peak RSS':>10} {'anon':>10} "
              f"{'file':>10} {'wall':>8} {'written':>10}")
        for stage in args.stages:
            for num_aug in args.num_aug:
                point = measure(stage, args.input_file_prefix, num_aug, args.test_set_name, args.subsets, work)
                points.append(point)
                print(f"{stage:<7} {num_aug:>5} {point['rows']['train']:>11,} {point['rows']['test']:>10,} "
                      f"{point['peak_rss_mib']:>6,.0f} MiB {point['peak_anon_mib']:>6,.0f} MiB "
                      f"{point['peak_file_mib']:>6,.0f} MiB {point['build_seconds']:>7.1f}s "
                      f"{point['bytes_written'] / 2**20:>6,.0f} MiB", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    fits = {}
    for stage in args.stages:
        mine = [p for p in points if p["stage"] == stage and p["num_aug"] > 0]
        if len({p["num_aug"] for p in mine}) < 2:
            continue
        augs = [p["num_aug"] for p in mine]
        fit = {}
        for key in ("peak_rss_mib", "peak_anon_mib", "build_seconds"):
            at_zero, slope = linear_fit(augs, [p[key] for p in mine])
            fit[key] = {"at_0": at_zero, "per_aug": slope, f"at_{PAPER_NUM_AUG}": at_zero + slope * PAPER_NUM_AUG}
        fits[stage] = fit
        rss, anon = fit["peak_rss_mib"], fit["peak_anon_mib"]
        seconds = fit["build_seconds"][f"at_{PAPER_NUM_AUG}"]
        verdict = "within" if rss[f"at_{PAPER_NUM_AUG}"] / 1024 <= TARGET_GIB else "OVER"
        print(f"{stage}: peak RSS {rss['at_0']:,.0f} MiB + {rss['per_aug']:.2f} MiB per augmentation -> "
              f"{rss[f'at_{PAPER_NUM_AUG}']:,.0f} MiB at {PAPER_NUM_AUG} ({verdict} the {TARGET_GIB:g} GiB target; "
              f"anonymous: {anon['per_aug']:.2f} MiB per augmentation -> {anon[f'at_{PAPER_NUM_AUG}']:,.0f} MiB); "
              f"time ~{seconds / 60:.1f} min")
    if args.json is not None:
        args.json.write_text(json.dumps({"input_file_prefix": args.input_file_prefix, "subsets": args.subsets,
                                         "test_set_name": args.test_set_name, "points": points, "fits": fits},
                                        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
