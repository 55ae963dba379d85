"""An independent re-derivation of the reference TRM forward pass, written from TRM_FACTS.md §1-§3 and §7.

It shares no code with `modeling_trm`: plain functions on a *reference-layout* state dict (keys of §7,
any wrapper prefix), every step spelled out the simple way: attention as softmax(q k^T / sqrt(d)) v,
RoPE by rotating the pairs (i, i + d/2) explicitly, the fused qkv and gate/up projections split by
slicing the weight rows, the mlp_t block as transpose -> residual -> norm over the sequence axis ->
transpose back, post-norm blocks, the 16-token prefix built by padding the puzzle vector to 16*D and
reshaping, the sqrt(D) scale on the whole sequence, the injections `z + (y + x)` and `y + z`, and the
evaluation-mode ACT carry (reset from H_init/L_init on halted slots, halt only at `halt_max_steps`).

`random_reference_state_dict` builds synthetic checkpoints with the exact §7 names and shapes.
The tests use both to check that a converted model computes the reference function.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

_PREFIXES = ("_orig_mod.", "model.", "inner.")


def _strip(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state_dict.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def swiglu_inner(width: int, expansion: float = 4.0) -> int:
    """§2: ceil_to_multiple(round(expansion * width * 2 / 3), 256)."""
    raw = round(expansion * width * 2 / 3)
    return -(-raw // 256) * 256


@dataclass(frozen=True)
class ReferenceRun:
    """What the shapes of a reference state dict do not say."""

    num_heads: int = 8
    H_cycles: int = 3
    L_cycles: int = 6
    halt_max_steps: int = 16
    puzzle_emb_len: int = 16
    rope_base: float = 10000.0
    pos_encodings: str = "rope"  # rope | none | learned; ignored by the mlp_t mixer except learned
    eps: float = 1e-5


class ReferenceFunction:
    """The reference model as a function of a §7 state dict (fp32 throughout)."""

    def __init__(self, state_dict: dict[str, torch.Tensor], run: ReferenceRun,
                 dtype: torch.dtype = torch.float32) -> None:
        sd = _strip(state_dict)
        self.run = run
        self.dtype = dtype  # fp32 as the parity target; fp64 to measure fp32 rounding itself
        self.w = {key: value.to(dtype) for key, value in sd.items()}
        # The initial states stay exactly what the checkpoint stores (bf16), widened when used.
        self.H_init = sd["H_init"].to(dtype)
        self.L_init = sd["L_init"].to(dtype)
        self.D = self.H_init.shape[0]
        self.num_layers = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"L_level\.layers\.(\d+)\.", k)))
        self.mixer = "mlp_t" if "L_level.layers.0.mlp_t.gate_up_proj.weight" in sd else "attention"

    # -- pieces ---------------------------------------------------------------------------------------

    def rms_norm(self, h: torch.Tensor) -> torch.Tensor:
        return h / torch.sqrt((h * h).mean(dim=-1, keepdim=True) + self.run.eps)

    @staticmethod
    def swiglu(h: torch.Tensor, gate_up: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
        inner = gate_up.shape[0] // 2
        gate = h @ gate_up[:inner].T  # first half of the fused rows: the gate
        up = h @ gate_up[inner:].T  # second half: "up"
        return (gate * torch.sigmoid(gate) * up) @ down.T

    def rope(self, t: torch.Tensor) -> torch.Tensor:
        """t: (B, H, L, d). Pair (i, i + d/2) at position p rotates by p * base^(-2i/d)."""
        d = t.shape[-1]
        half = d // 2
        i = torch.arange(half, dtype=self.dtype)
        freq = 1.0 / (self.run.rope_base ** (2 * i / d))  # (d/2,)
        pos = torch.arange(t.shape[-2], dtype=self.dtype)
        angle = pos[:, None] * freq[None, :]  # (L, d/2)
        cos, sin = torch.cos(angle), torch.sin(angle)
        a, b = t[..., :half], t[..., half:]
        return torch.cat((a * cos - b * sin, b * cos + a * sin), dim=-1)

    def attention(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        B, L, D = h.shape
        H = self.run.num_heads
        d = D // H
        qkv_w = self.w[f"L_level.layers.{layer}.self_attn.qkv_proj.weight"]
        q = h @ qkv_w[:D].T  # q, k, v in that order, D rows each
        k = h @ qkv_w[D:2 * D].T
        v = h @ qkv_w[2 * D:].T
        q, k, v = (t.reshape(B, L, H, d).permute(0, 2, 1, 3) for t in (q, k, v))  # heads contiguous
        if self.run.pos_encodings == "rope":
            q, k = self.rope(q), self.rope(k)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)  # (B, H, L, L), no mask
        out = torch.softmax(scores, dim=-1) @ v  # (B, H, L, d)
        out = out.permute(0, 2, 1, 3).reshape(B, L, D)
        return out @ self.w[f"L_level.layers.{layer}.self_attn.o_proj.weight"].T

    def block(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        p = f"L_level.layers.{layer}."
        if self.mixer == "attention":
            h = self.rms_norm(h + self.attention(h, layer))
        else:
            ht = h.transpose(1, 2)  # (B, D, L): the SwiGLU mixes positions
            ht = ht + self.swiglu(ht, self.w[p + "mlp_t.gate_up_proj.weight"], self.w[p + "mlp_t.down_proj.weight"])
            h = self.rms_norm(ht).transpose(1, 2)  # the norm runs over the sequence axis
        return self.rms_norm(h + self.swiglu(h, self.w[p + "mlp.gate_up_proj.weight"], self.w[p + "mlp.down_proj.weight"]))

    def net(self, h: torch.Tensor, injection: torch.Tensor) -> torch.Tensor:
        h = h + injection
        for layer in range(self.num_layers):
            h = self.block(h, layer)
        return h

    def embed(self, input_ids: torch.Tensor, puzzle_ids: torch.Tensor) -> torch.Tensor:
        D, P = self.D, self.run.puzzle_emb_len
        tokens = self.w["embed_tokens.embedding_weight"][input_ids]  # (B, S, D)
        parts = [tokens]
        if P > 0:
            vec = self.w["puzzle_emb.weights"][puzzle_ids]  # (B, D)
            padded = torch.cat((vec, vec.new_zeros(vec.shape[0], P * D - D)), dim=1)
            parts.insert(0, padded.view(-1, P, D))  # vector in prefix token 0, zeros after
        emb = torch.cat(parts, dim=1)
        if self.run.pos_encodings == "learned":
            emb = 0.707106781 * (emb + self.w["embed_pos.embedding_weight"])
        return math.sqrt(D) * emb  # the whole sequence, prefix included

    # -- one supervision step and the evaluation carry ---------------------------------------------------

    def supervision_step(self, x, y, z):
        for _ in range(self.run.H_cycles):
            for _ in range(self.run.L_cycles):
                z = self.net(z, y + x)  # hidden z, injection (y + x): z + (y + x)
            y = self.net(y, z)  # y + z
        logits = y[:, self.run.puzzle_emb_len:] @ self.w["lm_head.weight"].T
        q = y[:, 0] @ self.w["q_head.weight"].T + self.w["q_head.bias"]
        return y, z, logits, q[:, 0]

    @torch.no_grad()
    def rollout(self, inputs: list[tuple[torch.Tensor, torch.Tensor]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Evaluation-mode supervision steps; `inputs[s]` = (input_ids, puzzle_ids) offered at step s,
        taken only by slots that halted at step s - 1 (all slots at step 0). Returns (logits, q_halt)."""
        B = inputs[0][0].shape[0]
        L = inputs[0][0].shape[1] + self.run.puzzle_emb_len
        y = torch.zeros(B, L, self.D, dtype=self.dtype)
        z = torch.zeros(B, L, self.D, dtype=self.dtype)
        steps = torch.zeros(B, dtype=torch.long)
        halted = torch.ones(B, dtype=torch.bool)
        cur_ids = inputs[0][0].clone()
        cur_pid = inputs[0][1].clone()
        outputs = []
        for ids, pid in inputs:
            for b in range(B):
                if halted[b]:
                    y[b] = self.H_init  # broadcast over positions
                    z[b] = self.L_init
                    steps[b] = 0
                    cur_ids[b] = ids[b]
                    cur_pid[b] = pid[b]
            x = self.embed(cur_ids, cur_pid)
            y, z, logits, q_halt = self.supervision_step(x, y, z)
            outputs.append((logits, q_halt))
            steps = steps + 1
            halted = steps >= self.run.halt_max_steps  # evaluation: always the full N_sup steps
        return outputs


