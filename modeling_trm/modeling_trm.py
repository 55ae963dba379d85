"""Tiny Recursive Model (TRM): "Less is More: Recursive Reasoning with Tiny Networks" (arXiv:2510.04871).

One small network refines a latent `z` and an answer `y` (paper §4):

    latent_recursion:  n times  z <- net(z, y + x);  then once  y <- net(y, z)     (x never enters y)
    deep_recursion:    T-1 latent recursions without gradients, one with; state detached on return

A supervision step is one deep recursion followed by the answer head and the halting head. Training
repeats supervision steps on a persistent per-slot state (`TRMState`, the reference "carry"); `solve`
runs the whole refinement loop for inference, dropping samples from the batch once they halt.

This file is copied next to saved checkpoints for `trust_remote_code`: it imports only third-party
libraries and `.configuration_trm`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from numbers import Real

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.utils import ModelOutput

from .configuration_trm import TRMConfig

IGNORE_INDEX = -100
_INDEX_DTYPES = (torch.int64, torch.int32)  # what nn.Embedding accepts as indices
# On a CPU in half precision the sequence-MLP model runs slices of the batch of about this many
# positions (samples x sequence length) at a time: measured best between 12 and 16 Sudoku samples.
_CPU_ROWS_PER_CHUNK = 1600
# Rows (puzzles x samples) one supervision step computes at most when `solve` runs several trajectories per
# puzzle and is not told `max_batch_rows`: memory stays bounded whatever K is (a row is ~ 3 * L * D floats).
_DEFAULT_MAX_BATCH_ROWS = 4096
SELECTION_RULES = ("halt", "vote")
# Std of a standard normal truncated to [-2, 2]; dividing by it makes the truncated draw have the
# requested std (the reference uses this JAX-style initializer, torch's trunc_normal_ does not).
_TRUNC_NORMAL_STD_AT_2 = 0.8796256610342398


# ----------------------------------------------------------------------------- numerics


def rms_norm(hidden: torch.Tensor, eps: float) -> torch.Tensor:
    """Weightless RMS norm over the last axis, computed in fp32 (reference §2)."""
    dtype = hidden.dtype
    hidden = hidden.float()
    hidden = hidden * torch.rsqrt(hidden.square().mean(-1, keepdim=True) + eps)
    return hidden.to(dtype)


# Reduced-precision fast path. In fp32 the network runs the plain ops above, exactly the reference
# function. In bf16/fp16 (autocast or a half-precision model) the residual stream stays in that dtype,
# as in the reference training code, and the elementwise work, which costs more than the matmuls on
# a CPU, is cut down: the residual add and the norm share one temporary, the norm's statistics are
# one fp32-accumulating pass, the SwiGLU activation writes its gradient without a concatenation, and
# without gradients both run in place on buffers nobody else holds.
_REDUCED_DTYPES = (torch.bfloat16, torch.float16)


def _is_reduced(hidden: torch.Tensor) -> bool:
    return hidden.dtype in _REDUCED_DTYPES


def _needs_grad(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _inverse_rms(hidden: torch.Tensor, eps: float, dim: int) -> torch.Tensor:
    """rsqrt(mean(hidden^2) + eps) over `dim` (keepdim) in `hidden`'s dtype.

    The norm is accumulated in fp32 inside one pass over the half-precision tensor; only the per-row
    result is rounded. (On a CPU an op mixing bf16 and fp32 operands first copies the whole bf16
    operand to fp32, so every op on a full-size tensor here keeps one dtype.)
    """
    norm = torch.linalg.vector_norm(hidden, dim=dim, keepdim=True)
    return _widened(norm).square_().div_(hidden.shape[dim]).add_(eps).rsqrt_().to(hidden.dtype)


def _widened(small: torch.Tensor) -> torch.Tensor:
    """A per-row statistic in at least fp32 precision, for the arithmetic on it."""
    return small.to(torch.promote_types(small.dtype, torch.float32))


class _AddRMSNorm(torch.autograd.Function):
    """rms_norm(residual + update) over `dim` for half-precision tensors.

    Saves only the normed output and the per-row scale; the backward is
    d_in = scale * (d_out - out * mean(d_out * out)), the same for both summands.
    """

    @staticmethod
    def forward(ctx, residual: torch.Tensor, update: torch.Tensor, eps: float, dim: int) -> torch.Tensor:
        hidden = residual + update
        scale = _inverse_rms(hidden, eps, dim)
        hidden.mul_(scale)
        ctx.save_for_backward(hidden, scale)
        ctx.dim = dim
        return hidden

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        normed, scale = ctx.saved_tensors
        grad = grad.to(normed.dtype)
        product = grad * normed
        mean = _widened(product.sum(ctx.dim, keepdim=True)).div_(-normed.shape[ctx.dim]).to(normed.dtype)
        grad_in = torch.addcmul(grad, normed, mean, out=product)  # d_out - out * mean(d_out * out)
        grad_in.mul_(scale)
        return grad_in, grad_in, None, None


def _add_rms_norm(residual: torch.Tensor, update: torch.Tensor, eps: float, dim: int = -1) -> torch.Tensor:
    """Post-norm residual `rms_norm(residual + update)`; `update` must be a fresh tensor (it may be reused)."""
    if not _is_reduced(residual):
        return rms_norm(residual + update, eps)
    if _needs_grad(residual, update):
        return _AddRMSNorm.apply(residual, update, eps, dim)
    hidden = update.add_(residual) if update.dtype == residual.dtype else residual + update
    return hidden.mul_(_inverse_rms(hidden, eps, dim))


class _SwiGLUActivation(torch.autograd.Function):
    """silu(gate) * up from the fused projection output, split in halves along `dim`."""

    @staticmethod
    def forward(ctx, gate_up: torch.Tensor, dim: int) -> torch.Tensor:
        gate, up = gate_up.chunk(2, dim)
        activated = F.silu(gate)
        ctx.save_for_backward(gate_up, activated)
        ctx.dim = dim
        return activated * up

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        gate_up, activated = ctx.saved_tensors
        gate, up = gate_up.chunk(2, ctx.dim)
        grad_gate_up = torch.empty_like(gate_up)
        grad_gate, grad_up = grad_gate_up.chunk(2, ctx.dim)
        torch.mul(grad, up, out=grad_gate)
        torch.ops.aten.silu_backward.grad_input(grad_gate, gate, grad_input=grad_gate)
        torch.mul(grad, activated, out=grad_up)
        return grad_gate_up, None


def _swiglu_activation(gate_up: torch.Tensor, dim: int) -> torch.Tensor:
    """silu(gate) * up for a half-precision fused projection output (overwritten when no gradient is needed)."""
    if _needs_grad(gate_up):
        return _SwiGLUActivation.apply(gate_up, dim)
    gate, up = gate_up.chunk(2, dim)
    return F.silu(gate, inplace=True).mul_(up)


def log_stablemax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log of s(x) / sum s(x) with s(x) = 1/(1-x) for x < 0 and x + 1 otherwise.

    Each branch sees only its own half of the axis: `torch.where` back-propagates through both
    branches, and 1/(1-x) at x = 1 (common once logits are bf16) would turn 0 * inf into NaN.
    """
    s = torch.where(logits < 0, 1.0 / (1.0 - logits.clamp(max=0)), logits.clamp(min=0) + 1.0)
    return torch.log(s / s.sum(dim=dim, keepdim=True))


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token stable-max cross-entropy in float64; 0 where `labels == -100`."""
    log_probs = log_stablemax(logits.to(torch.float64), dim=-1)
    valid = labels != IGNORE_INDEX
    safe_labels = torch.where(valid, labels, 0).long()
    picked = torch.gather(log_probs, -1, safe_labels.unsqueeze(-1)).squeeze(-1)
    return -torch.where(valid, picked, 0.0)


def softmax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token softmax cross-entropy in fp32; 0 where `labels == -100`."""
    flat = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), labels.long().reshape(-1),
        ignore_index=IGNORE_INDEX, reduction="none",
    )
    return flat.view(labels.shape)


