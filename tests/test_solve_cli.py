"""`trm solve`: puzzle parsing (CSV or one per line), errors naming the line, answers printed."""

from __future__ import annotations

import io

import pytest
import torch

from modeling_trm.commands import main
from modeling_trm.commands.solve import PuzzleInputError, read_puzzles, render_answer
from tiny_models import tiny_config, tiny_model


def test_one_puzzle_per_line_with_blanks_as_dot_or_zero() -> None:
    text = "# comment\n1.3.....2..4...1\n\n1030000020040001\n"
    puzzles = read_puzzles(io.StringIO(text), tiny_config())
    expected = [2, 1, 4, 1, 1, 1, 1, 1, 3, 1, 1, 5, 1, 1, 1, 2]
    assert puzzles == [expected, expected]


def test_csv_schema_reads_the_question_column() -> None:
    text = "source,question,answer,rating\ngen,1.3.....2..4...1,1234341221434321,0\n"
    assert read_puzzles(io.StringIO(text), tiny_config())[0][:3] == [2, 1, 4]


@pytest.mark.parametrize("text, message", [
    ("1.3.....2..4...1\n1.3.\n", "line 2: expected 16 symbols, got 4"),
    ("1.3.....2..4...9\n", r"line 1: symbols \['9'\]"),
    ("\n# nothing\n", "no puzzles"),
])
def test_malformed_lines_are_named(text: str, message: str) -> None:
    with pytest.raises(PuzzleInputError, match=message):
        read_puzzles(io.StringIO(text), tiny_config(), "puzzles.txt")


def test_render_answer_as_line_and_grid() -> None:
    tokens = [2, 3, 4, 5] * 4
    assert render_answer(tokens, tiny_config(), as_grid=False) == "1234" * 4
    assert render_answer(tokens, tiny_config(), as_grid=True).splitlines()[0] == "1 2 3 4"


def test_trm_solve_prints_the_models_answers(tmp_path, capsys) -> None:
    model = tiny_model().eval()
    model.save_pretrained(tmp_path / "model")
    puzzle_file = tmp_path / "puzzles.txt"
    puzzle_file.write_text("1.3.....2..4...1\n.2..............\n")
    assert main(["solve", str(tmp_path / "model"), str(puzzle_file), "--halting", "max"]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line]
    expected = model.solve(torch.tensor(read_puzzles(io.StringIO(puzzle_file.read_text()), model.config)),
                           halting="max").predictions.tolist()
    assert printed == [render_answer(row, model.config, False) for row in expected]
    bad = tmp_path / "bad.txt"
    bad.write_text("1.3\n")
    assert main(["solve", str(tmp_path / "model"), str(bad)]) == 2
    assert "line 1" in capsys.readouterr().err


def test_trm_solve_with_noisy_samples_equals_the_library_call(tmp_path, capsys) -> None:
    model = tiny_model().eval()
    model.save_pretrained(tmp_path / "model")
    puzzle_file = tmp_path / "puzzles.txt"
    puzzle_file.write_text("1.3.....2..4...1\n.2..............\n")
    argv = ["solve", str(tmp_path / "model"), str(puzzle_file), "--halting", "max", "--samples", "4",
            "--noise-std", "0.3", "--selection", "vote", "--seed", "3"]
    assert main(argv) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line]
    ids = torch.tensor(read_puzzles(io.StringIO(puzzle_file.read_text()), model.config))
    expected = model.solve(ids, halting="max", samples=4, noise_std=0.3, selection="vote",
                           generator=torch.Generator().manual_seed(3)).predictions.tolist()
    assert printed == [render_answer(row, model.config, False) for row in expected]
    assert main(["solve", str(tmp_path / "model"), str(puzzle_file), "--noise-std", "-1"]) == 2
    assert "noise_std" in capsys.readouterr().err
    # adaptive escalation with a stricter confidence threshold: the same answers as the library call
    assert main(["solve", str(tmp_path / "model"), str(puzzle_file), "--samples", "3", "--noise-std", "0.3",
                 "--seed", "3", "--escalate", "--escalate-after", "2", "--escalate-confidence", "0.8"]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line]
    expected = model.solve(ids, halting="act", samples=3, noise_std=0.3, generator=torch.Generator().manual_seed(3),
                           escalate=True, escalate_after=2, escalate_confidence=0.8).predictions.tolist()
    assert printed == [render_answer(row, model.config, False) for row in expected]
    assert main(["solve", str(tmp_path / "model"), str(puzzle_file), "--escalate-confidence", "0.8"]) == 2
    assert "pass escalate=True as well" in capsys.readouterr().err
