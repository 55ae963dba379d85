"""The README's usage snippets run as written (the self-contained ones: the first two python blocks)."""

from __future__ import annotations

import os
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_usage_snippets_run(tmp_path, monkeypatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], "README block 1", "exec"), namespace)
    assert os.path.exists(tmp_path / "trm-4x4" / "model.safetensors")
    exec(compile(blocks[1], "README block 2", "exec"), {})
