#!/usr/bin/env bash
# The device check of issue 24 (item 5), for one machine with one or more CUDA GPUs; under 8 minutes:
#   1. the CUDA tests: python -m pytest -m cuda tests -q -n 0 (tests/test_cuda.py);
#   2. trm bench --gpu: Sudoku-MLP and Sudoku-Att training steps at batch 768 in bf16, samples/s,
#      % of this GPU's measured bf16 matmul peak, peak memory (torch.cuda.max_memory_allocated);
#   3. STEPS (300) steps of the sudoku-extreme-mlp recipe on N (1000) generated 9x9 puzzles: the loss
#      curve, s/step, and the paper run's projected duration (the recipe's total steps x s/step).
# Each part runs under its own time limit; a failing part does not stop the others. The run ends with
# one table; the exit status is non-zero when a part failed.
#
#   bash benchmarks/gpu_check.sh                   # from the repository root, with the package installed
#   STEPS=300 N=1000 PYTHON=python WORK=/tmp/check bash benchmarks/gpu_check.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python}
STEPS=${STEPS:-300}
N=${N:-1000}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/trm-gpu-check.XXXXXX")}
mkdir -p "$WORK"
if command -v trm >/dev/null 2>&1; then
    TRM=(trm)
else
    TRM=("$PYTHON" -m modeling_trm.commands)
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
START=$SECONDS

# run_part NAME LIMIT_S COMMAND...: output shown and kept in $WORK/NAME.out; "rc seconds" in $WORK/NAME.status
run_part() {
    local name=$1 limit=$2 begin=$SECONDS rc
    shift 2
    echo "== [$((SECONDS - START)) s] $name (limit ${limit} s): $*"
    set +e
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$WORK/$name.out"
    rc=${PIPESTATUS[0]}
    set -e
    echo "$rc $((SECONDS - begin))" >"$WORK/$name.status"
}

run_part tests 150 "$PYTHON" -m pytest -m cuda tests -q -n 0 -rs -p no:cacheprovider
run_part bench 90 "${TRM[@]}" bench --gpu --json "$WORK/bench.json"
run_part generate 60 "${TRM[@]}" data generate sudoku --size 9 --n "$N" --out "$WORK/csv" --no-progress --overwrite
if [[ $(cut -d' ' -f1 "$WORK/generate.status") == 0 ]]; then
    run_part build 45 "${TRM[@]}" data build sudoku-extreme --csv-dir "$WORK/csv" --out "$WORK/data" --no-progress --overwrite
fi
if [[ -f $WORK/build.status && $(cut -d' ' -f1 "$WORK/build.status") == 0 ]]; then
    run_part train 120 "${TRM[@]}" train --recipe sudoku-extreme-mlp --dataset "$WORK/data" --max-steps "$STEPS" \
        --logging-steps 25 --output-dir "$WORK/train"
fi

"$PYTHON" - "$WORK" "$STEPS" "$N" "$((SECONDS - START))" <<'PY'
"""One table from the parts' outputs."""
import json
import math
import re
import sys
from pathlib import Path

from modeling_trm.recipes_io import load_recipe

work, steps, puzzles, total = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows, failed = [], False


def status(name):
    path = work / f"{name}.status"
    if not path.exists():
        return "not run", ""
    rc, seconds = path.read_text().split()
    return ("ok" if rc == "0" else ("TIMEOUT" if rc in ("124", "137") else f"FAILED rc {rc}")), f"{seconds} s"


def last_line(name, pattern):
    path = work / f"{name}.out"
    lines = [line for line in path.read_text(errors="replace").splitlines() if re.search(pattern, line)] \
        if path.exists() else []
    return lines[-1].strip() if lines else ""


state, seconds = status("tests")
rows.append(("CUDA tests (pytest -m cuda)", state, seconds, last_line("tests", r"passed|failed|skipped|error")))
state, seconds = status("bench")
bench = json.loads((work / "bench.json").read_text()) if (work / "bench.json").exists() else None
if bench is None:
    rows.append(("trm bench --gpu", state, seconds, ""))
else:
    peak = bench["matmul_peak"]
    gpu = bench["machine"].get("gpu") or "GPU"
    rows.append((f"bf16 matmul peak, {gpu}", state, seconds,
                 ", ".join(f"{d} {p['gflops_per_s'] / 1000:.0f} TFLOP/s" for d, p in peak.items())))
    for r in bench["records"]:
        rows.append((f"train step {r['preset']} b{r['batch_size']} {r['dtype']}", state, f"{r['seconds_median']:.3f} s/step",
                     f"{r['samples_per_s']:.0f} samples/s, {100 * r['peak_fraction']:.1f}% of the {r['dtype']} matmul "
                     f"peak, peak memory {r.get('peak_cuda_memory_mb') or 0:.0f} MiB"))
for name, what in (("generate", f"trm data generate sudoku --size 9 --n {puzzles}"),
                   ("build", "trm data build sudoku-extreme")):
    rows.append((what, *status(name), ""))
state, seconds = status("train")
trainer_state = work / "train" / "trainer_state.json"
if trainer_state.exists():
    history = json.loads(trainer_state.read_text())["log_history"]
    curve = ", ".join(f"{e['step']}: {e['loss']:.3f}" for e in history if "loss" in e)
    runtime = next((e["train_runtime"] for e in reversed(history) if "train_runtime" in e), None)
    done = max((e.get("step", 0) for e in history), default=0) or steps
    rows.append((f"sudoku-extreme-mlp, {done} steps: loss", state, seconds, curve))
    if runtime:
        per_step = runtime / done
        recipe = load_recipe("sudoku-extreme-mlp")
        training, data = recipe["training"], recipe["data"]["args"]
        total_steps = math.ceil(training["epochs"] * data["subsample_size"] / training["global_batch_size"])
        rows.append(("s/step (train_runtime / steps, first step included)", "", "", f"{per_step:.3f}"))
        rows.append(("paper run projected (recipe's steps x s/step)", "", "",
                     f"{total_steps:,} steps x {per_step:.3f} s = {total_steps * per_step / 3600:.1f} h of training steps "
                     f"(periodic evaluations not included; reference: 1 L40S, 18-36 h)"))
else:
    rows.append(("sudoku-extreme-mlp training", state, seconds, last_line("train", r"Error|error") if state != "not run" else ""))
failed = any(r[1] not in ("ok", "") for r in rows)

print(f"\n| part | status | time | result |\n|---|---|---|---|")
for row in rows:
    print("| " + " | ".join(str(cell).replace("|", "/") for cell in row) + " |")
print(f"\ntotal {total} s; outputs in {work}")
sys.exit(1 if failed else 0)
PY
