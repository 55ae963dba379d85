"""The demo app (`trm app`, `modeling_trm/inference/app.py`): puzzle parsing, the step panels, and one solve in a real browser.

The browser test drives a headless Chromium from the system packages (`apt-get install chromium`;
Playwright's own browser downloads are not used) through Playwright against `trm app` running in a
subprocess on a free localhost port.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from hub_fixtures import stop_process

from modeling_trm import TRMForGridReasoning
from modeling_trm.inference.app import (EXAMPLE_PUZZLES, MAX_SAMPLES, PuzzleError, Refinement, SettingError,
                                        Trajectories, answer_text, encode_puzzle, read_sampling, refine, steps_html,
                                        summary, trajectories_html)
from modeling_trm.modeling_trm import TRMSolveOutput, select_trajectories
from tiny_models import tiny_config, tiny_model

APP_SOURCE = Path(__file__).resolve().parents[1] / "modeling_trm" / "inference" / "app.py"
QUESTION, SOLUTION = EXAMPLE_PUZZLES[0]  # the built-in 4x4 example
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def ids(text: str) -> list[int]:
    return [1 if c == "." else int(c) + 1 for c in text]


def test_puzzles_are_read_row_by_row_and_bad_ones_are_named() -> None:
    config = tiny_config()
    as_grid = "\n".join(" ".join(QUESTION[i:i + 4]).replace(".", "0") for i in range(0, 16, 4))  # "0 3 0 0\n..."
    assert encode_puzzle(as_grid, config) == encode_puzzle(QUESTION, config) == ids(QUESTION)
    with pytest.raises(PuzzleError, match=r"solution: expected 16 symbols \(4x4 grid\), got 15"):
        encode_puzzle(SOLUTION[:-1], config, "solution")
    with pytest.raises(PuzzleError, match=r"puzzle: symbols \['7', 'x'\] are not in the model's vocabulary"):
        encode_puzzle("x7" + QUESTION[2:], config)


def test_refinement_is_the_models_trajectory() -> None:
    model = tiny_model().eval()
    question = ids(QUESTION)
    for halting in ("act", "max"):
        refinement = refine(model, question, ids(SOLUTION), halting)
        solved = model.solve(torch.tensor([question]), halting=halting, return_trajectory=True)
        assert len(refinement.answers) == int(solved.steps[0])
        assert refinement.final == solved.predictions[0].tolist()
        assert refinement.halt_probabilities == pytest.approx(
            torch.sigmoid(solved.trajectory_q_halt_logits[0, :len(refinement.answers)]).tolist())
    assert len(refine(model, question, None, "max").answers) == model.config.halt_max_steps


def test_step_panels_colour_cells_against_the_solution() -> None:
    config = tiny_config()
    solution = ids(SOLUTION)
    three_off = list(solution)
    for cell in (0, 5, 15):
        three_off[cell] = 2 if solution[cell] != 2 else 3
    refinement = Refinement(question=ids(QUESTION), answers=[three_off, solution], halt_probabilities=[0.25, 0.875],
                            solution=solution, halting="act")
    page = steps_html(refinement, config, shown=2)
    panels = re.findall(r'data-name="([^"]+)"><div>(.*?)</div><table.*?</table>', page)
    assert [name for name, _ in panels] == ["question", "step-1", "step-2"]
    assert panels[1][1] == "step 1: 3 wrong<br>P(halt) = 0.25" and panels[2][1] == "step 2: 0 wrong<br>P(halt) = 0.88"
    tables = re.findall(r"<table.*?</table>", page)
    count = lambda table, kind: table.count(f'class="{kind}"')  # noqa: E731
    assert (count(tables[0], "given"), count(tables[0], "plain")) == (5, 11)  # QUESTION has 5 clues
    assert (count(tables[1], "right"), count(tables[1], "wrong")) == (13, 3)
    assert (count(tables[2], "right"), count(tables[2], "wrong")) == (16, 0)
    assert steps_html(refinement, config, shown=1).count("<table") == 2  # question + the steps shown so far
    assert summary(refinement) == "Final answer after 2 supervision steps (halting: act): solved, every cell right."
    assert answer_text(solution, config) == "1324\n4213\n3142\n2431"
    unchecked = Refinement(ids(QUESTION), [three_off], [0.5], None, "max")
    assert 'class="right"' not in steps_html(unchecked, config, 1) and "no solution" in summary(unchecked)


def verifying_model() -> TRMForGridReasoning:
    """The tiny model with a halting head that reads y, so that trajectories differ in q_halt (at
    initialisation every q_halt logit is the bias, -5)."""
    model = tiny_model().eval()
    with torch.no_grad():
        model.q_head.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    return model


@pytest.mark.parametrize("selection", ["halt", "vote"])
def test_thinking_harder_shows_every_trajectory_and_the_one_solve_chose(selection: str) -> None:
    model, question, solution = verifying_model(), ids(QUESTION), ids(SOLUTION)
    refinement = refine(model, question, solution, "max", samples=5, noise_std=0.3, selection=selection, seed=7)
    solved = model.solve(torch.tensor([question]), halting="max", samples=5, noise_std=0.3, selection=selection,
                         generator=torch.Generator().manual_seed(7), return_trajectory=True)
    runs = refinement.trajectories
    assert runs.chosen == int(solved.selected_sample[0])
    assert runs.answers == solved.sample_predictions[0].tolist() and runs.steps == solved.sample_steps[0].tolist()
    assert refinement.final == solved.predictions[0].tolist() == runs.answers[runs.chosen]
    assert len(refinement.answers) == model.config.halt_max_steps  # the chosen trajectory's steps, as panels
    page = trajectories_html(refinement, model.config)
    assert re.findall(r'data-name="trajectory-(\d+)"', page) == ["0", "1", "2", "3", "4"]
    assert re.findall(r'data-name="trajectory-(\d+)" class="chosen"', page) == [str(runs.chosen)]
    assert len(re.findall(r'data-name="answer-[A-Z]+"', page)) == len(runs.groups()) <= 5
    assert sorted(k for group in runs.groups() for k in group) == list(range(5))
    text = summary(refinement)
    assert "5 trajectories (noise σ = 0.3, seed 7)" in text and f"chose #{runs.chosen}, selection {selection}" in text
    again = refine(model, question, solution, "max", samples=5, noise_std=0.3, selection=selection, seed=7)
    assert trajectories_html(again, model.config) == page and summary(again) == text  # same seed, same page
    plain = refine(model, question, solution, "max", samples=1, noise_std=0.3)  # K = 1: the plain solve
    assert plain.trajectories is None and trajectories_html(plain, model.config) == ""
    assert plain == refine(model, question, solution, "max")


def test_the_reason_given_is_solves_selection_rule() -> None:
    """A hand-made set of 5 trajectories: answers a, b, a, b, c; vote ties a and b, the higher q_halt wins."""
    a, b, c = [2] * 16, [3] * 16, [4] * 16
    q_halt = [0.0, 2.0, 1.0, -1.0, 3.0]
    solved = TRMSolveOutput(predictions=torch.tensor([a, b, a, b, c]), q_halt_logits=torch.tensor(q_halt),
                            steps=torch.tensor([4, 4, 3, 4, 2]))
    by_halt = ("selection halt: its halting head was the most confident at its last step, P(halt) = 0.953 "
               "(q = 3.00; next best 0.881)")
    by_vote = ("selection vote: its answer was reached by 2 of 5 trajectories, the most (as many as 1 other answer: "
               "the highest P(halt) breaks the tie); #1 has the highest P(halt) among them, 0.881")
    for selection, chosen, reason in (("halt", 4, by_halt), ("vote", 1, by_vote)):
        assert int(select_trajectories(solved, 5, selection).selected_sample[0]) == chosen
        runs = Trajectories([a, b, a, b, c], q_halt, [4, 4, 3, 4, 2], chosen, selection, 0.3, 0)
        assert runs.groups() == [[0, 2], [1, 3], [4]] and runs.reason() == reason


def test_think_harder_settings_are_refused_with_a_message() -> None:
    assert read_sampling(8.0, 0.3, 5.0) == (8, 0.3, 5) and read_sampling(1, 0, 0) == (1, 0.0, 0)
    for fields, message in (((0, 0.3, 0), "trajectories K: expected a whole number from 1 to 256, got 0"),
                            ((2.5, 0.3, 0), "trajectories K: .* got 2.5"),
                            ((MAX_SAMPLES + 1, 0.3, 0), "trajectories K: .* got 257"),
                            ((None, 0.3, 0), "trajectories K: .* got an empty box"),
                            ((4, -0.1, 0), r"noise σ: expected a number >= 0, got -0.1"),
                            ((4, float("nan"), 0), "noise σ: .* got nan"),
                            ((4, 0.3, -1), r"seed: expected a whole number from 0 to 2\*\*63 - 1, got -1")):
        with pytest.raises(SettingError, match=message):
            read_sampling(*fields)


def test_app_file_imports_only_what_a_space_installs() -> None:
    """app.py is pushed as a repo's app.py: it may need torch, transformers and gradio, nothing of this package."""
    tree = ast.parse(APP_SOURCE.read_text())
    modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module}
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))  # no relative imports
    assert modules - set(sys.stdlib_module_names) == {"torch", "transformers", "gradio"}


