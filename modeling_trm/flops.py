"""Analytic matmul FLOP counts of TRM (2 FLOPs per multiply-add; norms and activations not counted).

Per sample and `net` call, with L = prefix + grid tokens, D = hidden size, I = SwiGLU inner widths:
  attention block  8 L D^2 + 4 L^2 D  (qkv + output projections, scores and weighted values)
  mlp_t block      6 D L I_L           (SwiGLU across the sequence)
  channel SwiGLU   6 L D I_D
A supervision step runs T (n + 1) calls forward; training adds the backward of the last n + 1 calls
(twice their forward cost). Sudoku-MLP: 1.22 GFLOP per call, 25.6 forward, 42.7 per training step.
"""

from __future__ import annotations

from .configuration_trm import TRMConfig


def net_call_flops(config: TRMConfig) -> int:
    """FLOPs of one call of the shared network for one sample."""
    length, width = config.total_seq_len, config.hidden_size
    if config.mixer == "attention":
        mixer = 8 * length * width * width + 4 * length * length * width
    else:
        mixer = 6 * width * length * config.swiglu_inner_width(length)
    channel = 6 * length * width * config.swiglu_inner_width(width)
    return config.num_layers * (mixer + channel)


def heads_flops(config: TRMConfig) -> int:
    return 2 * config.seq_len * config.hidden_size * config.vocab_size + 2 * config.hidden_size * 2


def forward_step_flops(config: TRMConfig, batch_size: int = 1) -> int:
    """One supervision step without gradients (what `solve` runs per step)."""
    calls = config.H_cycles * (config.L_cycles + 1)
    return batch_size * (calls * net_call_flops(config) + heads_flops(config))


def training_step_flops(config: TRMConfig, batch_size: int = 1) -> int:
    """Forward of all T cycles plus backward (2x forward) of the last cycle and the heads."""
    grad_calls = config.L_cycles + 1
    backward = 2 * (grad_calls * net_call_flops(config) + heads_flops(config))
    return forward_step_flops(config, batch_size) + batch_size * backward
