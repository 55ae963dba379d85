"""Configuration of the Tiny Recursive Model (TRM, arXiv:2510.04871).

Every knob of the reference model lives here, so a saved checkpoint carries everything needed to
rebuild the network and to decode its own grids. Presets reproduce the paper's four runs.
This file is copied next to saved checkpoints for `trust_remote_code`: it imports only
third-party libraries.
"""

from __future__ import annotations

import math
from typing import Any

from transformers import PreTrainedConfig

MIXERS = ("attention", "mlp_t")
POS_ENCODINGS = ("rope", "learned", "none")
LOSS_TYPES = ("stablemax", "softmax")
# Boolean fields whose True departs from the paper's design (they need `ablation` to name the variant).
ABLATION_SWITCHES = ("backprop_all_cycles", "single_latent")

SUDOKU_SYMBOLS = ["<pad>", "."] + [str(d) for d in range(1, 10)]  # 0 PAD, 1 blank, 2..10 digits
MAZE_SYMBOLS = ["<pad>", "#", " ", "S", "G", "o"]  # 0 PAD, then the CSV alphabet "# SGo"
ARC_SYMBOLS = ["<pad>", "<eos>"] + [str(c) for c in range(10)]  # colours 0..9 -> ids 2..11

PRESETS: dict[str, dict[str, Any]] = {
    # Sudoku-Extreme, TRM-MLP: the sequence-mixing MLP replaces attention (paper: 87.4%).
    "sudoku-mlp": dict(
        task="sudoku", mixer="mlp_t", pos_encodings="none", vocab_size=11, seq_len=81,
        grid_shape=(9, 9), L_cycles=6, id_to_symbol=SUDOKU_SYMBOLS, blank_token_id=1,
    ),
    # Sudoku-Extreme, TRM-Att (paper: 74.7%).
    "sudoku-att": dict(
        task="sudoku", mixer="attention", pos_encodings="rope", vocab_size=11, seq_len=81,
        grid_shape=(9, 9), L_cycles=6, id_to_symbol=SUDOKU_SYMBOLS, blank_token_id=1,
    ),
    # Maze-Hard 30x30 (paper: 85.3%); the reference command used n = 4.
    "maze": dict(
        task="maze", mixer="attention", pos_encodings="rope", vocab_size=6, seq_len=900,
        grid_shape=(30, 30), L_cycles=4, id_to_symbol=MAZE_SYMBOLS, blank_token_id=None,
    ),
    # ARC-AGI on a 30x30 canvas with one puzzle id per augmented task variant.
    "arc": dict(
        task="arc", mixer="attention", pos_encodings="rope", vocab_size=12, seq_len=900,
        grid_shape=(30, 30), L_cycles=4, id_to_symbol=ARC_SYMBOLS, blank_token_id=None,
    ),
}


