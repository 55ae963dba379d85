"""Tiny Recursive Model (TRM) for Hugging Face transformers.

Importing the package registers `TRMConfig` / `TRMForGridReasoning` with `AutoConfig` / `AutoModel`, and
the `grid-reasoning` pipeline (`GridReasoningPipeline`) with transformers' pipeline registry.
"""

from .configuration_trm import PRESETS, TRMConfig
from .modeling_trm import TRMForGridReasoning, TRMOutput, TRMSolveOutput, TRMState
from .pipeline_trm import GridReasoningPipeline

__all__ = ["TRMConfig", "PRESETS", "TRMForGridReasoning", "TRMOutput", "TRMSolveOutput", "TRMState",
           "GridReasoningPipeline"]