def trunc_normal_(tensor: torch.Tensor, std: float) -> torch.Tensor:
    """Truncated normal at +-2 std whose *truncated* distribution has standard deviation `std`."""
    scaled = std / _TRUNC_NORMAL_STD_AT_2
    return init.trunc_normal_(tensor, mean=0.0, std=scaled, a=-2 * scaled, b=2 * scaled)


# ----------------------------------------------------------------------------- network


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """Pairs (i, i + d/2) rotate together ("rotate half" RoPE layout)."""
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class RotaryEmbedding(nn.Module):
    """cos/sin tables for every position of the sequence, prefix included."""

    def __init__(self, head_dim: int, max_len: int, base: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        freqs = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)  # (L, d/2)
        angles = torch.cat((freqs, freqs), dim=-1)  # (L, d)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # q, k: (B, L, H, d); rotation in fp32, result in the input dtype
        cos = self.cos[:, None, :]
        sin = self.sin[:, None, :]
        q_rot = q.float() * cos + rotate_half(q.float()) * sin
        k_rot = k.float() * cos + rotate_half(k.float()) * sin
        return q_rot.to(q.dtype), k_rot.to(k.dtype)


class SwiGLU(nn.Module):
    """down(silu(gate) * up) with one fused gate+up projection; the first half is the gate."""

    def __init__(self, width: int, inner: int) -> None:
        super().__init__()
        self.gate_up_proj = nn.Linear(width, 2 * inner, bias=False)
        self.down_proj = nn.Linear(inner, width, bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if _is_reduced(hidden):
            return self.down_proj(_swiglu_activation(self.gate_up_proj(hidden), -1))
        gate, up = self.gate_up_proj(hidden).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class SelfAttention(nn.Module):
    """Non-causal multi-head attention, fused qkv (q, k, v order, heads contiguous), no biases."""

    def __init__(self, config: TRMConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        self.qkv_proj = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=False)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.rotary = (
            RotaryEmbedding(config.head_dim, config.total_seq_len, config.rope_theta)
            if config.pos_encodings == "rope" else None
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        batch, length, width = hidden.shape
        qkv = self.qkv_proj(hidden).view(batch, length, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.unbind(dim=2)  # each (B, L, H, d)
        if self.rotary is not None:
            q, k = self.rotary(q, k)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.o_proj(out.transpose(1, 2).reshape(batch, length, width))


class SequenceMLP(nn.Module):
    """TRM-MLP token mixer: a SwiGLU across the sequence axis, post-normed over that axis."""

    def __init__(self, config: TRMConfig) -> None:
        super().__init__()
        length = config.total_seq_len
        self.swiglu = SwiGLU(length, config.swiglu_inner_width(length))
        self.eps = config.rms_norm_eps

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        # Returns the already-normed block output (the norm runs over L, so it lives in here).
        if _is_reduced(hidden):
            # Both transposes are materialised: they copy only (B, L, D), and every matmul and norm then
            # reads contiguous rows (cheaper than batched W @ h, which copies the 2I-wide intermediate).
            transposed = hidden.transpose(1, 2).contiguous()  # (B, D, L)
            transposed = _add_rms_norm(transposed, self.swiglu(transposed), self.eps)
            return transposed.transpose(1, 2).contiguous()
        transposed = hidden.transpose(1, 2)  # (B, D, L)
        transposed = rms_norm(transposed + self.swiglu(transposed), self.eps)
        return transposed.transpose(1, 2)  # (B, L, D)


class TRMBlock(nn.Module):
    """Post-norm block: h = norm(h + mixer(h)); h = norm(h + swiglu(h))."""

    def __init__(self, config: TRMConfig) -> None:
        super().__init__()
        self.eps = config.rms_norm_eps
        if config.mixer == "attention":
            self.self_attn = SelfAttention(config)
        else:
            self.mlp_t = SequenceMLP(config)
        self.mlp = SwiGLU(config.hidden_size, config.swiglu_inner_width(config.hidden_size))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "self_attn"):
            hidden = _add_rms_norm(hidden, self.self_attn(hidden), self.eps)
        else:
            hidden = self.mlp_t(hidden)
        return _add_rms_norm(hidden, self.mlp(hidden), self.eps)


class RecursiveCore(nn.Module):
    """The single shared network `net(h, injection) = blocks(h + injection)`: fusion is addition."""

    def __init__(self, config: TRMConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TRMBlock(config) for _ in range(config.num_layers))

    def forward(self, hidden: torch.Tensor, injection: torch.Tensor) -> torch.Tensor:
        hidden = hidden + injection
        for layer in self.layers:
            hidden = layer(hidden)
        return hidden


# ----------------------------------------------------------------------------- state and outputs


@dataclass
class TRMState:
    """Per-slot carry across supervision steps (detached; no gradient crosses steps).

    `halted[i]` means slot i finished at the previous step and takes a new sample at the next one.
    """

    y: torch.Tensor  # (B, L_total, D) current answer embedding
    z: torch.Tensor  # (B, L_total, D) latent reasoning feature
    steps: torch.Tensor  # (B,) int32 supervision steps taken on the current sample
    halted: torch.Tensor  # (B,) bool
    input_ids: torch.Tensor  # (B, seq_len) current question of each slot
    puzzle_identifiers: torch.Tensor  # (B,) int
    labels: torch.Tensor | None = None  # (B, seq_len) current answer of each slot

    @property
    def batch_size(self) -> int:
        return self.y.shape[0]

    def to(self, device: torch.device | str) -> "TRMState":
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if getattr(self, f.name) is not None})

    def index_select(self, index: torch.Tensor) -> "TRMState":
        """The state of a subset of slots (used to shard or shrink a batch)."""
        return replace(self, **{f.name: getattr(self, f.name)[index] for f in fields(self)
                                if getattr(self, f.name) is not None})


@dataclass
class TRMOutput(ModelOutput):
    """One supervision step. `loss` is the batch mean of lm_loss + w * q_halt_loss per slot."""

    loss: torch.Tensor | None = None
    lm_loss: torch.Tensor | None = None
    q_halt_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None  # (B, seq_len, vocab)
    q_halt_logits: torch.Tensor | None = None  # (B,) fp32
    state: TRMState | None = None
    metrics: dict[str, torch.Tensor] | None = None  # sums over the slots that halted at this step


