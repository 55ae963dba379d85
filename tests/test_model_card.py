"""The model card: metadata and model-index round trips, no number without a source, snippets that run."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Iterable

import pytest
import torch
from huggingface_hub import ModelCard, ModelCardData, metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results

from modeling_trm import TRMConfig, TRMForGridReasoning
from modeling_trm.configuration_trm import ARC_SYMBOLS, MAZE_SYMBOLS
from modeling_trm.hub_card.render import PAPER_RESULTS, CardInputError, load_results, render_model_card
from modeling_trm.recipes_io import load_recipe
from tiny_models import tiny_model

PAPER_PERCENTS = {paper.percent for paper in PAPER_RESULTS}
CITATION_NUMBERS = ("2025",)  # "Jolicoeur-Martineau, 2025" in the prose

# A number in running text: not glued to a word (ARC-AGI-1, pass@2, bf16, T16), thousands separators allowed.
NUMBER = re.compile(r"(?<![\w@.\-/])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?:[eE][-+]?\d+)?(?![\w@])")
FENCED_BLOCK = re.compile(r"^```.*?^```", re.S | re.M)


def make_results(model: TRMForGridReasoning, **changes: Any) -> dict[str, Any]:
    """A hand-written `trm eval` results file with values that appear nowhere else."""
    results = {
        "schema_version": 1, "task": model.config.task,
        "model": {"name_or_path": "tiny", "num_parameters": model.num_parameters(),
                  "num_reference_parameters": model.num_reference_parameters(), "preset": None,
                  "hidden_size": model.config.hidden_size, "H_cycles": model.config.H_cycles,
                  "L_cycles": model.config.L_cycles, "mixer": model.config.mixer},
        "dataset": {"name": "generated-sudoku-4x4", "path": "data/sudoku4", "split": "test", "revision": None,
                    "sha256": "ab" * 32, "num_examples": 37},
        "protocol": {"halting": "max", "max_steps": 4, "batch_size": 64, "dtype": "fp32"},
        "metrics": {"exact_accuracy": 0.4321, "token_accuracy": 0.8765, "valid_solution_accuracy": 0.4567},
        "accuracy_by_steps": {"1": 0.1234, "2": 0.2345, "4": 0.4321},
        "act": {"exact_accuracy": 0.4012, "mean_steps": 2.71},
        "mean_steps": 4.0, "wall_time_s": 1.23, "examples_per_s": 30.1,
        "versions": {"modeling_trm": "0.1.0", "torch": "2.13.0"},
        "created": "2026-11-28T16:40:00Z",
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            results[section][field] = value
        else:
            results[section] = value
    return results


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("card") / "trm-tiny"
    tiny_model().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model() -> TRMForGridReasoning:
    return tiny_model()


# ----------------------------------------------------------------------------- numbers and their sources


def walk(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from walk(item)
    else:
        yield value


def unexplained_numbers(card_text: str, *sources: Any) -> list[str]:
    """Numbers in the card outside code blocks that no source value (or its percentage) explains."""
    values: list[float] = list(PAPER_PERCENTS)
    tokens: set[str] = set(CITATION_NUMBERS)
    for source in sources:
        for item in walk(source):
            if isinstance(item, bool) or item is None:
                continue
            if isinstance(item, (int, float)):
                values.append(float(item))
            else:
                tokens.update(match.group(0) for match in NUMBER.finditer(str(item)))
    unexplained = []
    for match in NUMBER.finditer(FENCED_BLOCK.sub("", card_text)):
        token = match.group(0)
        if token in tokens:
            continue
        number = float(token.replace(",", ""))
        decimals = len(match.group(2)) - 1 if match.group(2) else 0
        if "e" in token.lower():
            explained = any(math.isclose(v, number) for v in values)
        elif decimals == 0:  # integers must match exactly (no rounding that could explain anything)
            explained = any(v == number or 100 * v == number for v in values)
        else:  # shown with `decimals` digits: the source value rounded, or its percentage rounded
            explained = any(round(v, decimals) == number or round(100 * v, decimals) == number for v in values)
        if not explained:
            unexplained.append(token)
    return unexplained


def test_number_check_flags_a_number_without_source(model, model_dir) -> None:
    results = make_results(model)
    card = render_model_card(model_dir, results, repo_id="org/trm-tiny")
    sources = (results, model.config.to_dict(), list(model.parameter_counts().values()))
    assert unexplained_numbers(str(card), *sources) == []
    # the checker itself: an invented accuracy and a rounded-away figure are caught
    assert unexplained_numbers(str(card) + "\nIt reaches 99.1% and 43.3%.", *sources) == ["99.1", "43.3"]


def test_every_number_in_the_card_has_a_source(model, model_dir) -> None:
    results = make_results(model)
    other = make_results(model, dataset={"name": "sudoku-extreme", "split": "test", "revision": "c0ffee1",
                                          "num_examples": 2048}, metrics={"exact_accuracy": 0.0625, "num_tasks": 12})
    recipe = load_recipe("sudoku-extreme-att")
    training = {"global_step": 1234, "train_runtime": 56.7, "device": "cpu", "metrics": {"eval_loss": 3.1415}}
    card = render_model_card(model_dir, [results, other], recipe, training, repo_id="org/trm-tiny")
    text = str(card)
    sources = (results, other, recipe, training, model.config.to_dict(),
               list(model.parameter_counts().values()))
    assert unexplained_numbers(text, *sources) == []
    for shown in ("43.2%", "87.6%", "45.7%", "40.1%", "6.2%", "57,954", "57,794", "1,234", "56.7", "2.71"):
        assert shown in text
    assert "3.1415" not in text  # training metrics are not evaluation results


def test_card_without_results_states_no_measured_number(model, model_dir) -> None:
    card = render_model_card(model_dir, None, repo_id="org/trm-tiny")
    text = str(card)
    assert "model-index" not in text and card.data.eval_results is None
    assert "No evaluation results were supplied" in text
    assert unexplained_numbers(text, model.config.to_dict(), list(model.parameter_counts().values())) == []
    percents = {float(p) for p in re.findall(r"(\d+(?:\.\d+)?)%", text)}
    assert percents == PAPER_PERCENTS & {87.4, 74.7}  # only the paper's Sudoku figures, nothing measured
    for line in text.splitlines():
        if "%" in line:
            assert "(paper)" in line, line


def test_metadata_and_model_index_round_trip(model, model_dir, tmp_path) -> None:
    results = make_results(model, dataset__name="sudoku-extreme", dataset__revision="0123abc")
    counted = make_results(model, metrics={"pass@2": 0.25, "num_tasks": 400})
    card = render_model_card(model_dir, [results, counted], repo_id="org/trm-tiny")
    path = tmp_path / "README.md"
    card.save(path)

    parsed = ModelCard.load(path)
    assert parsed.content == card.content
    data = parsed.data
    assert (data.library_name, data.license) == ("transformers", "apache-2.0")
    assert data.tags == ["trm", "recursive-reasoning", "sudoku"]
    assert data.datasets == ["sapientinc/sudoku-extreme"]  # only Hub ids, never a local path
    assert data.pipeline_tag is None

    expected = [("exact_accuracy", 0.4321, "max"), ("token_accuracy", 0.8765, "max"),
                ("valid_solution_accuracy", 0.4567, "max"), ("exact_accuracy", 0.4012, "act")]
    expected = [(*e, "sudoku-extreme", "sapientinc/sudoku-extreme", "test", "0123abc") for e in expected]
    expected += [("pass@2", 0.25, "max", "generated-sudoku-4x4", "generated-sudoku-4x4", "test", None),
                 ("exact_accuracy", 0.4012, "act", "generated-sudoku-4x4", "generated-sudoku-4x4", "test", None)]

    def rows(eval_results) -> list[tuple]:
        return [(e.metric_type, e.metric_value, e.metric_config, e.dataset_name, e.dataset_type, e.dataset_split,
                 e.dataset_revision) for e in eval_results]

    assert rows(data.eval_results) == expected  # exactly the measured values; the count (num_tasks) is not a metric
    assert {e.task_type for e in data.eval_results} == {"grid-reasoning"}

    metadata = metadata_load(path)
    name, from_index = model_index_to_eval_results(metadata["model-index"])
    assert name == "trm-tiny"
    assert rows(from_index) == expected
    rebuilt = ModelCardData(**metadata)
    assert rows(rebuilt.eval_results) == expected
    assert rebuilt.to_dict()["model-index"] == metadata["model-index"]


def test_paper_figures_are_labelled_and_compared_only_on_the_same_benchmark(model, model_dir) -> None:
    on_benchmark = make_results(model, dataset={"name": "sudoku-extreme", "split": "test", "num_examples": 512},
                                metrics={"exact_accuracy": 0.7031})
    text = str(render_model_card(model_dir, on_benchmark))
    rows = {line.split("|")[2].strip(): line for line in text.splitlines() if line.startswith("| Sudoku-Extreme")}
    assert "74.7% (paper)" in rows["TRM-Att"] and "70.3% (512 test puzzles)" in rows["TRM-Att"]
    assert "87.4% (paper)" in rows["TRM-MLP"] and "not evaluated on it" in rows["TRM-MLP"]  # this one is TRM-Att
    generated = str(render_model_card(model_dir, make_results(model)))
    assert "70.3" not in generated and generated.count("not evaluated on it") == 2


def test_training_section_comes_from_recipe_and_record(model, model_dir) -> None:
    recipe = load_recipe("sudoku-extreme-mlp")
    text = str(render_model_card(model_dir, None, recipe, {"global_step": 77, "hardware": "1x test CPU"}))
    assert "Recipe `sudoku-extreme-mlp`" in text and "Model preset `sudoku-mlp`" in text
    assert "| `global_batch_size` | 768 |" in text and "| `learning_rate` | 0.0001 |" in text
    assert "| Optimizer steps | 77 |" in text and "| Hardware | 1x test CPU |" in text
    bare = str(render_model_card(model_dir, None))
    assert "No training recipe was supplied" in bare and "No record of the compute used" in bare


def test_bad_results_are_refused_with_the_field_named(model, model_dir, tmp_path) -> None:
    with pytest.raises(CardInputError, match=r"metrics\.exact_accuracy.*fraction"):
        render_model_card(model_dir, make_results(model, metrics={"exact_accuracy": 87.4}))
    with pytest.raises(CardInputError, match="task 'maze' does not match the model's task 'sudoku'"):
        render_model_card(model_dir, make_results(model, task="maze"))
    with pytest.raises(CardInputError, match="num_parameters is 5028866 but this checkpoint has 57954"):
        render_model_card(model_dir, make_results(model, model__num_parameters=5028866))
    with pytest.raises(CardInputError, match=r"accuracy_by_steps\.x"):
        render_model_card(model_dir, make_results(model, accuracy_by_steps={"x": 0.5}))
    broken = tmp_path / "results.json"
    broken.write_text('{"metrics": {"exact_accuracy": 0.5,}}')
    with pytest.raises(CardInputError, match=r"results\.json: malformed JSON at line 1"):
        load_results(broken)
    broken.write_text(json.dumps({"metrics": {}}))
    with pytest.raises(CardInputError, match="field 'dataset' must be an object"):
        load_results(broken)


def test_rating_bands_are_tabled_from_the_results(model, model_dir) -> None:
    bands = {"0": {"num_examples": 311, "exact_accuracy": 0.9132}, "10+": {"num_examples": 29, "exact_accuracy": 0.1379}}
    results = make_results(model, accuracy_by_rating=bands)
    text = str(render_model_card(model_dir, results, repo_id="org/trm-tiny"))
    assert "| 0 | 311 | 91.3% |" in text and "| 10+ | 29 | 13.8% |" in text
    assert unexplained_numbers(text, results, list(bands), model.config.to_dict(),
                               list(model.parameter_counts().values())) == []
    assert "by the puzzle's difficulty rating" not in str(render_model_card(model_dir, make_results(model)))
    with pytest.raises(CardInputError, match=r"accuracy_by_rating\.0.*fraction"):
        render_model_card(model_dir, make_results(model, accuracy_by_rating={"0": {"num_examples": 3,
                                                                                   "exact_accuracy": 91.3}}))


def run_card_snippet(card: ModelCard) -> dict[str, Any]:
    snippet = re.search(r"```python\n(.*?)```", str(card), re.S).group(1)
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "model card snippet", "exec"), namespace)
    return namespace


def test_usage_snippet_runs_for_sudoku_maze_and_arc(tmp_path, capsys) -> None:
    small = dict(hidden_size=16, num_heads=2, H_cycles=1, L_cycles=1, puzzle_emb_len=0, halt_max_steps=2,
                 expansion=1.0)
    configs = {
        "sudoku": TRMConfig(vocab_size=6, seq_len=16, grid_shape=(4, 4), task="sudoku",
                            id_to_symbol=["<pad>", ".", "1", "2", "3", "4"], **small),
        "maze": TRMConfig(vocab_size=6, seq_len=20, grid_shape=(4, 5), task="maze", id_to_symbol=MAZE_SYMBOLS,
                          blank_token_id=None, **small),
        "arc": TRMConfig(vocab_size=12, seq_len=25, grid_shape=(5, 5), task="arc", id_to_symbol=ARC_SYMBOLS,
                         blank_token_id=None, **small),
    }
    for task, config in configs.items():
        torch.manual_seed(0)
        folder = tmp_path / task
        TRMForGridReasoning(config).save_pretrained(folder)
        ran = run_card_snippet(render_model_card(folder, None, repo_id=str(folder)))
        ids = ran["input_ids"]
        assert ids.shape == (1, config.seq_len)
        grid = [[config.id_to_symbol[i] for i in row] for row in ids.view(*config.grid_shape).tolist()]
        if task == "sudoku":
            givens = [[int(s) for s in row if s != "."] for row in grid]
            columns = [[int(row[c]) for row in grid if row[c] != "."] for c in range(4)]
            assert all(len(set(g)) == len(g) and g for g in givens + columns)  # a legal puzzle
            assert sum(row.count(".") for row in grid) == 8
        elif task == "maze":
            assert ["".join(row) for row in grid] == ["#####", "#S  #", "#  G#", "#####"]
        else:
            assert grid == [["0", "1", "2", "<eos>", "<pad>"], ["3", "4", "5", "<eos>", "<pad>"],
                            ["<eos>"] * 4 + ["<pad>"], ["<pad>"] * 5, ["<pad>"] * 5]
        assert ran["out"].predictions.shape == (1, config.seq_len)
        printed = capsys.readouterr().out.splitlines()
        assert len(printed) == config.grid_shape[0]


def test_card_snippet_runs_the_step_count_the_results_were_measured_with(tmp_path, capsys) -> None:
    """A model trained with N_sup = 2 but solved with 16 (the demo) says so, and its snippet runs 16 steps."""
    small = dict(hidden_size=16, H_cycles=1, L_cycles=1, puzzle_emb_len=0, halt_max_steps=2, expansion=1.0)
    vocabulary = dict(vocab_size=6, seq_len=16, grid_shape=(4, 4), task="sudoku",
                      id_to_symbol=["<pad>", ".", "1", "2", "3", "4"])
    for name, solve_max_steps in (("nsup2-solve16", 16), ("nsup2", None)):
        torch.manual_seed(0)
        model = TRMForGridReasoning(TRMConfig(**vocabulary, **small, solve_max_steps=solve_max_steps))
        model.save_pretrained(tmp_path / name)
    row = "| most supervision steps (`halt_max_steps`) | 2 in training; `solve` runs 16 (`solve_max_steps`) |"

    solve16 = tmp_path / "nsup2-solve16"
    card = render_model_card(solve16, make_results(TRMForGridReasoning.from_pretrained(solve16), protocol__max_steps=16),
                             repo_id=str(solve16))
    assert row in str(card) and "max_steps=" not in str(card)  # solve() runs 16 by itself
    assert run_card_snippet(card)["out"].steps.tolist() == [16]

    # results measured with more steps than solve() runs by default: the snippet passes the count
    nsup2 = tmp_path / "nsup2"
    card = render_model_card(nsup2, make_results(TRMForGridReasoning.from_pretrained(nsup2), protocol__max_steps=16),
                             repo_id=str(nsup2))
    assert "| most supervision steps (`halt_max_steps`) | 2 |" in str(card)
    assert 'out = model.solve(input_ids, halting="max", max_steps=16)' in str(card)
    assert run_card_snippet(card)["out"].steps.tolist() == [16]
    capsys.readouterr()


def test_card_states_the_test_time_sampling_a_number_was_measured_with(model, model_dir) -> None:
    protocol = {"halting": "max", "max_steps": 4, "batch_size": 64, "dtype": "fp32", "samples": 13,
                "noise_std": 0.35, "selection": "vote", "seed": 17}
    results = make_results(model, protocol=protocol)
    text = str(render_model_card(model_dir, results, repo_id="org/trm-tiny"))
    assert "13 trajectories per puzzle" in text and "std 0.35" in text and "a majority vote" in text
    assert 'selection="vote"' in text and "seed 17" in text
    assert unexplained_numbers(text, results, model.config.to_dict(),
                               list(model.parameter_counts().values())) == []
    plain = str(render_model_card(model_dir, make_results(model), repo_id="org/trm-tiny"))
    assert "trajectories per puzzle" not in plain


def test_card_states_the_network_and_the_puzzle_table_apart(model, model_dir) -> None:
    card = str(render_model_card(model_dir, make_results(model), repo_id="org/trm-tiny"))
    counts = model.parameter_counts()
    table = model.config.num_puzzle_identifiers * model.config.hidden_size
    assert counts["puzzle_embedding"] == table and counts["network"] == counts["total"] - table
    assert (f"It has **{counts['network']:,} parameters in its network** and {table:,} in its\n"
            f"puzzle-identifier table ({model.config.num_puzzle_identifiers} ids × {model.config.hidden_size}") in card
    assert f"{counts['total']:,} in all; the paper counts {counts['reference']:,}" in card
