"""The options of the benchmark suite (`python -m benchmarks.run`, `trm bench`), apart from the suite itself.

Building this parser imports nothing heavy, so `trm bench --help` stays instant; `run.py` uses the same parser.
"""

from __future__ import annotations

import argparse

DESCRIPTION = ("TRM benchmark suite: training-step and `solve` throughput (also of a K-sample noisy solve), "
               "GFLOP/s, fraction of the matmul peak, memory.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="a smaller plan (under 2 minutes on 2 idle cores)")
    parser.add_argument("--json", default=None, help="write the records here (atomically)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: OMP_NUM_THREADS if set, else the automatic count of "
                             "modeling_trm/threads.py: CPUs usable and left idle by other processes)")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]: the GPU plan (Sudoku-MLP and "
                                                        "Sudoku-Att training steps at batch 768, bf16)")
    parser.add_argument("--gpu", action="store_const", const="cuda", dest="device", help="same as --device cuda")
    return parser
