"""Tiny Recursive Model (TRM) for Hugging Face transformers.

Importing the package registers `TRMConfig` / `TRMForGridReasoning` with `AutoConfig` / `AutoModel`.
"""

from .configuration_trm import PRESETS, TRMConfig
from .modeling_trm import TRMForGridReasoning, TRMOutput, TRMSolveOutput, TRMState

__all__ = ["TRMConfig", "PRESETS", "TRMForGridReasoning", "TRMOutput", "TRMSolveOutput", "TRMState"]
