"""README.md and docs/ stay true: the README's python snippets run as written, and every local link resolves.

Snippets: every ```python block of README.md runs, in order, in a temporary folder that stands in for
the repository root (the folders a snippet reads by relative path, such as `eval/`, are linked into
it; what a snippet writes, such as `trm-4x4/`, lands in the temporary folder). A block that uses no
name it does not define itself runs in a fresh namespace; a block that relies on names of the
blocks before it continues their namespace (today every README block is self-contained). A comment
line right after a `print(...)` line states that print's output, and the output must contain it.
The docs' python blocks (fragments, or needing the Hub) are parsed and their `modeling_trm` imports
resolved.

Links: every markdown link or image in README.md and docs/*.md that is not a web address points to
an existing file or folder, and an anchor into a .md file names one of its headings.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
FOLDERS_READ_BY_SNIPPETS = ("eval", "pretrained")  # relative paths the README's snippets take from the repository root

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def python_blocks(path: Path) -> list[str]:
    return PYTHON_BLOCK.findall(path.read_text())


def free_names(source: str) -> set[str]:
    """Names a block reads but neither binds (assignment, import, def, argument, ...) nor gets from builtins."""
    tree = ast.parse(source)
    loaded, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return loaded - bound - set(dir(builtins))


def documented_outputs(source: str) -> list[str]:
    """Comment lines that directly follow a `print(...)` line: the output that print is documented to give."""
    lines = [line.strip() for line in source.splitlines()]
    return [line[1:].strip() for previous, line in zip(lines, lines[1:])
            if previous.startswith("print(") and line.startswith("#")]


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def local_links(path: Path) -> list[str]:
    """Link and image targets outside code (fenced or inline), other than web addresses."""
    text = INLINE_CODE.sub("code", FENCE.sub("", path.read_text()))
    return [target for target in LINK.findall(text)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I)]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {github_anchor(heading) for heading in HEADING.findall(FENCE.sub("", path.read_text()))}


def broken_links(path: Path) -> list[str]:
    """Local link targets of a markdown file that name no existing file or folder, or no heading of a .md file."""
    broken = []
    for target in local_links(path):
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target} (no heading with anchor #{anchor})")
    return broken


def test_free_names_tells_self_contained_blocks_from_continuations() -> None:
    assert free_names("import torch\nx = torch.zeros(2)\nprint([y for y in x], len(x))") == set()
    assert free_names("trainer = Trainer(model=model)\ntrainer.train()") == {"Trainer", "model"}
    assert documented_outputs("print(f(1))\n# {'a': 1}\nx = 2\n# not output") == ["{'a': 1}"]


def test_readme_python_blocks_run(tmp_path, monkeypatch, capsys) -> None:
    blocks = python_blocks(README)
    assert len(blocks) >= 3, "the README lost its python examples"
    for folder in FOLDERS_READ_BY_SNIPPETS:
        (tmp_path / folder).symlink_to(ROOT / folder, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for number, block in enumerate(blocks, start=1):
        needs = free_names(block)
        if needs:  # relies on the blocks before it
            missing = needs - namespace.keys()
            assert not missing, f"README python block {number} uses {sorted(missing)}, defined by no earlier block"
        else:
            namespace = {}
        capsys.readouterr()
        exec(compile(block, f"README python block {number}", "exec"), namespace)
        printed = capsys.readouterr().out
        for expected in documented_outputs(block):
            assert expected in printed, f"README python block {number} printed {printed!r}, not {expected!r}"
    assert (tmp_path / "trm-4x4" / "model.safetensors").is_file()  # the save_pretrained example wrote its folder
    assert (tmp_path / "trm-4x4" / "config.json").is_file()


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_local_links_resolve(path: Path) -> None:
    assert local_links(path), f"{path.relative_to(ROOT)} links to nothing local; the link check would be vacuous"
    broken = broken_links(path)
    assert not broken, f"broken links in {path.relative_to(ROOT)}: {broken}"


def test_docs_index_lists_every_page() -> None:
    pages = {page.name for page in DOCS.glob("*.md")} - {"README.md"}
    assert pages, "docs/ has no pages"
    indexed = {Path(target.partition("#")[0]).name for target in local_links(DOCS / "README.md")}
    assert pages <= indexed, f"docs/README.md does not list {sorted(pages - indexed)}"
    assert "docs/README.md" in {target.partition("#")[0] for target in local_links(README)}


def test_docs_python_blocks_import_what_exists() -> None:
    """The docs' python blocks are fragments or need the Hub, so they are not run; but each parses, and every
    `modeling_trm` module and name they import exists (module paths move when the package is restructured)."""
    checked = 0
    for page in sorted(DOCS.glob("*.md")):
        for number, block in enumerate(python_blocks(page), start=1):
            where = f"{page.relative_to(ROOT)} python block {number}"
            tree = ast.parse(block, where)
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "modeling_trm":
                    module = importlib.import_module(node.module)
                    missing = [alias.name for alias in node.names if not hasattr(module, alias.name)]
                    assert not missing, f"{where}: {node.module} has no {missing}"
                    checked += 1
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.split(".")[0] == "modeling_trm":
                            importlib.import_module(alias.name)
                            checked += 1
    assert checked, "no docs python block imports from modeling_trm; this check would be vacuous"


def test_link_check_catches_a_broken_link(tmp_path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n[ok](page.md#title) [gone](missing.md) [bad anchor](page.md#nope) "
                    "`[in code](missing.md)` [web](https://example.org)\n```\n[fenced](missing.md)\n```\n")
    assert local_links(page) == ["page.md#title", "missing.md", "page.md#nope"]
    assert broken_links(page) == ["missing.md", "page.md#nope (no heading with anchor #nope)"]
    (tmp_path / "missing.md").write_text("# Here\n")
    assert broken_links(page) == ["page.md#nope (no heading with anchor #nope)"]
    assert github_anchor("9x9 Sudoku: `trm demo --task sudoku9` (recipe `sudoku9-cpu`)") == \
        "9x9-sudoku-trm-demo---task-sudoku9-recipe-sudoku9-cpu"
