"""Peak memory of converting and loading an ARC-size reference checkpoint (issue 23, lean memory).

    python -m benchmarks.convert_memory [--rows 876406] [--work DIR] [--keep]

The published ARC checkpoints are 1.8-2.5 GB, almost all of it the puzzle-embedding table
(876,406 x 512 fp32 for ARC-AGI-1). This writes a synthetic reference checkpoint of that shape
(the ARC preset's network, random values, with its `all_config.yaml`), then runs, each in a fresh
process so its peak RSS is its own: `trm convert-reference` on it, and `AutoModel.from_pretrained`
of the result. It prints one table: file size, peak RSS, and their ratio (target: <= 1.5).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARC_AGI_1_PUZZLE_IDS = 876_406
TARGET_RATIO = 1.5

_MAKE = """
import sys, torch, yaml
from modeling_trm import TRMConfig, TRMForGridReasoning
from modeling_trm.convert import export_reference_state_dict
rows, folder = int(sys.argv[1]), sys.argv[2]
config = TRMConfig.from_preset("arc", num_puzzle_identifiers=1)
state = export_reference_state_dict(TRMForGridReasoning(config))
generator = torch.Generator().manual_seed(0)
state["_orig_mod.model.inner.puzzle_emb.weights"] = torch.randn(rows, config.hidden_size, generator=generator)
torch.save(state, folder + "/step_1")
arch = dict(name="recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1",
            loss=dict(name="losses@ACTLossHead", loss_type="stablemax_cross_entropy"),
            H_cycles=config.H_cycles, L_cycles=config.L_cycles, H_layers=0, L_layers=config.num_layers,
            hidden_size=config.hidden_size, num_heads=config.num_heads, expansion=config.expansion,
            puzzle_emb_ndim=config.hidden_size, puzzle_emb_len=config.puzzle_emb_len, pos_encodings="rope",
            forward_dtype="bfloat16", mlp_t=False, no_ACT_continue=True, halt_max_steps=config.halt_max_steps,
            halt_exploration_prob=config.halt_exploration_prob)
with open(folder + "/all_config.yaml", "w") as handle:
    yaml.safe_dump(dict(arch=arch, data_paths=["data/arc1concept-aug-1000"], global_batch_size=768), handle)
"""

# Each probe prints its own peak RSS (ru_maxrss, KiB on Linux) as the last line.
_PEAK = "\nimport resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
_IMPORTS = "import torch, transformers, modeling_trm.convert, modeling_trm.modeling_trm"
_CONVERT = _IMPORTS + """
import sys
from modeling_trm.convert import convert_reference_checkpoint
convert_reference_checkpoint(sys.argv[1], sys.argv[2])
"""
_LOAD = _IMPORTS + """
import sys
from transformers import AutoModel
model = AutoModel.from_pretrained(sys.argv[1])
assert model.puzzle_embedding.weight.shape[0] == int(sys.argv[2])
if sys.argv[3] == "read":  # touch every byte, as a full evaluation over all puzzle ids would
    print(sum(float(p.detach().amax()) for p in model.parameters()))  # a reduction: no copy
"""


def _peak_mb(code: str, *args: str) -> tuple[float, float]:
    """Run `code` in a fresh interpreter; (its peak RSS in MB, wall seconds)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code + _PEAK, *args], capture_output=True, text=True,
                          env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    if done.returncode != 0:
        raise SystemExit(f"probe failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return int(done.stdout.split()[-1]) / 1024, time.perf_counter() - started


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.iterdir() if p.suffix == ".safetensors"]
    return sum(p.stat().st_size for p in files) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.convert_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=ARC_AGI_1_PUZZLE_IDS, help="puzzle-embedding rows")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="trm-convert-memory-", dir=args.work))
    try:
        source = work / "run"
        source.mkdir()
        subprocess.run([sys.executable, "-c", _MAKE, str(args.rows), str(source)], check=True)
        baseline, _ = _peak_mb(_IMPORTS)
        checkpoint_mb = _size_mb(source / "step_1")
        convert_peak, convert_s = _peak_mb(_CONVERT, str(source / "step_1"), str(work / "converted"))
        folder_mb = _size_mb(work / "converted")
        load_peak, load_s = _peak_mb(_LOAD, str(work / "converted"), str(args.rows), "load")
        read_peak, read_s = _peak_mb(_LOAD, str(work / "converted"), str(args.rows), "read")
        shards = sorted(p.name for p in (work / "converted").glob("*.safetensors"))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    rows = [
        dict(step="trm convert-reference", input_mb=round(checkpoint_mb), peak_rss_mb=round(convert_peak),
             ratio=round(convert_peak / checkpoint_mb, 2), wall_s=round(convert_s, 1)),
        dict(step="AutoModel.from_pretrained", input_mb=round(folder_mb), peak_rss_mb=round(load_peak),
             ratio=round(load_peak / folder_mb, 2), wall_s=round(load_s, 1)),
        dict(step="  then read every weight", input_mb=round(folder_mb), peak_rss_mb=round(read_peak),
             ratio=round(read_peak / folder_mb, 2), wall_s=round(read_s, 1)),
    ]
    print(f"puzzle table {args.rows:,} x 512 fp32; imports alone: {baseline:.0f} MB peak RSS; "
          f"converted folder: {len(shards)} safetensors file(s)")
    print(f"{'step':<28}{'input MB':>10}{'peak RSS MB':>13}{'ratio':>7}{'wall s':>8}")
    for row in rows:
        print(f"{row['step']:<28}{row['input_mb']:>10}{row['peak_rss_mb']:>13}{row['ratio']:>7}{row['wall_s']:>8}")
    print(f"target: ratio <= {TARGET_RATIO}")
    if args.json is not None:
        args.json.write_text(json.dumps(dict(rows=rows, imports_peak_rss_mb=round(baseline), shards=shards), indent=1))
    return 0 if all(row["ratio"] <= TARGET_RATIO for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