class TRMConfig(PreTrainedConfig):
    r"""
    Configuration of a [`TRMForGridReasoning`]. Defaults are the reference TRM-Att Sudoku model.

    Args:
        vocab_size (`int`, *optional*, defaults to 11):
            Number of token ids, PAD included.
        seq_len (`int`, *optional*, defaults to 81):
            Number of grid tokens per puzzle (the puzzle-id prefix is not counted).
        grid_shape (`tuple[int, int]`, *optional*, defaults to `(9, 9)`):
            Rows and columns of the grid; `rows * cols` must equal `seq_len`.
        hidden_size (`int`, *optional*, defaults to 512):
            Width D of the embeddings, `y`, `z` and the network.
        num_layers (`int`, *optional*, defaults to 2):
            Blocks in the single shared network; the paper found 2 better than 4.
        H_cycles (`int`, *optional*, defaults to 3):
            T: latent recursions per supervision step; only the last one gets gradients.
        L_cycles (`int`, *optional*, defaults to 6):
            n: z-updates per latent recursion (the reference maze/ARC runs use 4).
        mixer (`str`, *optional*, defaults to `"attention"`):
            Token mixing: `"attention"` (self-attention) or `"mlp_t"` (SwiGLU across the sequence).
        num_heads (`int`, *optional*, defaults to 8):
            Attention heads; `hidden_size` must be divisible by it.
        expansion (`float`, *optional*, defaults to 4.0):
            SwiGLU expansion; inner width is `round(expansion * width * 2 / 3)` rounded up to 256.
        pos_encodings (`str`, *optional*, defaults to `"rope"`):
            `"rope"`, `"learned"` or `"none"` (the MLP variant needs none).
        rope_theta (`float`, *optional*, defaults to 10000.0):
            RoPE base.
        rms_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the weightless RMS norm.
        puzzle_emb_len (`int`, *optional*, defaults to 16):
            Prefix tokens prepended to the grid; the puzzle-id vector fills token 0, the rest are 0.
            Set 0 to drop the prefix (small models on generated data).
        num_puzzle_identifiers (`int`, *optional*, defaults to 1):
            Rows of the zero-initialised puzzle-id table (ARC: one per augmented task variant).
        halt_max_steps (`int`, *optional*, defaults to 16):
            N_sup: most supervision steps per sample.
        solve_max_steps (`int`, *optional*):
            Supervision steps `solve` (and evaluation, pipelines, the app) runs when not told; None means
            `halt_max_steps`. Set where training used fewer steps than inference should (the demo trains
            with N_sup = 2 and is scored with 16).
        halt_exploration_prob (`float`, *optional*, defaults to 0.1):
            Chance per training step that a slot is forced to run at least U{2..N_sup} steps.
        q_halt_loss_weight (`float`, *optional*, defaults to 0.5):
            Weight of the halting BCE beside the answer loss.
        loss_type (`str`, *optional*, defaults to `"stablemax"`):
            `"stablemax"` (reference) or `"softmax"` cross-entropy.
        task (`str`, *optional*, defaults to `"sudoku"`):
            Puzzle family, used to pick metrics and to print grids: `"sudoku"`, `"maze"`, `"arc"` or other.
        id_to_symbol (`list[str]`, *optional*):
            Symbol of each token id, so a checkpoint decodes its own grids. Defaults to the Sudoku vocabulary.
        pad_token_id (`int`, *optional*, defaults to 0):
            Id of padding; never a valid answer cell.
        blank_token_id (`int`, *optional*, defaults to 1):
            Id of an unknown cell in the question, or `None` if the task has no blanks.
        initializer_range (`float`, *optional*, defaults to 1.0):
            Std of the initial `y_init`/`z_init` (the reference uses 1).
        ablation (`str`, *optional*):
            Name of the ablation variant this network belongs to; `None` for the paper's design. Any switch
            below that departs from the paper requires a name, so such a checkpoint is never taken for a
            paper preset (`evaluation.detect_preset` returns `None` for it).
        backprop_all_cycles (`bool`, *optional*, defaults to `False`):
            Ablation: back-propagate through all T latent recursions instead of only the last one.
        single_latent (`bool`, *optional*, defaults to `False`):
            Ablation (the paper's "single feature"): one latent `z` updated n+1 times from `x`, answer read
            from `z`; there is no separate `y`.
    """

    model_type = "trm"

    def __init__(
        self,
        vocab_size: int = 11,
        seq_len: int = 81,
        grid_shape: tuple[int, int] | list[int] = (9, 9),
        hidden_size: int = 512,
        num_layers: int = 2,
        H_cycles: int = 3,
        L_cycles: int = 6,
        mixer: str = "attention",
        num_heads: int = 8,
        expansion: float = 4.0,
        pos_encodings: str = "rope",
        rope_theta: float = 10000.0,
        rms_norm_eps: float = 1e-5,
        puzzle_emb_len: int = 16,
        num_puzzle_identifiers: int = 1,
        halt_max_steps: int = 16,
        solve_max_steps: int | None = None,
        halt_exploration_prob: float = 0.1,
        q_halt_loss_weight: float = 0.5,
        loss_type: str = "stablemax",
        task: str = "sudoku",
        id_to_symbol: list[str] | None = None,
        pad_token_id: int = 0,
        blank_token_id: int | None = 1,
        initializer_range: float = 1.0,
        ablation: str | None = None,
        backprop_all_cycles: bool = False,
        single_latent: bool = False,
        **kwargs: Any,
    ) -> None:
        self.vocab_size = vocab_size
        self.seq_len = seq_len
        self.grid_shape = list(grid_shape)
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.H_cycles = H_cycles
        self.L_cycles = L_cycles
        self.mixer = mixer
        self.num_heads = num_heads
        self.expansion = expansion
        self.pos_encodings = pos_encodings
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.puzzle_emb_len = puzzle_emb_len
        self.num_puzzle_identifiers = num_puzzle_identifiers
        self.halt_max_steps = halt_max_steps
        self.solve_max_steps = solve_max_steps
        self.halt_exploration_prob = halt_exploration_prob
        self.q_halt_loss_weight = q_halt_loss_weight
        self.loss_type = loss_type
        self.task = task
        self.id_to_symbol = list(id_to_symbol) if id_to_symbol is not None else list(SUDOKU_SYMBOLS)
        self.blank_token_id = blank_token_id
        self.initializer_range = initializer_range
        self.ablation = ablation
        self.backprop_all_cycles = backprop_all_cycles
        self.single_latent = single_latent
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.pad_token_id = pad_token_id
        self.validate()

    @property
    def total_seq_len(self) -> int:
        """Length of the sequence the network sees: puzzle-id prefix + grid."""
        return self.seq_len + self.puzzle_emb_len

    @property
    def default_solve_steps(self) -> int:
        """Supervision steps of inference when the caller gives none."""
        return self.halt_max_steps if self.solve_max_steps is None else self.solve_max_steps

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def validate(self) -> None:
        """Raise `ValueError` naming the first field that cannot build a working model."""

        def fail(field: str, message: str) -> None:
            raise ValueError(f"TRMConfig.{field}: {message}")

        optional = ("solve_max_steps",)  # None: fall back to another field
        for field in ("vocab_size", "seq_len", "hidden_size", "num_layers", "H_cycles", "L_cycles",
                      "num_heads", "halt_max_steps", "num_puzzle_identifiers", *optional):
            value = getattr(self, field)
            if value is None and field in optional:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(field, f"must be a positive integer{' or None' if field in optional else ''}, got {value!r}")
        if not isinstance(self.puzzle_emb_len, int) or self.puzzle_emb_len < 0:
            fail("puzzle_emb_len", f"must be a non-negative integer, got {self.puzzle_emb_len!r}")
        if self.mixer not in MIXERS:
            fail("mixer", f"must be one of {MIXERS}, got {self.mixer!r}")
        if self.pos_encodings not in POS_ENCODINGS:
            fail("pos_encodings", f"must be one of {POS_ENCODINGS}, got {self.pos_encodings!r}")
        if self.loss_type not in LOSS_TYPES:
            fail("loss_type", f"must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        if self.mixer == "attention" and self.hidden_size % self.num_heads != 0:
            fail("hidden_size", f"{self.hidden_size} is not divisible by num_heads={self.num_heads}")
        if self.mixer == "attention" and self.pos_encodings == "rope" and self.head_dim % 2 != 0:
            fail("num_heads", f"RoPE needs an even head dim, got {self.head_dim}")
        if len(self.grid_shape) != 2 or any(int(s) < 1 for s in self.grid_shape):
            fail("grid_shape", f"must be two positive integers, got {self.grid_shape!r}")
        if self.grid_shape[0] * self.grid_shape[1] != self.seq_len:
            fail("seq_len", f"{self.seq_len} does not equal rows*cols of grid_shape {tuple(self.grid_shape)}")
        if not self.expansion > 0:
            fail("expansion", f"must be positive, got {self.expansion!r}")
        if not 0.0 <= self.halt_exploration_prob <= 1.0:
            fail("halt_exploration_prob", f"must be in [0, 1], got {self.halt_exploration_prob!r}")
        if self.q_halt_loss_weight < 0:
            fail("q_halt_loss_weight", f"must be non-negative, got {self.q_halt_loss_weight!r}")
        if not self.rms_norm_eps > 0:
            fail("rms_norm_eps", f"must be positive, got {self.rms_norm_eps!r}")
        if len(self.id_to_symbol) != self.vocab_size:
            fail("id_to_symbol", f"has {len(self.id_to_symbol)} symbols but vocab_size is {self.vocab_size}")
        repeated = sorted({symbol for symbol in self.id_to_symbol if self.id_to_symbol.count(symbol) > 1})
        if repeated:
            fail("id_to_symbol", f"repeats {repeated}: each token id needs its own symbol, or text puzzles and "
                                 f"answers could not be read back unambiguously")
        if not 0 <= self.pad_token_id < self.vocab_size:
            fail("pad_token_id", f"{self.pad_token_id} is outside the vocabulary of {self.vocab_size}")
        if self.blank_token_id is not None and not 0 <= self.blank_token_id < self.vocab_size:
            fail("blank_token_id", f"{self.blank_token_id} is outside the vocabulary of {self.vocab_size}")
        if self.ablation is not None and (not isinstance(self.ablation, str) or not self.ablation):
            fail("ablation", f"must be a non-empty variant name or None, got {self.ablation!r}")
        for switch in ABLATION_SWITCHES:
            value = getattr(self, switch)
            if not isinstance(value, bool):
                fail(switch, f"must be true or false, got {value!r}")
            if value and self.ablation is None:
                fail("ablation", f"{switch}=True departs from the paper's model; name the variant in `ablation` "
                                 f"so the checkpoint is not taken for a paper preset")

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "TRMConfig":
        """Build one of the paper's configurations: `sudoku-mlp`, `sudoku-att`, `maze`, `arc`."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def swiglu_inner_width(self, width: int) -> int:
        """Inner width of a SwiGLU over `width` features, rounded up to a multiple of 256."""
        return _round_up(round(self.expansion * width * 2 / 3), 256)


def _round_up(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


__all__ = ["TRMConfig", "PRESETS", "SUDOKU_SYMBOLS", "MAZE_SYMBOLS", "ARC_SYMBOLS"]