# ----------------------------------------------------------------------------- in a real browser


def chromium_path() -> str | None:
    for candidate in (os.environ.get("TRM_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(url: str, process: subprocess.Popen, log: Path, timeout: float = 150.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"trm app exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"trm app did not answer on {url} within {timeout:.0f} s:\n{log.read_text()[-4000:]}")


@pytest.fixture
def browser_path() -> str:
    """The system Chromium, checked before the app starts so that a skip costs nothing."""
    pytest.importorskip("gradio", reason="the app needs gradio (pip install -e '.[app]')")
    pytest.importorskip("playwright.sync_api", reason="pip install playwright (in the test extra)")
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium installed: apt-get install -y chromium (README: 'Two commands')")
    return path


@pytest.fixture
def served_app(browser_path, tmp_path):
    """`trm app` on a tiny 4x4 model in a subprocess; yields (url, model folder)."""
    folder = tmp_path / "model"
    tiny_model().save_pretrained(folder)
    port = free_port()
    log = tmp_path / "app.log"
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               PYTHONUNBUFFERED="1")
    with open(log, "w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "modeling_trm.commands", "app", str(folder), "--port", str(port),
                                    "--step-delay", "0"], stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_serving(url, process, log)
        yield url, folder
    finally:
        stop_process(process, timeout=20)


