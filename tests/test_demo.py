"""`trm demo` on a much shorter budget: every output the demo promises exists and loads."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import ModelCard
from transformers import AutoModel

from modeling_trm.cli import main
from modeling_trm.demo import run_demo


def test_demo_writes_a_loadable_model_results_and_pictures(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    run_demo(str(out), minutes=0.05, size=4, recipe_overrides={
        "data": {"num_train": 200, "num_test": 40}, "model": {"H_cycles": 1, "L_cycles": 1}})
    printed = capsys.readouterr().out
    for phase in ("[data", "[train", "[evaluate", "[pictures", "[reload"):
        assert phase in printed
    assert "| exact accuracy, ACT |" in printed and "unseen puzzle" in printed
    model_dir = out / "model"
    for name in ("config.json", "model.safetensors", "modeling_trm.py", "configuration_trm.py", "results.json",
                 "README.md"):
        assert (model_dir / name).is_file(), name
    results = json.loads((model_dir / "results.json").read_text())
    assert results["dataset"]["num_examples"] == 40
    assert set(results["accuracy_by_steps"]) == {"1", "2", "4", "8", "16"}
    assert results["accuracy_by_steps"]["16"] == pytest.approx(results["metrics"]["exact_accuracy"])
    assert 1 <= results["act"]["mean_steps"] <= 16
    # the demo writes the same results file as `trm eval`: protocol, dataset identity and versions
    assert results["protocol"]["halting"] == "max" and results["protocol"]["dtype"] == "fp32"
    assert results["dataset"]["split"] == "test" and results["versions"]["torch"]
    for picture in ("refinement.png", "accuracy_vs_steps.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = ModelCard.load(model_dir / "README.md")
    assert card.data.to_dict()["model-index"][0]["name"] == "demo"  # the run folder, not "model"
    assert card.data.to_dict()["model-index"][0]["results"][0]["metrics"][0]["value"] == \
        results["metrics"]["exact_accuracy"]
    model = AutoModel.from_pretrained(model_dir, trust_remote_code=True)
    assert model.config.grid_shape == [4, 4]
    # the command refuses to overwrite the outputs of a previous run
    assert main(["demo", "--minutes", "0.05", "--size", "4", "--output-dir", str(out)]) == 2