def random_reference_state_dict(
    mixer: str,
    hidden: int,
    vocab: int,
    seq_len: int,
    num_layers: int = 2,
    num_puzzle_ids: int = 3,
    puzzle_emb_len: int = 16,
    expansion: float = 4.0,
    learned_positions: bool = False,
    prefix: str = "_orig_mod.model.inner.",
    seed: int = 0,
    layer_gain: float = 1.0,
) -> dict[str, torch.Tensor]:
    """A checkpoint with the §7 names and shapes and trained-looking random values: no zero puzzle
    table, a random q_head, fp32 weights with std 1/sqrt(fan_in), bf16 H_init/L_init."""
    g = torch.Generator().manual_seed(seed)
    D = hidden
    L = seq_len + puzzle_emb_len

    def linear(rows: int, cols: int, gain: float = 1.0) -> torch.Tensor:
        return torch.randn(rows, cols, generator=g) * (gain / math.sqrt(cols))

    inner = swiglu_inner(D, expansion)
    sd = {
        "H_init": torch.randn(D, generator=g).clamp(-2, 2).to(torch.bfloat16),
        "L_init": torch.randn(D, generator=g).clamp(-2, 2).to(torch.bfloat16),
        "embed_tokens.embedding_weight": torch.randn(vocab, D, generator=g) / math.sqrt(D),
        "lm_head.weight": linear(vocab, D),
        "q_head.weight": linear(2, D),
        "q_head.bias": torch.randn(2, generator=g),
        "puzzle_emb.weights": torch.randn(num_puzzle_ids, D, generator=g) / math.sqrt(D),
    }
    if learned_positions:
        sd["embed_pos.embedding_weight"] = torch.randn(L, D, generator=g) / math.sqrt(D)
    for i in range(num_layers):
        p = f"L_level.layers.{i}."
        if mixer == "attention":
            sd[p + "self_attn.qkv_proj.weight"] = linear(3 * D, D, layer_gain)
            sd[p + "self_attn.o_proj.weight"] = linear(D, D, layer_gain)
        else:
            inner_L = swiglu_inner(L, expansion)
            sd[p + "mlp_t.gate_up_proj.weight"] = linear(2 * inner_L, L, layer_gain)
            sd[p + "mlp_t.down_proj.weight"] = linear(L, inner_L, layer_gain)
        sd[p + "mlp.gate_up_proj.weight"] = linear(2 * inner, D, layer_gain)
        sd[p + "mlp.down_proj.weight"] = linear(D, inner, layer_gain)
    return {prefix + key: value for key, value in sd.items()}