def test_a_4x4_puzzle_is_solved_through_the_browser(browser_path, served_app, tmp_path) -> None:
    from playwright import sync_api as playwright_api

    url, folder = served_app
    model = TRMForGridReasoning.from_pretrained(folder).eval()
    expected = refine(model, ids(QUESTION), ids(SOLUTION), "act")
    right_at_the_end = sum(a == s for a, s in zip(expected.final, ids(SOLUTION)))

    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(url)
            page.get_by_text(QUESTION, exact=True).click()  # pick the built-in example
            puzzle = page.locator("#trm-puzzle textarea")
            playwright_api.expect(puzzle).to_have_value(QUESTION)
            playwright_api.expect(page.locator("#trm-solution textarea")).to_have_value(SOLUTION)
            page.get_by_text("Think harder: K noisy trajectories, one chosen").click()  # opened early: mounted by
            samples = page.locator("#trm-samples-k input")  # the time it is filled, after the first solve (K = 1)
            playwright_api.expect(samples).to_have_value("1")
            page.locator("#trm-solve").click()
            answer = page.locator("#trm-answer textarea")
            playwright_api.expect(answer).not_to_have_value("")
            rendered_answer = answer.input_value()
            status = page.locator("#trm-status").inner_text()
            panels = page.locator("#trm-steps .trm-step")
            panel_names = [panels.nth(i).get_attribute("data-name") for i in range(panels.count())]
            last = panels.last
            last_colours = (last.locator("td.right").count(), last.locator("td.wrong").count())
            last_cells = "".join(last.locator("td").all_inner_texts())
            page.screenshot(path=str(tmp_path / "trm-app.png"), full_page=True)

            puzzle.fill(QUESTION[:-1])  # one symbol short: the page names the problem
            page.locator("#trm-solve").click()
            playwright_api.expect(page.get_by_text("puzzle: expected 16 symbols (4x4 grid), got 15")).to_be_visible()

            puzzle.fill(QUESTION)  # think harder: 3 trajectories (noise 0.3 and seed 0 as the page starts)
            samples.fill("3")
            page.locator("#trm-solve").click()
            rows = page.locator("#trm-trajectories tr[data-name]")
            playwright_api.expect(rows).to_have_count(3)
            chosen_row = page.locator("#trm-trajectories tr.chosen").get_attribute("data-name")
            harder_answer = answer.input_value()
            samples.fill("0")
            page.locator("#trm-solve").click()
            playwright_api.expect(page.get_by_text("trajectories K: expected a whole number from 1 to 256, got 0")
                                  ).to_be_visible()
        finally:
            browser.close()

    steps = len(expected.answers)
    assert rendered_answer == answer_text(expected.final, model.config)
    assert last_cells == rendered_answer.replace("\n", "")
    assert panel_names == ["question", *[f"step-{s}" for s in range(1, steps + 1)]]
    assert last_colours == (right_at_the_end, 16 - right_at_the_end)
    assert status.startswith(f"Final answer after {steps} supervision step")
    assert (tmp_path / "trm-app.png").stat().st_size > 10_000
    harder = refine(model, ids(QUESTION), ids(SOLUTION), "act", samples=3, noise_std=0.3, selection="halt", seed=0)
    assert chosen_row == f"trajectory-{harder.trajectories.chosen}"
    assert harder_answer == answer_text(harder.final, model.config)
