"""Inference beyond `solve` and the pipeline: scoring checkpoints (`trm eval`), pictures, the browser demo app."""
