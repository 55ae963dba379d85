"""The trained models shipped in `pretrained/` (issue 22 item 5): each loads as remote code and reproduces
the accuracy stated for a fixed slice of its held-out set (`results_slice.json`, written by `trm eval --limit N`;
`results.json` states the whole set). The slice is read from the folder's own CSV file (`heldout_slice.csv`),
whose digest the results record; the full held-out sets take from seconds (6x6) to minutes (9x9) to regenerate.

Accuracy is compared as a count of solved puzzles, allowed to differ by one: fp32 logits may differ in
their last bits between CPU instruction sets (AVX2, AVX-512, AMX), which can flip one near-tied argmax.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModel

from modeling_trm.data.sudoku import build_sudoku_dataset
from modeling_trm.inference.evaluation import evaluate_model
from modeling_trm.puzzle_text import render_answer

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"
FOLDERS = sorted(path for path in PRETRAINED.iterdir() if (path / "config.json").is_file()) \
    if PRETRAINED.is_dir() else []
REQUIRED_FILES = ("config.json", "model.safetensors", "configuration_trm.py", "modeling_trm.py", "pipeline_trm.py",
                  "README.md", "results.json", "results_slice.json", "heldout_slice.csv")


def test_the_repository_ships_the_trained_models() -> None:
    assert [path.name for path in FOLDERS] == ["trm-sudoku6-demo", "trm-sudoku9-cpu"]


@pytest.mark.parametrize("folder", FOLDERS, ids=[path.name for path in FOLDERS])
def test_a_shipped_folders_code_is_the_packages_code(folder: Path) -> None:
    # the remote code a user runs with trust_remote_code=True is what this package tests, byte for byte
    package = Path(__file__).resolve().parents[1] / "modeling_trm"
    shipped = sorted(path.name for path in folder.glob("*.py"))
    assert {"configuration_trm.py", "modeling_trm.py", "pipeline_trm.py"} <= set(shipped)
    for name in shipped:
        assert (folder / name).read_bytes() == (package / name).read_bytes(), f"{name} differs from the package's"


def held_out_slice(folder: Path, stated: dict, scratch: Path) -> tuple:
    """The held-out puzzles `stated` was scored on, from the folder's slice file."""
    shipped = stated["dataset"]["shipped_slice"]
    csv = folder / shipped["file"]
    assert hashlib.sha256(csv.read_bytes()).hexdigest() == shipped["sha256"], "the slice file was changed"
    for split in ("train", "test"):  # the builder reads both splits; only the test split is scored
        shutil.copyfile(csv, scratch / f"{split}.csv")
    return build_sudoku_dataset(scratch)


@pytest.fixture(scope="module")
def held_out_slices(tmp_path_factory) -> dict[str, tuple]:
    """Each folder's held-out slice, built once: folder name -> (dataset, metadata)."""
    return {folder.name: held_out_slice(folder, json.loads((folder / "results_slice.json").read_text()),
                                        tmp_path_factory.mktemp(folder.name)) for folder in FOLDERS}


@pytest.fixture(scope="module")
def answers_by_remote_code(held_out_slices) -> dict[str, list]:
    """Each folder's first held-out puzzle solved through `pipeline(..., trust_remote_code=True)` (16 steps), all
    in one fresh process that never imports this package: folder name -> [model module, question, answer,
    valid, whether modeling_trm got imported]."""
    questions = {folder.name: (str(folder), render_answer(held_out_slices[folder.name][0]["test"][0]["input_ids"],
                                                          AutoConfig.from_pretrained(folder)))
                 for folder in FOLDERS}
    code = ("import json, sys; from transformers import pipeline\n"
            f"answers = {{}}\nfor name, (folder, question) in {questions!r}.items():\n"
            "    solver = pipeline(model=folder, trust_remote_code=True, device='cpu')\n"
            "    result = solver(question, halting='max')\n"
            "    answers[name] = [type(solver.model).__module__, question, result['answer'], result['valid'], "
            "'modeling_trm' in sys.modules]\n"
            "print(json.dumps(answers))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("folder", FOLDERS, ids=[path.name for path in FOLDERS])
def test_a_shipped_model_loads_as_remote_code_and_reproduces_its_stated_accuracy(folder: Path, held_out_slices,
                                                                                   answers_by_remote_code) -> None:
    for name in REQUIRED_FILES:
        assert (folder / name).is_file(), name
    stated = json.loads((folder / "results_slice.json").read_text())
    whole = json.loads((folder / "results.json").read_text())
    source = stated["dataset"]["source"]
    assert source == whole["dataset"]["source"] and stated["dataset"]["sha256"] == whole["dataset"]["sha256"]
    assert source["generator"] == "generate_sudoku_splits" and stated["protocol"]["limit"] >= 50
    dataset, metadata = held_out_slices[folder.name]
    model = AutoModel.from_pretrained(folder).eval()  # this package's code (registered for model_type "trm")
    protocol = stated["protocol"]
    results = evaluate_model(model, dataset[stated["dataset"]["split"]], metadata, halting=protocol["halting"],
                             max_steps=protocol["max_steps"], limit=protocol["limit"], dtype="fp32", progress=False,
                             run_act=False)
    count = results["dataset"]["num_examples"]
    solved, stated_solved = (round(r["metrics"]["exact_accuracy"] * count) for r in (results, stated))
    assert abs(solved - stated_solved) <= 1, (solved, stated_solved)

    # the folder's own code, in a process without this package imported, gives the same answer through the
    # pipeline as the README shows
    row = dataset["test"][0]
    question = render_answer(row["input_ids"], model.config)
    expected = render_answer(model.solve(torch.tensor([row["input_ids"]]), halting="max").predictions[0].tolist(),
                             model.config)
    module, solved_question, answer, valid, package_imported = answers_by_remote_code[folder.name]
    assert solved_question == question
    assert module.startswith("transformers_modules") and not package_imported
    assert answer == expected
    # the README's puzzle: this model solves it (the label is the unique solution)
    assert answer == render_answer(row["labels"], model.config) and valid is True


def test_remote_code_loaded_in_process_leaves_the_installed_classes_registered() -> None:
    # pipeline(model=..., trust_remote_code=True) imports the folder's own modeling_trm.py; its registration
    # must not take "trm" over from this package (trm eval's loader would then refuse the model class)
    from transformers import AutoConfig, pipeline

    from modeling_trm import TRMConfig, TRMForGridReasoning

    folder = FOLDERS[0]
    pipeline(model=str(folder), trust_remote_code=True, device="cpu")
    assert any(name.startswith("transformers_modules") for name in sys.modules), "the remote code was imported"
    assert type(AutoConfig.from_pretrained(folder)) is TRMConfig
    assert type(AutoModel.from_pretrained(folder)) is TRMForGridReasoning
