"""Tiny Recursive Model (TRM) for Hugging Face transformers.

Importing the package registers `TRMConfig` / `TRMForGridReasoning` with `AutoConfig` / `AutoModel`.
"""

from .configuration_trm import PRESETS, TRMConfig

__all__ = ["TRMConfig", "PRESETS"]