@dataclass
class TRMSolveOutput(ModelOutput):
    """The whole refinement loop: final answer, steps used and, optionally, every step's answer."""

    predictions: torch.Tensor | None = None  # (B, seq_len)
    steps: torch.Tensor | None = None  # (B,) supervision steps each sample used
    q_halt_logits: torch.Tensor | None = None  # (B,) at the sample's last step
    trajectory: torch.Tensor | None = None  # (B, max_steps, seq_len); frozen after a sample halts
    trajectory_q_halt_logits: torch.Tensor | None = None  # (B, max_steps)
    # With `samples=K > 1` the fields above describe the selected trajectory of each puzzle, and these all K:
    sample_predictions: torch.Tensor | None = None  # (B, K, seq_len) each trajectory's final answer
    sample_q_halt_logits: torch.Tensor | None = None  # (B, K) each trajectory's q_halt logit at its last step
    sample_steps: torch.Tensor | None = None  # (B, K) supervision steps each trajectory used
    selected_sample: torch.Tensor | None = None  # (B,) index k of the trajectory returned above
    # Compute spent per puzzle when it was not one trajectory (samples > 1 or escalate=True):
    total_steps: torch.Tensor | None = None  # (B,) supervision steps summed over all its trajectories
    escalated: torch.Tensor | None = None  # (B,) escalate=True: whether the puzzle went on to K trajectories


# ----------------------------------------------------------------------------- test-time scaling (PTRM)


def check_sampling_arguments(samples: int, noise_std: float, selection: str, generator: torch.Generator | None,
                             max_batch_rows: int | None) -> None:
    """`solve`'s test-time scaling arguments, refused with a message naming the argument before any compute."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive integer (trajectories per puzzle), got {samples!r}")
    if isinstance(noise_std, bool) or not isinstance(noise_std, Real) or not math.isfinite(noise_std) \
            or noise_std < 0:
        raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std!r}")
    if selection not in SELECTION_RULES:
        raise ValueError(f"selection must be one of {SELECTION_RULES}, got {selection!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if max_batch_rows is not None and (isinstance(max_batch_rows, bool) or not isinstance(max_batch_rows, int)
                                       or max_batch_rows < samples):
        raise ValueError(f"max_batch_rows must be an integer >= samples ({samples}), so that a batch holds the "
                         f"trajectories of at least one puzzle; got {max_batch_rows!r}")


DEFAULT_ESCALATE_CONFIDENCE = 0.5  # the ACT rule: a first answer is kept once q_halt > 0


def is_halting_probability(value: object) -> bool:
    """A real number strictly between 0 and 1 (a threshold on sigmoid(q_halt))."""
    return not isinstance(value, bool) and isinstance(value, Real) and 0 < value < 1


def halting_logit(probability: float | None) -> float:
    """The q_halt logit of a halting probability (None: the default 0.5, whose logit is exactly 0.0)."""
    if probability is None:
        probability = DEFAULT_ESCALATE_CONFIDENCE
    return math.log(probability) - math.log1p(-probability)


def check_escalation_arguments(escalate: bool, escalate_after: int | None, samples: int, noise_std: float,
                               return_trajectory: bool, escalate_confidence: float | None = None) -> None:
    """`solve(escalate=True)` needs K > 1 noisy trajectories to escalate to; refused before any compute."""
    if not isinstance(escalate, bool):
        raise ValueError(f"escalate must be True or False, got {escalate!r}")
    if escalate_after is not None and (isinstance(escalate_after, bool) or not isinstance(escalate_after, int)
                                       or escalate_after < 1):
        raise ValueError(f"escalate_after must be a positive integer (supervision steps), got {escalate_after!r}")
    if escalate_confidence is not None and not is_halting_probability(escalate_confidence):
        raise ValueError(f"escalate_confidence must be a halting probability in (0, 1), got {escalate_confidence!r}")
    if not escalate:
        if escalate_after is not None:
            raise ValueError("escalate_after is the step budget of escalate=True; pass escalate=True as well")
        if escalate_confidence is not None:
            raise ValueError("escalate_confidence is the threshold of escalate=True; pass escalate=True as well")
        return
    if samples < 2 or noise_std <= 0:
        raise ValueError(f"escalate=True sends unconfident puzzles to `samples` noisy trajectories: it needs "
                         f"samples >= 2 and noise_std > 0, got samples={samples}, noise_std={noise_std}")
    if return_trajectory:
        raise ValueError("return_trajectory is not available with escalate=True (puzzles run one or K "
                         "trajectories); solve the escalated puzzles again with samples=K to inspect them")


def rows_per_step(puzzles: int, samples: int, slots: int | None, max_batch_rows: int | None) -> int:
    """Rows (puzzles x samples; trajectory k of puzzle i is row i * samples + k) one supervision step of
    `solve` computes: all of them for a plain solve, else at most `max_batch_rows` (default 4096 when
    K > 1) and at most `slots` puzzles' worth."""
    rows = puzzles * samples
    limit = max_batch_rows or (_DEFAULT_MAX_BATCH_ROWS if samples > 1 else rows)
    return min(rows, limit, rows if slots is None else slots * samples)


