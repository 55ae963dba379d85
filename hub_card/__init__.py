"""Model and dataset cards of published TRM checkpoints (installed as `modeling_trm.hub_card`).

`render.py` fills `model_card.md.jinja` from a saved config, results JSON(s), the recipe and a
training record; `dataset_card.md.jinja` is filled by `modeling_trm.publish.render_dataset_card`.
"""

from .render import CardInputError, load_results, render_model_card

__all__ = ["CardInputError", "load_results", "render_model_card"]
