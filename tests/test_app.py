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
from modeling_trm.inference.app import (EXAMPLE_PUZZLES, PuzzleError, Refinement, answer_text, encode_puzzle, refine,
                              steps_html, summary)
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
        finally:
            browser.close()

    steps = len(expected.answers)
    assert rendered_answer == answer_text(expected.final, model.config)
    assert last_cells == rendered_answer.replace("\n", "")
    assert panel_names == ["question", *[f"step-{s}" for s in range(1, steps + 1)]]
    assert last_colours == (right_at_the_end, 16 - right_at_the_end)
    assert status.startswith(f"Final answer after {steps} supervision step")
    assert (tmp_path / "trm-app.png").stat().st_size > 10_000