class LatentNoise:
    """PTRM's exploration noise: z <- z + noise_std * eps, eps ~ N(0, I), before every supervision step.

    Every row (one trajectory of one puzzle) draws from its own generator, seeded from one base seed
    plus the row's index, so the noise a trajectory gets at its s-th step is the same whichever rows
    share its batch: chunking, refills and other rows' halting leave the draws alone. Only the rows
    running now hold a generator.
    """

    def __init__(self, noise_std: float, generator: torch.Generator | None) -> None:
        self.noise_std = float(noise_std)
        device = generator.device if generator is not None else "cpu"
        self.base_seed = int(torch.randint(0, 2**62, (), generator=generator, device=device))
        self.streams: dict[int, torch.Generator] = {}

    def __call__(self, rows: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """`z` (R, L, D) of the rows `rows` (R,), perturbed."""
        self.streams = {row: self.streams.get(row) or torch.Generator(z.device).manual_seed(self.base_seed + row)
                        for row in rows.tolist()}
        eps = torch.stack([torch.randn(z.shape[1:], generator=self.streams[row], device=z.device)
                           for row in rows.tolist()])  # (R, L, D) fp32
        return z + (self.noise_std * eps).to(z.dtype)


def select_trajectories(solved: TRMSolveOutput, samples: int, selection: str) -> TRMSolveOutput:
    """One trajectory per puzzle out of the K rows of each (row i * K + k is trajectory k of puzzle i).

    "halt": the highest q_halt logit at the trajectory's last step (PTRM: the halting head, trained to
    say "this answer is right", is the verifier). "vote": the answer most trajectories reached; among
    answers with as many votes, the one holding the highest q_halt logit. Equal keys go to the lower
    index (`argmax` returns the first maximum).
    """
    answers = solved.predictions.view(-1, samples, solved.predictions.shape[-1])  # (B, K, L)
    q_halt = solved.q_halt_logits.view(-1, samples)  # (B, K)
    score = q_halt
    if selection == "vote":
        votes = torch.empty_like(q_halt, dtype=torch.long)  # (B, K): how many trajectories share k's answer
        for puzzle, candidates in enumerate(answers):
            _, group, counts = torch.unique(candidates, dim=0, return_inverse=True, return_counts=True)
            votes[puzzle] = counts[group]
        score = q_halt.masked_fill(votes < votes.max(1, keepdim=True).values, -math.inf)
    chosen = score.argmax(1)  # (B,)
    rows = torch.arange(chosen.shape[0], device=chosen.device) * samples + chosen

    def pick(tensor: torch.Tensor | None) -> torch.Tensor | None:
        return None if tensor is None else tensor[rows]

    return TRMSolveOutput(
        predictions=pick(solved.predictions), steps=pick(solved.steps), q_halt_logits=pick(solved.q_halt_logits),
        trajectory=pick(solved.trajectory), trajectory_q_halt_logits=pick(solved.trajectory_q_halt_logits),
        sample_predictions=answers, sample_q_halt_logits=q_halt, sample_steps=solved.steps.view(-1, samples),
        selected_sample=chosen, total_steps=solved.steps.view(-1, samples).sum(1),
    )


# ----------------------------------------------------------------------------- loading checks


class CheckpointLoadError(ValueError):
    """A checkpoint that cannot be loaded as it is; the message names the source and the problem."""


def _loading_problems(info: dict) -> list[str]:
    """Every key that `from_pretrained` would have left freshly initialised, skipped or re-shaped."""
    problems = []
    if info.get("missing_keys"):
        problems.append("missing from the weights: " + ", ".join(sorted(info["missing_keys"])))
    if info.get("unexpected_keys"):
        problems.append("in the weights but not in the model: " + ", ".join(sorted(info["unexpected_keys"])))
    for key, stored, expected in sorted(info.get("mismatched_keys") or ()):
        problems.append(f"{key} has shape {list(stored)} in the weights, the config needs {list(expected)}")
    return problems + [str(message) for message in info.get("error_msgs") or ()]


def _unreadable_weights_file(source: str) -> str:
    """The first `*.safetensors` file of a local folder that safetensors cannot open, else a best guess."""
    from pathlib import Path

    from safetensors import safe_open

    folder = Path(source)
    for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else ():
        try:
            with safe_open(str(path), "pt"):
                pass
        except Exception:  # safetensors raises its own error types for every malformed header
            return str(path)
    return f"{source}/model.safetensors"


# ----------------------------------------------------------------------------- model


class TRMPreTrainedModel(PreTrainedModel):
    config_class = TRMConfig
    base_model_prefix = "trm"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False
    _no_split_modules = ["TRMBlock"]

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=1.0 / math.sqrt(module.in_features))
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            # token and learned-position embeddings; the puzzle table is handled below
            trunc_normal_(module.weight, std=1.0 / math.sqrt(self.config.hidden_size))
        elif isinstance(module, RotaryEmbedding):
            fresh = RotaryEmbedding(module.cos.shape[-1], module.cos.shape[0], self.config.rope_theta)
            init.copy_(module.cos, fresh.cos)
            init.copy_(module.sin, fresh.sin)
        if isinstance(module, TRMForGridReasoning):
            # halting head starts at sigmoid(-5) ~ 0.007 so an untrained model never halts early
            init.zeros_(module.q_head.weight)
            init.constant_(module.q_head.bias, -5.0)
            init.zeros_(module.puzzle_embedding.weight)
            trunc_normal_(module.y_init, std=self.config.initializer_range)
            trunc_normal_(module.z_init, std=self.config.initializer_range)


