"""Workflows built from training and inference: `trm demo` (train, score, draw, package) and `trm ablate`."""
