"""A plain eager TRM written the obvious way, as the yardstick for the package's speed.

Same network, same recursion, same FLOPs as `modeling_trm` (TRM_FACTS §1-§3), but written as one
would write it first: separate gate and up `nn.Linear`s, norms that cast to fp32 and back
explicitly, RoPE in fp32, `torch.autocast` for bf16 with the residual stream in fp32, the ACT carry
as a few `torch.where`s, and `torch.optim.AdamW`. It lives here, not in the package, and is timed
in the same run as the package (`benchmarks/run.py`).

`PlainTRM.load_package_weights` copies a `TRMForGridReasoning`'s weights (splitting the fused
gate/up and using the same qkv layout), so tests can check that both compute the same function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from modeling_trm import TRMConfig


def plain_rms_norm(hidden: torch.Tensor, eps: float) -> torch.Tensor:
    dtype = hidden.dtype
    hidden = hidden.to(torch.float32)
    variance = hidden.pow(2).mean(-1, keepdim=True)
    return (hidden * torch.rsqrt(variance + eps)).to(dtype)


class PlainSwiGLU(nn.Module):
    def __init__(self, width: int, inner: int) -> None:
        super().__init__()
        self.gate = nn.Linear(width, inner, bias=False)
        self.up = nn.Linear(width, inner, bias=False)
        self.down = nn.Linear(inner, width, bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(hidden)) * self.up(hidden))


class PlainAttention(nn.Module):
    def __init__(self, config: TRMConfig) -> None:
        super().__init__()
        self.heads, self.head_dim = config.num_heads, config.head_dim
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=False)
        self.out = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.use_rope = config.pos_encodings == "rope"
        inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, self.head_dim, 2).float() / self.head_dim))
        angles = torch.outer(torch.arange(config.total_seq_len).float(), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)  # (L, d)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def rope(self, t: torch.Tensor) -> torch.Tensor:  # (B, H, L, d)
        t32 = t.float()
        half = t32.shape[-1] // 2
        rotated = torch.cat((-t32[..., half:], t32[..., :half]), dim=-1)
        return (t32 * self.cos + rotated * self.sin).to(t.dtype)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        batch, length, width = hidden.shape
        q, k, v = self.qkv(hidden).split(width, dim=-1)
        q, k, v = (t.view(batch, length, self.heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        if self.use_rope:
            q, k = self.rope(q), self.rope(k)
        attended = F.scaled_dot_product_attention(q, k, v)
        return self.out(attended.transpose(1, 2).reshape(batch, length, width))


class PlainBlock(nn.Module):
    def __init__(self, config: TRMConfig) -> None:
        super().__init__()
        self.eps = config.rms_norm_eps
        self.attention = PlainAttention(config) if config.mixer == "attention" else None
        length = config.total_seq_len
        self.token_mlp = None if self.attention else PlainSwiGLU(length, config.swiglu_inner_width(length))
        self.mlp = PlainSwiGLU(config.hidden_size, config.swiglu_inner_width(config.hidden_size))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.attention is not None:
            hidden = plain_rms_norm(hidden + self.attention(hidden), self.eps)
        else:
            transposed = hidden.transpose(1, 2)  # (B, D, L): the MLP mixes positions
            transposed = plain_rms_norm(transposed + self.token_mlp(transposed), self.eps)
            hidden = transposed.transpose(1, 2)
        return plain_rms_norm(hidden + self.mlp(hidden), self.eps)


@dataclass
class PlainCarry:
    y: torch.Tensor
    z: torch.Tensor
    steps: torch.Tensor
    halted: torch.Tensor
    input_ids: torch.Tensor
    labels: torch.Tensor


class PlainTRM(nn.Module):
    """TRM as a plain `nn.Module`; `training_step` is one supervision step with the ACT carry."""

    def __init__(self, config: TRMConfig) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_size
        self.embed = nn.Embedding(config.vocab_size, d)
        self.puzzle_embed = nn.Embedding(config.num_puzzle_identifiers, d)
        self.blocks = nn.ModuleList(PlainBlock(config) for _ in range(config.num_layers))
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        self.q_head = nn.Linear(d, 2, bias=True)
        self.y_init = nn.Parameter(torch.randn(d).clamp(-2, 2), requires_grad=False)
        self.z_init = nn.Parameter(torch.randn(d).clamp(-2, 2), requires_grad=False)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=1 / math.sqrt(module.in_features))
        nn.init.zeros_(self.q_head.weight)
        nn.init.constant_(self.q_head.bias, -5.0)

    def embed_inputs(self, input_ids: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(input_ids)
        prefix = torch.zeros(input_ids.shape[0], self.config.puzzle_emb_len, tokens.shape[-1])
        prefix[:, 0] = self.puzzle_embed(torch.zeros(input_ids.shape[0], dtype=torch.long))
        return math.sqrt(tokens.shape[-1]) * torch.cat((prefix, tokens), dim=1)

    def net(self, hidden: torch.Tensor, injection: torch.Tensor) -> torch.Tensor:
        hidden = hidden + injection
        for block in self.blocks:
            hidden = block(hidden)
        return hidden

    def latent_recursion(self, x, y, z):
        for _ in range(self.config.L_cycles):
            z = self.net(z, y + x)
        return self.net(y, z), z

    def supervision_step(self, x, y, z):
        with torch.no_grad():
            for _ in range(self.config.H_cycles - 1):
                y, z = self.latent_recursion(x, y, z)
        y, z = self.latent_recursion(x, y, z)
        logits = self.lm_head(y[:, self.config.puzzle_emb_len:])
        q_halt = self.q_head(y[:, 0])[:, 0].float()
        return y.detach(), z.detach(), logits, q_halt

    def new_carry(self, input_ids: torch.Tensor, labels: torch.Tensor) -> PlainCarry:
        shape = (input_ids.shape[0], self.config.total_seq_len, self.config.hidden_size)
        return PlainCarry(y=self.y_init.expand(shape).clone(), z=self.z_init.expand(shape).clone(),
                          steps=torch.zeros(input_ids.shape[0], dtype=torch.long),
                          halted=torch.ones(input_ids.shape[0], dtype=torch.bool), input_ids=input_ids, labels=labels)

    def training_step(self, carry: PlainCarry, input_ids: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, PlainCarry]:
        """Reset halted slots, run one supervision step, return the loss and the next carry."""
        reset = carry.halted
        y = torch.where(reset[:, None, None], self.y_init, carry.y)
        z = torch.where(reset[:, None, None], self.z_init, carry.z)
        steps = torch.where(reset, 0, carry.steps)
        input_ids = torch.where(reset[:, None], input_ids, carry.input_ids)
        labels = torch.where(reset[:, None], labels, carry.labels)
        y, z, logits, q_halt = self.supervision_step(self.embed_inputs(input_ids), y, z)
        loss, correct = plain_loss(logits, q_halt, labels)
        steps = steps + 1
        with torch.no_grad():
            halted = (steps >= self.config.halt_max_steps) | (q_halt > 0)
            explore = torch.rand(steps.shape) < self.config.halt_exploration_prob
            min_steps = torch.randint(2, self.config.halt_max_steps + 1, steps.shape)
            halted = halted & (steps >= torch.where(explore, min_steps, 0))
        return loss, PlainCarry(y=y, z=z, steps=steps, halted=halted, input_ids=input_ids, labels=labels)

    @torch.no_grad()
    def load_package_weights(self, model: nn.Module) -> None:
        """Copy the weights of a `TRMForGridReasoning` with the same config."""
        self.embed.weight.copy_(model.embed_tokens.weight)
        self.puzzle_embed.weight.copy_(model.puzzle_embedding.weight)
        self.lm_head.weight.copy_(model.lm_head.weight)
        self.q_head.weight.copy_(model.q_head.weight)
        self.q_head.bias.copy_(model.q_head.bias)
        self.y_init.copy_(model.y_init)
        self.z_init.copy_(model.z_init)
        for plain, block in zip(self.blocks, model.core.layers):
            pairs = [(plain.mlp, block.mlp)]
            if plain.attention is not None:
                plain.attention.qkv.weight.copy_(block.self_attn.qkv_proj.weight)
                plain.attention.out.weight.copy_(block.self_attn.o_proj.weight)
            else:
                pairs.append((plain.token_mlp, block.mlp_t.swiglu))
            for mine, theirs in pairs:
                gate, up = theirs.gate_up_proj.weight.chunk(2, dim=0)
                mine.gate.weight.copy_(gate)
                mine.up.weight.copy_(up)
                mine.down.weight.copy_(theirs.down_proj.weight)


def plain_loss(logits: torch.Tensor, q_halt: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stable-max cross-entropy (float64) per sequence + 0.5 * BCE(q_halt, sequence correct), batch mean."""
    logits64 = logits.double()
    s = torch.where(logits64 < 0, 1 / (1 - logits64 + 1e-30), logits64 + 1)  # epsilon as in the reference
    log_probs = torch.log(s / s.sum(-1, keepdim=True))
    valid = labels != -100
    picked = torch.gather(log_probs, -1, torch.where(valid, labels, 0).unsqueeze(-1)).squeeze(-1)
    lm_loss = (-(picked * valid).sum(-1) / valid.sum(-1).clamp_min(1)).sum()
    with torch.no_grad():
        correct = ((logits.argmax(-1) == labels) | ~valid).all(-1)
    q_loss = F.binary_cross_entropy_with_logits(q_halt, correct.float(), reduction="sum")
    return (lm_loss + 0.5 * q_loss) / labels.shape[0], correct


def plain_optimizer(model: PlainTRM) -> torch.optim.Optimizer:
    """`torch.optim.AdamW` with the recipe's betas and decay (no foreach/fused options: the defaults)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=1.0)