class TRMForGridReasoning(TRMPreTrainedModel):
    """TRM with its answer head (`lm_head`) and halting head (`q_head`, output 0 = q_halt)."""

    # The trainer carries state across steps and normalises the loss itself.
    accepts_loss_kwargs = False

    def __init__(self, config: TRMConfig) -> None:
        super().__init__(config)
        d = config.hidden_size
        self.embed_scale = math.sqrt(d)
        self.embed_tokens = nn.Embedding(config.vocab_size, d)
        # Zero-initialised id table; the vector fills prefix token 0, tokens 1.. are zeros.
        self.puzzle_embedding = nn.Embedding(config.num_puzzle_identifiers, d)
        if config.pos_encodings == "learned":
            self.embed_positions = nn.Embedding(config.total_seq_len, d)
        self.core = RecursiveCore(config)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        self.q_head = nn.Linear(d, 2, bias=True)  # [q_halt, q_continue]; TRM uses q_halt only
        self.y_init = nn.Parameter(torch.empty(d))
        self.z_init = nn.Parameter(torch.empty(d))
        self.post_init()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`, refusing a partial load.

        transformers re-initialises weights missing from a checkpoint (and skips unexpected ones) with
        only a logged report; a TRM loaded so answers nonsense. Here every missing, unexpected or
        mis-shaped key, and an unreadable weights file, raises one `CheckpointLoadError` that names
        the checkpoint; the model is never returned. `ignore_mismatched_sizes=True` is the explicit
        opt-in to transformers' partial loading and skips this check.
        """
        if kwargs.get("ignore_mismatched_sizes"):
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        from safetensors import SafetensorError

        source = str(pretrained_model_name_or_path)
        wants_info = kwargs.pop("output_loading_info", False)
        try:
            model, info = super().from_pretrained(pretrained_model_name_or_path, *model_args,
                                                  output_loading_info=True, ignore_mismatched_sizes=True, **kwargs)
        except SafetensorError as error:
            raise CheckpointLoadError(f"{_unreadable_weights_file(source)}: not a readable safetensors file "
                                      f"(truncated, or another format): {error}") from None
        except ValueError as error:  # e.g. a config.json field that TRMConfig.validate refuses
            raise CheckpointLoadError(f"{source}: {error}") from error
        problems = _loading_problems(info)
        if problems:
            raise CheckpointLoadError(f"{source}: the weights do not fit its config.json (a checkpoint of another "
                                      f"configuration?); refusing a partial load: " + "; ".join(problems))
        return (model, info) if wants_info else model

    # -- inputs ------------------------------------------------------------------------------

    def check_inputs(self, input_ids: torch.Tensor, puzzle_identifiers: torch.Tensor | None,
                     labels: torch.Tensor | None = None, values: bool = True) -> None:
        """Fail with a message naming the problem instead of an index error deep inside torch.

        Shapes and dtypes are checked always (host metadata, free). The id ranges need the tensors' values,
        a device-to-host read (a sync on an accelerator, a graph break under `torch.compile`): they are
        checked only with `values=True` and when not compiling. `TRMTrainer` checks its whole training set
        once on the host instead; `solve` clamps the ids on the device (`_clamped_ids`) and reads whether any was
        out of range once, when it returns."""
        cfg = self.config
        if input_ids.dim() != 2 or input_ids.shape[1] != cfg.seq_len:
            raise ValueError(f"input_ids must have shape (batch, {cfg.seq_len}), got {tuple(input_ids.shape)}")
        if input_ids.dtype not in _INDEX_DTYPES:  # nn.Embedding takes no other dtype
            raise ValueError(f"input_ids must be int64 or int32 token ids, got dtype {input_ids.dtype} "
                             "(convert with .long())")
        values = values and not torch.compiler.is_compiling()
        if values and input_ids.numel() and (int(input_ids.min()) < 0 or int(input_ids.max()) >= cfg.vocab_size):
            raise ValueError(
                f"input_ids contain ids outside the vocabulary [0, {cfg.vocab_size}): "
                f"min {int(input_ids.min())}, max {int(input_ids.max())}"
            )
        if puzzle_identifiers is not None:
            if puzzle_identifiers.dtype not in _INDEX_DTYPES:
                raise ValueError(f"puzzle_identifiers must be int64 or int32 ids, got dtype {puzzle_identifiers.dtype} "
                                 "(convert with .long())")
            if puzzle_identifiers.shape != (input_ids.shape[0],):
                raise ValueError(f"puzzle_identifiers must have shape ({input_ids.shape[0]},), "
                                 f"got {tuple(puzzle_identifiers.shape)}")
            if values and puzzle_identifiers.numel() and (
                int(puzzle_identifiers.min()) < 0 or int(puzzle_identifiers.max()) >= cfg.num_puzzle_identifiers
            ):
                raise ValueError(
                    f"puzzle_identifiers outside [0, {cfg.num_puzzle_identifiers}): "
                    f"min {int(puzzle_identifiers.min())}, max {int(puzzle_identifiers.max())}"
                )
        if labels is not None:
            if labels.shape != input_ids.shape:
                raise ValueError(f"labels must have the shape of input_ids {tuple(input_ids.shape)}, "
                                 f"got {tuple(labels.shape)}")
            if values and bool(((labels != IGNORE_INDEX) & ((labels < 0) | (labels >= cfg.vocab_size))).any()):
                raise ValueError(f"labels contain ids outside [0, {cfg.vocab_size}) that are not -100")

    def embed_inputs(self, input_ids: torch.Tensor, puzzle_identifiers: torch.Tensor) -> torch.Tensor:
        """x: [puzzle-id prefix ; token embeddings] (+ learned positions), all scaled by sqrt(D)."""
        embedding = self.embed_tokens(input_ids)  # (B, S, D)
        if self.config.puzzle_emb_len > 0:
            prefix = embedding.new_zeros(embedding.shape[0], self.config.puzzle_emb_len, embedding.shape[-1])
            prefix[:, 0] = self.puzzle_embedding(puzzle_identifiers).to(embedding.dtype)
            embedding = torch.cat((prefix, embedding), dim=1)  # (B, L, D)
        if self.config.pos_encodings == "learned":
            embedding = 0.707106781 * (embedding + self.embed_positions.weight.to(embedding.dtype))
        return self.embed_scale * embedding

    # -- the recursion (paper Fig. 3) ---------------------------------------------------------

    def latent_recursion(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.single_latent:
            return self._single_latent_recursion(x, z)
        for _ in range(self.config.L_cycles):
            z = self.core(z, y + x)  # z <- net(x + y + z)
        y = self.core(y, z)  # y <- net(y + z): x is not an input
        return y, z

    def _single_latent_recursion(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Ablation `single_latent` (paper's "single feature"): n + 1 updates z <- net(z, x), as many network
        calls as the y/z recursion; the answer is read from z, so the returned y is z itself."""
        for _ in range(self.config.L_cycles + 1):
            z = self.core(z, x)
        return z, z

    def deep_recursion(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grad_cycle = torch.is_grad_enabled()
        chunks = self._chunk_count(x)
        if grad_cycle and self.config.backprop_all_cycles:  # ablation: no no-grad cycles
            return self._chunked_cycles(x, y, z, self.config.H_cycles, chunks)
        with torch.no_grad():
            y, z = self._chunked_cycles(x, y, z, self.config.H_cycles - int(grad_cycle), chunks)
        if not grad_cycle:
            return y, z
        return self._chunked_cycles(x, y, z, 1, chunks)  # only the last cycle builds a graph

    def _chunk_count(self, x: torch.Tensor) -> int:
        """Slices of the batch that the recursion runs one after the other (samples are independent, so
        it computes the same function). One, except for the sequence-MLP mixer on a CPU in half
        precision: its (D x 2 I_L) intermediate per sample (1M values for Sudoku) is five times the
        attention model's, and slices of about `_CPU_ROWS_PER_CHUNK` positions keep a slice's
        activations in cache across the calls and every buffer small enough for the allocator to reuse
        its memory. Measured: 2x faster recursion without gradients; for attention, slicing was neutral
        without gradients and slower with them."""
        if x.device.type == "cpu" and _is_reduced(x) and self.config.mixer == "mlp_t":
            return max(1, math.ceil(x.shape[0] * x.shape[1] / _CPU_ROWS_PER_CHUNK))
        return 1

    def _chunked_cycles(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, cycles: int,
                        chunks: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`cycles` latent recursions, run on `chunks` equal slices of the batch."""
        if cycles == 0 or chunks <= 1:
            for _ in range(cycles):
                y, z = self.latent_recursion(x, y, z)
            return y, z
        y_parts, z_parts = [], []
        for x_part, y_part, z_part in zip(x.tensor_split(chunks), y.tensor_split(chunks), z.tensor_split(chunks)):
            for _ in range(cycles):
                y_part, z_part = self.latent_recursion(x_part, y_part, z_part)
            y_parts.append(y_part)
            z_parts.append(z_part)
        return torch.cat(y_parts), torch.cat(z_parts)

    def heads(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Answer logits on the grid positions and q_halt from prefix position 0."""
        logits = self.lm_head(y[:, self.config.puzzle_emb_len:])  # (B, S, vocab)
        q_halt_logits = self.q_head(y[:, 0]).float()[:, 0]  # (B,)
        return logits, q_halt_logits

    def _compute_dtype(self, device_type: str) -> torch.dtype:
        """The dtype the network runs in: the autocast dtype when autocast is on, else the weights' dtype."""
        if torch.is_autocast_enabled(device_type):
            return torch.get_autocast_dtype(device_type)
        return self.lm_head.weight.dtype

    def supervision_step(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor):
        """One deep recursion plus heads; returns the detached new (y, z) and the head outputs.

        x, y and z enter in the compute dtype, so under bf16 autocast the state is carried in bf16
        (as the reference does) and no layer casts its input again."""
        dtype = self._compute_dtype(x.device.type)
        x, y, z = x.to(dtype), y.to(dtype), z.to(dtype)
        y, z = self.deep_recursion(x, y, z)
        logits, q_halt_logits = self.heads(y)
        return y.detach(), z.detach(), logits, q_halt_logits

    # -- state ---------------------------------------------------------------------------------

    def initial_state(self, input_ids: torch.Tensor, puzzle_identifiers: torch.Tensor | None = None,
                      labels: torch.Tensor | None = None) -> TRMState:
        """A state whose every slot is halted, so the next `forward` loads the given batch."""
        batch = input_ids.shape[0]
        shape = (batch, self.config.total_seq_len, self.config.hidden_size)
        device = input_ids.device
        if puzzle_identifiers is None:
            puzzle_identifiers = torch.zeros(batch, dtype=torch.long, device=device)
        return TRMState(
            y=self.y_init.detach().expand(shape).clone(),
            z=self.z_init.detach().expand(shape).clone(),
            steps=torch.zeros(batch, dtype=torch.int32, device=device),
            halted=torch.ones(batch, dtype=torch.bool, device=device),
            input_ids=input_ids.clone(),
            puzzle_identifiers=puzzle_identifiers.clone(),
            labels=None if labels is None else labels.clone(),
        )

    def reset_halted(self, state: TRMState, input_ids: torch.Tensor, puzzle_identifiers: torch.Tensor,
                     labels: torch.Tensor | None) -> TRMState:
        """Halted slots restart from y_init/z_init on the new sample; the others keep theirs."""
        halted = state.halted
        row = halted.view(-1, 1)
        cell = halted.view(-1, 1, 1)
        # not detached: with T = 1 the initial states do get a gradient (with T > 1 the no-grad cycles cut it)
        y_init = self.y_init.to(state.y.dtype)
        z_init = self.z_init.to(state.z.dtype)
        if labels is None:
            new_labels = state.labels
        elif state.labels is None:
            new_labels = labels
        else:
            new_labels = torch.where(row, labels, state.labels)
        return TRMState(
            y=torch.where(cell, y_init, state.y),
            z=torch.where(cell, z_init, state.z),
            steps=torch.where(halted, 0, state.steps),
            halted=halted,
            input_ids=torch.where(row, input_ids, state.input_ids),
            puzzle_identifiers=torch.where(halted, puzzle_identifiers, state.puzzle_identifiers),
            labels=new_labels,
        )

    def halting_decision(self, steps: torch.Tensor, q_halt_logits: torch.Tensor,
                         generator: torch.Generator | None,
                         exploration: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Training: halt at N_sup or when q_halt > 0, unless exploration forces more steps.
        Evaluation: halt only at N_sup (the paper's protocol). `exploration`: the draws of
        `exploration_draws`, made beforehand (else drawn here from `generator`)."""
        max_steps = self.config.halt_max_steps
        halted = steps >= max_steps
        if self.training and max_steps > 1:
            halted = halted | (q_halt_logits > 0)
            if exploration is None:
                exploration = self.exploration_draws(steps.shape[0], steps.device, generator)
            uniform, min_steps = exploration
            explore = uniform < self.config.halt_exploration_prob
            halted = halted & (steps >= torch.where(explore, min_steps, 0))
        return halted

    def exploration_draws(self, batch: int, device: torch.device | str,
                          generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The training halting rule's random draws for `batch` slots: a uniform number per slot (explore when
        below `halt_exploration_prob`) and a forced minimum step count U{2..N_sup}. `TRMTrainer` draws them
        before the step and passes them to `forward` (`exploration=`): `torch.compile` cannot trace a call
        taking a `torch.Generator`, so the step then compiles as one graph."""
        shape = (batch,)
        uniform = torch.rand(shape, generator=generator, device=device)
        min_steps = torch.randint(2, self.config.halt_max_steps + 1, shape, generator=generator, device=device)
        return uniform, min_steps

    # -- forward: one supervision step ---------------------------------------------------------

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        puzzle_identifiers: torch.Tensor | None = None,
        state: TRMState | None = None,
        generator: torch.Generator | None = None,
        check_values: bool = True,
        exploration: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs,
    ) -> TRMOutput:
        """One supervision step on every slot.

        Rows of `input_ids`/`labels`/`puzzle_identifiers` are read only for slots that halted at the
        previous step (all slots when `state` is None); the other slots continue their own puzzle.
        `generator` seeds the exploration draws in training mode. `check_values=False` skips the id-range
        checks, which read the tensors on the host (a sync per step on an accelerator; they are skipped
        under `torch.compile` anyway): for callers that checked their data before moving it, as
        `TRMTrainer` does. `exploration` holds the halting rule's random draws made beforehand
        (`exploration_draws`), in place of drawing them here from `generator`.
        """
        if puzzle_identifiers is None:
            puzzle_identifiers = torch.zeros(input_ids.shape[0], dtype=torch.long, device=input_ids.device)
        self.check_inputs(input_ids, puzzle_identifiers, labels, values=check_values)
        if state is None:
            state = self.initial_state(input_ids, puzzle_identifiers, labels)
        elif state.batch_size != input_ids.shape[0]:
            raise ValueError(f"state holds {state.batch_size} slots but input_ids has {input_ids.shape[0]} rows")
        state = self.reset_halted(state, input_ids, puzzle_identifiers, labels)

        x = self.embed_inputs(state.input_ids, state.puzzle_identifiers)
        y, z, logits, q_halt_logits = self.supervision_step(x, state.y, state.z)

        with torch.no_grad():
            steps = state.steps + 1
            halted = self.halting_decision(steps, q_halt_logits, generator, exploration)
        new_state = TRMState(y=y, z=z, steps=steps, halted=halted, input_ids=state.input_ids,
                             puzzle_identifiers=state.puzzle_identifiers, labels=state.labels)

        loss = lm_loss = q_halt_loss = metrics = None
        if state.labels is not None:
            loss, lm_loss, q_halt_loss, metrics = self.compute_loss(logits, q_halt_logits, state.labels, new_state)
        return TRMOutput(loss=loss, lm_loss=lm_loss, q_halt_loss=q_halt_loss, logits=logits,
                         q_halt_logits=q_halt_logits, state=new_state, metrics=metrics)

    def compute_loss(self, logits: torch.Tensor, q_halt_logits: torch.Tensor, labels: torch.Tensor,
                     state: TRMState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """lm loss (per-sequence mean over scored cells) + w * BCE(q_halt, sequence fully correct),
        summed over slots and divided by the batch size (the reference divides by the global batch)."""
        batch = labels.shape[0]
        valid = labels != IGNORE_INDEX
        with torch.no_grad():
            counts = valid.sum(-1)
            divisor = counts.clamp_min(1)
            correct = valid & (logits.argmax(-1) == labels)
            seq_correct = correct.sum(-1) == counts
            finished = state.halted & (counts > 0)
            metrics = {
                "count": finished.sum(),
                "token_accuracy": torch.where(finished, correct.sum(-1).float() / divisor, 0.0).sum(),
                "exact_accuracy": (finished & seq_correct).sum(),
                "q_halt_accuracy": (finished & ((q_halt_logits >= 0) == seq_correct)).sum(),
                "steps": torch.where(finished, state.steps, 0).sum(),
            }
        per_token = (stablemax_cross_entropy if self.config.loss_type == "stablemax" else softmax_cross_entropy)(
            logits, labels
        )
        lm_loss = (per_token.sum(-1) / divisor).sum()
        q_halt_loss = F.binary_cross_entropy_with_logits(q_halt_logits, seq_correct.to(q_halt_logits.dtype),
                                                         reduction="sum")
        total = (lm_loss + self.config.q_halt_loss_weight * q_halt_loss) / batch
        metrics["lm_loss"] = lm_loss.detach()
        metrics["q_halt_loss"] = q_halt_loss.detach()
        return total.float(), (lm_loss / batch).float(), (q_halt_loss / batch).float(), metrics

    # -- inference ------------------------------------------------------------------------------

    @torch.no_grad()
    def solve(
        self,
        input_ids: torch.Tensor,
        puzzle_identifiers: torch.Tensor | None = None,
        max_steps: int | None = None,
        halting: str = "act",
        return_trajectory: bool = False,
        slots: int | None = None,
        samples: int = 1,
        noise_std: float = 0.0,
        selection: str = "halt",
        generator: torch.Generator | None = None,
        max_batch_rows: int | None = None,
        escalate: bool = False,
        escalate_after: int | None = None,
        escalate_confidence: float | None = None,
    ) -> TRMSolveOutput:
        """Refine answers for up to `max_steps` supervision steps (default `config.default_solve_steps`:
        `solve_max_steps` where set, else `halt_max_steps`; any larger count runs too, the carry simply
        continues, and ACT still stops a puzzle once q_halt > 0).

        `halting="act"` stops a puzzle once q_halt > 0; `halting="max"` runs every step (the paper's
        evaluation protocol). `slots` is how many puzzles run at once (default: all of them). Without
        it a halted puzzle leaves the batch, so later steps compute only the rest. With it the puzzles
        stream through `slots` rows and a row whose puzzle halted takes the next waiting puzzle at
        once (continuous batching, as the training carry refills halted slots), so the steps keep
        running full batches. Puzzles are independent: each gets the same answer and step count
        whatever `slots` is.

        Test-time scaling, as PTRM does it (Probabilistic TRM, arXiv:2605.19943; no retraining): a
        deterministic recursion that falls into a wrong basin stays there, so `samples=K` runs K
        trajectories of every puzzle as rows of the batch, and before every supervision step adds
        `noise_std * N(0, I)` to each trajectory's latent z (`z_L` in the reference code; the answer
        state y is left alone). Each trajectory halts on its own (ACT) or runs `max_steps`. One per
        puzzle is returned: `selection="halt"` (PTRM's rule: the halting head as verifier) takes the
        trajectory with the highest q_halt logit at its last step; `"vote"` takes the answer most
        trajectories reached, ties going to the higher q_halt logit, then the lower trajectory index.
        PTRM reports K = 100, 64 steps, noise_std = 0.3; the best scale depends on the model, so tune
        it on held-out puzzles. The noise comes from `generator` (default: torch's global generator):
        every trajectory draws from its own stream seeded from it, so a seed gives the same answers bit
        for bit, and `max_batch_rows`, `slots` or other trajectories' halting change no draw. At most
        `max_batch_rows` rows (puzzles x samples, default 4096 when K > 1) are computed at once, so
        memory does not grow with K (except `return_trajectory`, which keeps every trajectory's steps
        until the selection). `samples=1, noise_std=0` (the defaults) is the plain solve.

        Adaptive compute, `escalate=True`: every puzzle first runs one noise-free trajectory under ACT
        for at most `escalate_after` steps (default `config.default_solve_steps`). A puzzle whose halting
        head became confident keeps that answer: its halting probability rose above `escalate_confidence`
        (default 0.5, the ACT rule q_halt > 0; the first round halts there too). A higher threshold trusts
        fewer answers, for a halting head that is sure of some wrong ones. Only the other puzzles run
        `samples` noisy trajectories of up to `max_steps` steps (with `halting`), chosen by `selection`. Both rounds
        stream through the slot-refill loop, so batches stay full while puzzles remain. `total_steps`
        gives each puzzle's supervision steps over all its trajectories, `escalated` which ones went on.
        """
        if halting not in ("act", "max"):
            raise ValueError(f"halting must be 'act' or 'max', got {halting!r}")
        max_steps = self.config.default_solve_steps if max_steps is None else int(max_steps)
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        if slots is not None and (isinstance(slots, bool) or not isinstance(slots, int) or slots < 1):
            raise ValueError(f"slots must be a positive integer or None, got {slots!r}")
        check_sampling_arguments(samples, noise_std, selection, generator, max_batch_rows)
        check_escalation_arguments(escalate, escalate_after, samples, noise_std, return_trajectory,
                                   escalate_confidence)
        batch = input_ids.shape[0]
        device = input_ids.device
        if puzzle_identifiers is None:
            puzzle_identifiers = torch.zeros(batch, dtype=torch.long, device=device)
        self.check_inputs(input_ids, puzzle_identifiers, values=False)
        given = (input_ids, puzzle_identifiers)
        input_ids, puzzle_identifiers, invalid = self._clamped_ids(input_ids, puzzle_identifiers)

        if escalate:
            solved = self._escalating_refine(input_ids, puzzle_identifiers, max_steps, halting, slots, samples,
                                             noise_std, selection, generator, max_batch_rows,
                                             self.config.default_solve_steps if escalate_after is None
                                             else escalate_after, halting_logit(escalate_confidence))
            if bool(invalid):
                self.check_inputs(*given)
            return solved
        rows_at_once = rows_per_step(batch, samples, slots, max_batch_rows)
        if samples > 1:
            input_ids = input_ids.repeat_interleave(samples, 0)
            puzzle_identifiers = puzzle_identifiers.repeat_interleave(samples, 0)
        noise = LatentNoise(noise_std, generator) if noise_std > 0 else None
        solved = self._refine(input_ids, puzzle_identifiers, max_steps, halting, return_trajectory,
                              rows_at_once, noise)
        if bool(invalid):  # read once, after every step was queued: raises the message naming the bad ids
            self.check_inputs(*given)
        return solved if samples == 1 else select_trajectories(solved, samples, selection)

    def _escalating_refine(self, input_ids: torch.Tensor, puzzle_identifiers: torch.Tensor, max_steps: int,
                           halting: str, slots: int | None, samples: int, noise_std: float, selection: str,
                           generator: torch.Generator | None, max_batch_rows: int | None,
                           budget: int, confident_logit: float) -> TRMSolveOutput:
        """`solve(escalate=True)`: one trajectory under ACT (halting once q_halt > `confident_logit`) for every
        puzzle, K noisy ones for the unconfident."""
        batch = input_ids.shape[0]
        first = self._refine(input_ids, puzzle_identifiers, budget, "act", False,
                             batch if slots is None else min(batch, slots), None, halt_above=confident_logit)
        predictions, steps, q_final = first.predictions, first.steps, first.q_halt_logits
        total_steps = steps.clone()
        unsure = (q_final <= confident_logit).nonzero().squeeze(1)  # the one host sync between the two rounds
        escalated = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        selected = torch.zeros(batch, dtype=torch.long, device=input_ids.device)
        if unsure.numel():
            rows_at_once = rows_per_step(unsure.numel(), samples, slots, max_batch_rows)
            second = self._refine(input_ids[unsure].repeat_interleave(samples, 0),
                                  puzzle_identifiers[unsure].repeat_interleave(samples, 0), max_steps, halting,
                                  False, rows_at_once, LatentNoise(noise_std, generator))
            chosen = select_trajectories(second, samples, selection)
            predictions[unsure], steps[unsure], q_final[unsure] = chosen.predictions, chosen.steps, chosen.q_halt_logits
            total_steps[unsure] += chosen.sample_steps.sum(1)
            escalated[unsure] = True
            selected[unsure] = chosen.selected_sample
        return TRMSolveOutput(predictions=predictions, steps=steps, q_halt_logits=q_final, selected_sample=selected,
                              total_steps=total_steps, escalated=escalated)

    def _clamped_ids(self, input_ids: torch.Tensor, puzzle_identifiers: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Ids outside their tables replaced by 0 (no kernel indexes out of bounds; on a GPU that would be a
        device-side assert) and a 0-dim device flag saying whether there were any, without a host sync."""
        bad_ids = (input_ids < 0) | (input_ids >= self.config.vocab_size)
        bad_pids = (puzzle_identifiers < 0) | (puzzle_identifiers >= self.config.num_puzzle_identifiers)
        return input_ids.masked_fill(bad_ids, 0), puzzle_identifiers.masked_fill(bad_pids, 0), bad_ids.any() | bad_pids.any()

    def _refine(self, input_ids: torch.Tensor, puzzle_identifiers: torch.Tensor, max_steps: int, halting: str,
                return_trajectory: bool, rows_at_once: int, noise: LatentNoise | None,
                halt_above: float = 0.0) -> TRMSolveOutput:
        """The refinement loop of `solve` over independent rows, `rows_at_once` of them computed per step;
        under ACT a row halts once its q_halt logit exceeds `halt_above`."""
        batch = input_ids.shape[0]
        device = input_ids.device
        dtype = self._compute_dtype(device.type)
        predictions = torch.zeros_like(input_ids)
        steps = torch.zeros(batch, dtype=torch.int32, device=device)
        q_final = torch.zeros(batch, dtype=torch.float32, device=device)
        trajectory = torch.zeros(batch, max_steps, input_ids.shape[1], dtype=input_ids.dtype, device=device) \
            if return_trajectory else None
        trajectory_q = torch.zeros(batch, max_steps, dtype=torch.float32, device=device) if return_trajectory else None

        rows = torch.arange(min(batch, rows_at_once), device=device)  # the puzzle each running row refines
        row_steps = torch.zeros(rows.shape[0], dtype=torch.int32, device=device)
        x, y, z = self._start_puzzles(input_ids[rows], puzzle_identifiers[rows], dtype)
        waiting = rows.shape[0]  # index of the next puzzle to load
        batch_steps = 0  # halting="max": steps of the running rows, which all started together
        while rows.numel():
            if noise is not None:
                z = noise(rows, z)
            y, z, logits, q_halt = self.supervision_step(x, y, z)
            row_steps += 1
            answer = logits.argmax(-1).to(input_ids.dtype)
            predictions[rows] = answer
            q_final[rows] = q_halt
            steps[rows] = row_steps
            if return_trajectory:
                trajectory[rows, row_steps.long() - 1] = answer
                trajectory_q[rows, row_steps.long() - 1] = q_halt
            if halting == "max":  # the running rows halt together and the host counts their steps: no sync
                batch_steps += 1
                if batch_steps < max_steps:
                    continue
                count = min(rows.shape[0], batch - waiting)  # the next puzzles, as many as fit (none: done)
                rows = torch.arange(waiting, waiting + count, device=device)
                waiting, batch_steps = waiting + count, 0
                row_steps = torch.zeros(count, dtype=torch.int32, device=device)
                if count:
                    x, y, z = self._start_puzzles(input_ids[rows], puzzle_identifiers[rows], dtype)
                continue
            halted = (row_steps >= max_steps) | (q_halt > halt_above)
            free = halted.nonzero().squeeze(1)  # ACT: this step's one host sync
            if not free.numel():
                continue
            refill = free[:batch - waiting]
            if refill.numel():  # halted rows take the next puzzles at once
                new = torch.arange(waiting, waiting + refill.numel(), device=device)
                waiting += refill.numel()
                x[refill], y[refill], z[refill] = self._start_puzzles(input_ids[new], puzzle_identifiers[new], dtype)
                rows[refill] = new
                row_steps[refill] = 0
                halted[refill] = False
            drop = free.numel() - refill.numel()
            if drop:  # nothing left to load: the batch shrinks; the kept rows in order, sizes known on the host
                keep = torch.argsort(halted.to(torch.int8), stable=True)[:rows.shape[0] - drop]
                rows, row_steps, x, y, z = rows[keep], row_steps[keep], x[keep], y[keep], z[keep]
        if return_trajectory:  # after its last step a puzzle's answer and q_halt stay as they were
            last = torch.minimum(torch.arange(max_steps, device=device), steps.long().unsqueeze(1) - 1).clamp_min(0)
            trajectory = trajectory.gather(1, last.unsqueeze(-1).expand_as(trajectory))
            trajectory_q = trajectory_q.gather(1, last)
        return TRMSolveOutput(predictions=predictions, steps=steps, q_halt_logits=q_final,
                              trajectory=trajectory, trajectory_q_halt_logits=trajectory_q)

    def _start_puzzles(self, input_ids: torch.Tensor, puzzle_identifiers: torch.Tensor,
                       dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x, y and z of puzzles about to take their first step: embedded question, y_init, z_init."""
        shape = (input_ids.shape[0], self.config.total_seq_len, self.config.hidden_size)
        x = self.embed_inputs(input_ids, puzzle_identifiers).to(dtype)
        return x, self.y_init.detach().to(dtype).expand(shape).clone(), self.z_init.detach().to(dtype).expand(shape).clone()

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        puzzle_identifiers: torch.Tensor | None = None,
        max_steps: int | None = None,
        halting: str = "max",
        samples: int = 1,
        noise_std: float = 0.0,
        selection: str = "halt",
        generator: torch.Generator | None = None,
        max_batch_rows: int | None = None,
        escalate: bool = False,
        escalate_after: int | None = None,
        escalate_confidence: float | None = None,
    ) -> torch.LongTensor:
        """The answer token ids, `(batch, seq_len)`, the way `generate` returns ids in transformers.

        `solve(...).predictions`, for code written against that convention; `solve` is the rich call
        (steps used, q_halt logits, every step's answer, the K candidates of a sampled run). `halting`
        defaults to the paper's protocol, `"max"`; `samples`, `noise_std`, `selection`, `generator` and
        `max_batch_rows` are `solve`'s test-time scaling, `escalate`, `escalate_after` and
        `escalate_confidence` its adaptive compute. This is not `GenerationMixin.generate`: TRM
        refines the whole grid at once, so there is no token-by-token decoding or cache, and no
        generation config (`can_generate()` stays False, so `save_pretrained` writes no
        `generation_config.json`).
        """
        return self.solve(input_ids, puzzle_identifiers=puzzle_identifiers, max_steps=max_steps, halting=halting,
                          samples=samples, noise_std=noise_std, selection=selection, generator=generator,
                          max_batch_rows=max_batch_rows, escalate=escalate,
                          escalate_after=escalate_after, escalate_confidence=escalate_confidence).predictions

    # -- bookkeeping ----------------------------------------------------------------------------

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, shipping the `grid-reasoning` pipeline as well.

        The import below is a relative import, so the copy of this file's code that transformers writes
        beside the weights takes `pipeline_trm.py` (and the modules it imports) along, and
        `custom_pipelines` in config.json lets `pipeline(model=DIR, trust_remote_code=True)` find it.
        """
        from .pipeline_trm import custom_pipelines_entry

        self.config.custom_pipelines = custom_pipelines_entry()
        return super().save_pretrained(save_directory, *args, **kwargs)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters of the network and of the puzzle-identifier table, apart: an ARC model's table
        (876,406 x 512) holds 449M of its 456M weights, while the network that recurses is 7M."""
        table = sum(p.numel() for name, p in self.named_parameters() if name.startswith("puzzle_embedding."))
        total = sum(p.numel() for p in self.parameters())
        return {"network": total - table, "puzzle_embedding": table, "total": total,
                "reference": self.num_reference_parameters()}

    def num_reference_parameters(self) -> int:
        """Parameters counted as the reference counts them: without the puzzle table and y/z_init."""
        skip = ("puzzle_embedding.", "y_init", "z_init")
        return sum(p.numel() for name, p in self.named_parameters() if not name.startswith(skip))


if "trm" not in CONFIG_MAPPING:
    # The first copy keeps "trm": a checkpoint's remote code loaded later in the same process (pipeline(model=...,
    # trust_remote_code=True)) must not swap the installed classes for its own under AutoConfig/AutoModel.
    AutoConfig.register("trm", TRMConfig)
    AutoModel.register(TRMConfig, TRMForGridReasoning)
TRMConfig.register_for_auto_class()
TRMForGridReasoning.register_for_auto_class("AutoModel")

__all__ = [
    "CheckpointLoadError", "TRMForGridReasoning", "TRMPreTrainedModel", "TRMState", "TRMOutput", "TRMSolveOutput",
    "RecursiveCore", "stablemax_cross_entropy", "log_stablemax", "rms_norm",
]
