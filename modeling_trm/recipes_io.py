"""Read the task recipes of `configuration/` (installed as `modeling_trm.recipes`)."""

from __future__ import annotations

import json
import os
from importlib import resources
from typing import Any

REQUIRED_SECTIONS = ("name", "model", "data", "training")


def available_recipes() -> list[str]:
    folder = resources.files("modeling_trm.recipes")
    return sorted(entry.name[:-5] for entry in folder.iterdir() if entry.name.endswith(".json"))


def load_recipe(name_or_path: str) -> dict[str, Any]:
    """A recipe by name (`sudoku-extreme-mlp`) or by path to a JSON file of the same schema."""
    if os.path.isfile(name_or_path):
        with open(name_or_path) as handle:
            text, where = handle.read(), name_or_path
    else:
        entry = resources.files("modeling_trm.recipes") / f"{name_or_path}.json"
        if not entry.is_file():
            raise ValueError(f"unknown recipe {name_or_path!r}; choose one of {available_recipes()} or give a path")
        text, where = entry.read_text(), f"recipe {name_or_path}"
    try:
        recipe = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where} is not valid JSON: {error}") from error
    missing = [key for key in REQUIRED_SECTIONS if key not in recipe]
    if missing:
        raise ValueError(f"{where} lacks sections {missing}")
    return recipe
