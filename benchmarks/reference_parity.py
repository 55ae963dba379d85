"""Parity of converted reference checkpoints at the published sizes, against the test re-derivation.

Builds a synthetic reference-layout checkpoint with the real shapes of a preset (TRM_FACTS.md §7),
converts it with `modeling_trm.convert`, runs both the converted model and the independent
re-derivation of `tests/reference_rederivation.py` for N supervision steps in evaluation mode (fp32,
carried state) and prints the max abs difference of logits and q_halt logits per step. With
`--fp64-check` it also prints how far the fp32 re-derivation is from itself in fp64, i.e. how much of
the difference is plain fp32 rounding.

    python benchmarks/reference_parity.py --preset sudoku-mlp --steps 16
    python benchmarks/reference_parity.py --preset maze --steps 1 --batch 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from reference_rederivation import ReferenceFunction, ReferenceRun, random_reference_state_dict  # noqa: E402

from modeling_trm.configuration_trm import PRESETS  # noqa: E402
from modeling_trm.convert import load_reference_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="sudoku-mlp", choices=sorted(PRESETS))
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--puzzle-ids", type=int, default=4)
    parser.add_argument("--layer-gain", type=float, default=0.3,
                        help="scale of the random layer weights; 1.0 makes the recursion chaotic (see tests)")
    parser.add_argument("--fp64-check", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    preset = PRESETS[args.preset]
    sd = random_reference_state_dict(preset["mixer"], hidden=512, vocab=preset["vocab_size"], seq_len=preset["seq_len"],
                                     num_puzzle_ids=args.puzzle_ids, seed=0, layer_gain=args.layer_gain)
    model = load_reference_model(sd, args.preset)
    cfg = model.config
    run = ReferenceRun(num_heads=8, H_cycles=cfg.H_cycles, L_cycles=cfg.L_cycles, halt_max_steps=cfg.halt_max_steps,
                       pos_encodings=cfg.pos_encodings)
    print(f"{args.preset}: {cfg.mixer}/{cfg.pos_encodings}, D {cfg.hidden_size}, L {cfg.total_seq_len}, "
          f"T {cfg.H_cycles}, n {cfg.L_cycles}, {model.num_reference_parameters():,} parameters, "
          f"batch {args.batch}, layer gain {args.layer_gain}")

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (args.batch, cfg.seq_len), generator=g)
    pid = torch.randint(0, args.puzzle_ids, (args.batch,), generator=g)
    inputs = [(ids, pid)] * args.steps

    start = time.perf_counter()
    expected = ReferenceFunction(sd, run).rollout(inputs)
    rederivation_s = time.perf_counter() - start
    exact = ReferenceFunction(sd, run, torch.float64).rollout(inputs) if args.fp64_check else None

    start = time.perf_counter()
    state, worst = None, [0.0, 0.0]
    with torch.no_grad():
        for step, (ref_logits, ref_q) in enumerate(expected, 1):
            out = model(ids, puzzle_identifiers=pid, state=state)
            state = out.state
            d_logits = (out.logits - ref_logits).abs().max().item()
            d_q = (out.q_halt_logits - ref_q).abs().max().item()
            worst = [max(worst[0], d_logits), max(worst[1], d_q)]
            line = f"step {step:2d}: logits {d_logits:.2e}  q_halt {d_q:.2e}"
            if exact is not None:
                line += f"  | fp32 re-derivation vs fp64: logits {(ref_logits.double() - exact[step - 1][0]).abs().max():.2e}"
            print(line, flush=True)
    model_s = time.perf_counter() - start
    print(f"max abs diff over {args.steps} steps: logits {worst[0]:.2e}, q_halt {worst[1]:.2e} "
          f"(re-derivation {rederivation_s:.1f} s, model {model_s:.1f} s)")


if __name__ == "__main__":
    main()
