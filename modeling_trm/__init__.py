"""Tiny Recursive Model (TRM) for Hugging Face transformers.

Layout (each folder has one job; the model files stay flat because `save_pretrained` ships them as
remote code):

    configuration_trm.py, modeling_trm.py, pipeline_trm.py,   the model, its config and the `grid-reasoning`
    arc_canvas.py, grid_checks.py, puzzle_text.py, threads.py pipeline (what `trust_remote_code` loads);
                                                              threads.py: CPU thread counts for all commands
    training/      TRMTrainer, optimizers + EMA, sample streams, curriculum, learning curves, one run per recipe
    inference/     scoring checkpoints (`trm eval`), pictures, the browser demo app
    experiments/   `trm demo` and `trm ablate` workflows
    data/, metrics/  dataset builders and generators; task metrics
    commands/      the `trm` command line, one module per subcommand
    convert.py, publish.py   reference checkpoints; Hub uploads and cards
    dtypes.py      the compute dtype each device runs natively (bf16 only with bf16 units)

The names below load on first use (PEP 562), so `import modeling_trm` and the `trm` command line stay
cheap. Loading any of them imports the model module, which registers `TRMConfig` / `TRMForGridReasoning`
with `AutoConfig` / `AutoModel`; the pipeline module registers the `grid-reasoning` task.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TRMConfig": "configuration_trm",
    "PRESETS": "configuration_trm",
    "TRMForGridReasoning": "modeling_trm",
    "TRMOutput": "modeling_trm",
    "TRMSolveOutput": "modeling_trm",
    "TRMState": "modeling_trm",
    "GridReasoningPipeline": "pipeline_trm",
}

__all__ = ["TRMConfig", "PRESETS", "TRMForGridReasoning", "TRMOutput", "TRMSolveOutput", "TRMState",
           "GridReasoningPipeline"]


def register() -> None:
    """Register the model with the Auto classes and the pipeline registry (what the eager import used to do)."""
    importlib.import_module(".modeling_trm", __name__)
    importlib.import_module(".pipeline_trm", __name__)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    register()
    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
