"""A browser demo of a TRM: paste or pick a puzzle, press Solve, watch the answer after every supervision step.

    trm app MODEL [--port P]            (MODEL: a model folder or a Hub repo id)
    python app.py [MODEL] [--port P]    (this file as `app.py` of a Space-style repo, `trm push --with-app`)

Each step's grid is coloured as in `trm visualize`'s refinement.png when the solution is known (green
right, red wrong; clues grey in the question), with the halting probability sigmoid(q_halt) under it.
"Think harder" runs K noisy trajectories of the puzzle (`solve(..., samples=K, noise_std=...)`, PTRM's
test-time scaling), shows every trajectory's answer, and the steps of the one `solve` chose.
This file is uploaded as a repo's `app.py`, so it imports only torch, transformers and gradio (the
model's own code arrives through `trust_remote_code`), never the `modeling_trm` package.
"""

from __future__ import annotations

import argparse
import html
import inspect
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


CORRECT = "#b7e4c7"  # the colours of modeling_trm/inference/visualize.py: cell equals the solution
WRONG = "#f4a6a6"  # it does not
GIVEN = "#e9ecef"  # a clue of the question
PLAIN = "#ffffff"  # no solution to compare with
SUDOKU_BOXES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}  # grid size -> box (rows, cols) for the thick lines
MAX_SAMPLES = 256  # the most trajectories one press may ask for, so that a shared Space stays responsive
DEFAULT_NOISE_STD = 0.3  # PTRM's reported scale (arXiv:2605.19943); the best one depends on the model
MAX_ANSWER_PANELS = 12  # distinct answers drawn as grids; the table below them lists every trajectory

# (question, solution) pairs offered under the input box when they fit the model (same length and symbols).
EXAMPLE_PUZZLES = [
    (".3......3.4..4.1", "1324421331422431"),
    (".....3.42.5...5...23.......6..5.6.2.", "651243342156165432234561423615516324"),
    ("..3.2.6..9..3.5..1..18.64....81.29..7.......8..67.82....26.95..8..2.3..9..5.1.3..",
     "483921657967345821251876493548132976729564138136798245372689514814253769695417382"),
]

PAGE_CSS = """
.trm-steps { display: flex; flex-wrap: wrap; gap: 14px; }
.trm-step { text-align: center; font-size: 12px; }
.trm-grid { border-collapse: collapse; margin: 4px auto; border: 2px solid #222; }
.trm-grid td { width: 26px; height: 26px; padding: 0; text-align: center; font: 15px monospace; color: #111; }
.trm-trajectories { border-collapse: collapse; margin-top: 8px; font-size: 13px; }
.trm-trajectories th, .trm-trajectories td { padding: 2px 10px; text-align: right; border-bottom: 1px solid #ddd; }
.trm-trajectories tr.chosen { font-weight: bold; background: #fff3bf; }
"""


class PuzzleError(ValueError):
    """A pasted puzzle that does not fit the model (length or symbols); the message names the field."""


class SettingError(ValueError):
    """A "think harder" setting out of range (K, noise, seed); the message names the field."""


@dataclass
class Trajectories:
    """The K noisy trajectories of one puzzle (`solve(..., samples=K)`), numbered k = 0..K-1 as `solve` does."""

    answers: list[list[int]]  # (K, seq_len): each trajectory's final answer
    q_halt_logits: list[float]  # (K,): each trajectory's q_halt logit at its last step (what "halt" compares)
    steps: list[int]  # (K,): supervision steps each one ran
    chosen: int  # solve's `selected_sample`
    selection: str  # "halt" or "vote"
    noise_std: float
    seed: int

    @property
    def halt_probabilities(self) -> list[float]:
        return [0.5 * (1 + math.tanh(q / 2)) for q in self.q_halt_logits]  # sigmoid, no overflow

    def groups(self) -> list[list[int]]:
        """The trajectories that reached each distinct answer, the most reached answer first (ties: the one
        a lower-numbered trajectory reached)."""
        by_answer: dict[tuple[int, ...], list[int]] = {}
        for k, answer in enumerate(self.answers):
            by_answer.setdefault(tuple(answer), []).append(k)
        return sorted(by_answer.values(), key=lambda group: (-len(group), group[0]))

    def reason(self) -> str:
        """Why `solve` chose trajectory `chosen`, in the terms of its selection rule."""
        k, count = self.chosen, len(self.answers)
        p = self.halt_probabilities
        if self.selection == "halt":
            others = [p[j] for j in range(count) if j != k]
            return (f"selection halt: its halting head was the most confident at its last step, P(halt) = "
                    f"{p[k]:.3f} (q = {self.q_halt_logits[k]:.2f}; next best {max(others):.3f})")
        groups = self.groups()
        group = next(g for g in groups if k in g)
        tied = sum(len(g) == len(group) for g in groups) - 1
        text = f"selection vote: its answer was reached by {len(group)} of {count} trajectories, the most"
        if tied:
            text += f" (as many as {tied} other answer{'s' if tied > 1 else ''}: the highest P(halt) breaks the tie)"
        if len(group) > 1 or tied:
            text += f"; #{k} has the highest P(halt) among them, {p[k]:.3f}"
        return text


@dataclass
class Refinement:
    """One puzzle's solve: the answer after every step the model took and its halting probabilities."""

    question: list[int]
    answers: list[list[int]]  # (steps, seq_len): the prediction after supervision step 1, 2, ...
    halt_probabilities: list[float]  # sigmoid(q_halt) after each step
    solution: list[int] | None
    halting: str
    trajectories: Trajectories | None = None  # "think harder" (K > 1): all K; the steps above are the chosen one's

    @property
    def final(self) -> list[int]:
        return self.answers[-1]

    def wrong_cells(self, step: int) -> int | None:
        if self.solution is None:
            return None
        return sum(a != s for a, s in zip(self.answers[step], self.solution))


def load_model(model_id: str) -> Any:
    from transformers import AutoModel

    return AutoModel.from_pretrained(model_id, trust_remote_code=True).eval()


def symbol_ids(config: Any) -> dict[str, int]:
    """Typed character -> token id; PAD/EOS never appear in a question, and Sudoku also takes 0 for a blank."""
    ids = {symbol: index for index, symbol in enumerate(config.id_to_symbol) if len(symbol) == 1}
    if config.task == "sudoku" and config.blank_token_id is not None:
        ids.setdefault("0", config.blank_token_id)
    return ids


def encode_puzzle(text: str, config: Any, field: str = "puzzle") -> list[int]:
    """Token ids of a pasted puzzle, row by row; Sudoku may be pasted as a grid (whitespace is ignored)."""
    if config.task == "sudoku":
        text = "".join(text.split())
    else:  # maze corridors are spaces: only line breaks separate rows
        text = text.replace("\r", "").replace("\n", "")
    if len(text) != config.seq_len:
        raise PuzzleError(f"{field}: expected {config.seq_len} symbols ({config.grid_shape[0]}x{config.grid_shape[1]} "
                          f"grid), got {len(text)}")
    ids = symbol_ids(config)
    unknown = sorted({c for c in text if c not in ids})
    if unknown:
        raise PuzzleError(f"{field}: symbols {unknown} are not in the model's vocabulary {sorted(ids)}")
    return [ids[c] for c in text]


def read_sampling(samples: Any, noise_std: Any, seed: Any) -> tuple[int, float, int]:
    """The "think harder" fields as (K, noise, seed), or a SettingError naming the field (the page's
    number boxes hand over floats, or None when emptied)."""
    def shown(value: Any) -> str:
        return "an empty box" if value is None else repr(value)

    def whole(value: Any) -> int | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value != int(value):
            return None
        return int(value)

    k = whole(samples)
    if k is None or not 1 <= k <= MAX_SAMPLES:
        raise SettingError(f"trajectories K: expected a whole number from 1 to {MAX_SAMPLES}, got {shown(samples)}")
    if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float)) or not math.isfinite(noise_std) \
            or noise_std < 0:
        raise SettingError(f"noise σ: expected a number >= 0, got {shown(noise_std)}")
    chosen_seed = whole(seed)
    if chosen_seed is None or not 0 <= chosen_seed < 2**63:
        raise SettingError(f"seed: expected a whole number from 0 to 2**63 - 1, got {shown(seed)}")
    return k, float(noise_std), chosen_seed


def refine(model: Any, question: list[int], solution: list[int] | None = None, halting: str = "act",
           samples: int = 1, noise_std: float = DEFAULT_NOISE_STD, selection: str = "halt",
           seed: int = 0) -> Refinement:
    """Solve one puzzle and keep every step's answer (up to the step where ACT halted).

    `samples=K > 1` thinks harder: K trajectories, each with `noise_std` noise on its latent before
    every step (a generator seeded with `seed`, so a seed gives the same trajectories), one chosen by
    `selection`; the steps are the chosen trajectory's and `trajectories` holds all K. K = 1 is the
    plain solve (no noise, whatever `noise_std` says)."""
    import torch

    if samples == 1:
        out = model.solve(torch.tensor([question]), halting=halting, return_trajectory=True)
        trajectories = None
    else:
        if "samples" not in inspect.signature(model.solve).parameters:
            raise SettingError("trajectories K: this model's code predates `solve(samples=...)`; use K = 1")
        out = model.solve(torch.tensor([question]), halting=halting, return_trajectory=True, samples=samples,
                          noise_std=noise_std, selection=selection, generator=torch.Generator().manual_seed(seed))
        trajectories = Trajectories(answers=out.sample_predictions[0].tolist(),
                                    q_halt_logits=out.sample_q_halt_logits[0].float().tolist(),
                                    steps=out.sample_steps[0].tolist(), chosen=int(out.selected_sample[0]),
                                    selection=selection, noise_std=noise_std, seed=seed)
    steps = int(out.steps[0])
    return Refinement(question=list(question), answers=out.trajectory[0, :steps].tolist(),
                      halt_probabilities=torch.sigmoid(out.trajectory_q_halt_logits[0, :steps]).tolist(),
                      solution=solution, halting=halting, trajectories=trajectories)


def answer_text(tokens: list[int], config: Any) -> str:
    """The answer as grid rows of the model's symbols, one row a line."""
    symbols = [s if len(s) == 1 else "?" for s in config.id_to_symbol]
    cols = config.grid_shape[1]
    text = "".join(symbols[t] for t in tokens)
    return "\n".join(text[i:i + cols] for i in range(0, len(text), cols))


def grid_html(cells: list[int], colours: list[str], config: Any, caption: str, name: str,
              hide_blanks: bool = False) -> str:
    """One grid as an HTML table; every cell carries its colour class (right/wrong/given/plain) for tests and CSS.

    `hide_blanks` leaves the question's blank cells empty; an answer shows every symbol it predicted."""
    rows, cols = config.grid_shape
    box = SUDOKU_BOXES.get(rows) if config.task == "sudoku" and rows == cols else None
    kind = {CORRECT: "right", WRONG: "wrong", GIVEN: "given", PLAIN: "plain"}
    lines = []
    for r in range(rows):
        tds = []
        for c in range(cols):
            token = cells[r * cols + c]
            symbol = config.id_to_symbol[token] if 0 <= token < len(config.id_to_symbol) else "?"
            shown = "" if hide_blanks and token == config.blank_token_id else symbol if len(symbol) == 1 else "?"
            right = "2px solid #222" if box and (c + 1) % box[1] == 0 else "1px solid #999"
            bottom = "2px solid #222" if box and (r + 1) % box[0] == 0 else "1px solid #999"
            colour = colours[r * cols + c]
            tds.append(f'<td class="{kind[colour]}" style="background:{colour};border-right:{right};'
                       f'border-bottom:{bottom}">{html.escape(shown)}</td>')
        lines.append("<tr>" + "".join(tds) + "</tr>")
    return (f'<div class="trm-step" data-name="{name}"><div>{caption}</div>'
            f'<table class="trm-grid">{"".join(lines)}</table></div>')


def steps_html(refinement: Refinement, config: Any, shown: int) -> str:
    """The question, then the answer after steps 1..`shown` (coloured against the solution when there is one)."""
    given = [t != config.blank_token_id for t in refinement.question] if config.blank_token_id is not None \
        else [False] * len(refinement.question)
    panels = [grid_html(refinement.question, [GIVEN if g else PLAIN for g in given], config, "question", "question",
                        hide_blanks=True)]
    for step in range(shown):
        answer = refinement.answers[step]
        if refinement.solution is None:
            colours, verdict = [PLAIN] * len(answer), "no solution to compare"
        else:
            colours = [CORRECT if a == s else WRONG for a, s in zip(answer, refinement.solution)]
            verdict = f"{refinement.wrong_cells(step)} wrong"
        caption = f"step {step + 1}: {verdict}<br>P(halt) = {refinement.halt_probabilities[step]:.2f}"
        panels.append(grid_html(answer, colours, config, caption, f"step-{step + 1}"))
    return f'<div class="trm-steps">{"".join(panels)}</div>'


def summary(refinement: Refinement) -> str:
    steps = len(refinement.answers)
    text = f"Final answer after {steps} supervision step{'s' if steps != 1 else ''} (halting: {refinement.halting})"
    if refinement.solution is None:
        text += "; no solution given to check it against."
    elif (wrong := refinement.wrong_cells(steps - 1)) == 0:
        text += ": solved, every cell right."
    else:
        text += f": {wrong} of {len(refinement.final)} cells wrong."
    runs = refinement.trajectories
    if runs is None:
        return text
    distinct = len(runs.groups())
    return (f"{text} Thought harder: {len(runs.answers)} trajectories (noise σ = {runs.noise_std:g}, seed "
            f"{runs.seed}) reached {distinct} distinct answer{'s' if distinct != 1 else ''}; chose #{runs.chosen}, "
            f"{runs.reason()}.")


def answer_label(index: int) -> str:
    """A, B, ..., Z, AA, AB, ...: the name of the index-th distinct answer."""
    label = ""
    index += 1
    while index:
        index, letter = divmod(index - 1, 26)
        label = chr(ord("A") + letter) + label
    return label


def trajectories_html(refinement: Refinement, config: Any) -> str:
    """Every distinct answer of the K trajectories as a grid (most reached first; coloured against the
    solution when there is one), then one table row per trajectory: its answer, steps, P(halt), wrong
    cells, and which one was chosen. Empty for a plain solve (K = 1)."""
    runs = refinement.trajectories
    if runs is None:
        return ""
    groups = runs.groups()
    label = {k: answer_label(i) for i, group in enumerate(groups) for k in group}
    solution = refinement.solution
    wrong = [None if solution is None else sum(a != s for a, s in zip(answer, solution)) for answer in runs.answers]
    probability = runs.halt_probabilities
    panels = []
    for i, group in enumerate(groups[:MAX_ANSWER_PANELS]):
        answer = runs.answers[group[0]]
        colours = [PLAIN] * len(answer) if solution is None else \
            [CORRECT if a == s else WRONG for a, s in zip(answer, solution)]
        chosen = " (chosen)" if runs.chosen in group else ""
        shown = ", ".join(f"#{k}" for k in group[:8]) + (", ..." if len(group) > 8 else "")
        verdict = "" if solution is None else f"<br>{wrong[group[0]]} wrong"
        caption = (f"answer {answer_label(i)}{chosen}: {len(group)} of {len(runs.answers)}<br>{shown}<br>"
                   f"best P(halt) = {max(probability[k] for k in group):.2f}{verdict}")
        panels.append(grid_html(answer, colours, config, caption, f"answer-{answer_label(i)}"))
    more = len(groups) - MAX_ANSWER_PANELS
    note = f"<p>{more} more distinct answers, listed in the table.</p>" if more > 0 else ""
    header = "<tr><th>trajectory</th><th>answer</th><th>steps</th><th>P(halt)</th><th>q_halt</th>" + \
             ("" if solution is None else "<th>wrong cells</th>") + "<th></th></tr>"
    rows = []
    for k in range(len(runs.answers)):
        mark = "chosen" if k == runs.chosen else ""
        cells = [f"#{k}", label[k], str(runs.steps[k]), f"{probability[k]:.3f}", f"{runs.q_halt_logits[k]:.2f}"]
        cells += [] if solution is None else [str(wrong[k])]
        rows.append(f'<tr data-name="trajectory-{k}" class="{mark}">' +
                    "".join(f"<td>{cell}</td>" for cell in cells + [mark]) + "</tr>")
    heading = (f"<p><b>{len(runs.answers)} trajectories</b> (noise σ = {runs.noise_std:g}, seed {runs.seed}, "
               f"selection {runs.selection}): {len(groups)} distinct answer{'s' if len(groups) != 1 else ''}. "
               f"Chosen: #{runs.chosen}, answer {label[runs.chosen]}: {html.escape(runs.reason())}.</p>")
    return (f'<div class="trm-samples" data-chosen="{runs.chosen}">{heading}<div class="trm-steps">{"".join(panels)}'
            f'</div>{note}<table class="trm-trajectories">{header}{"".join(rows)}</table></div>')


def fitting_examples(config: Any) -> list[list[str]]:
    """The built-in example puzzles this model can read (same length, known symbols)."""
    ids = symbol_ids(config)
    return [[q, s] for q, s in EXAMPLE_PUZZLES if len(q) == config.seq_len and all(c in ids for c in q + s)]


def build_demo(model: Any, title: str, step_delay: float = 0.3):
    """The Gradio page; `step_delay` seconds between steps lets one watch the refinement (0 in tests)."""
    import gradio as gr

    config = model.config

    def solve(puzzle: str, solution: str, halting: str, samples: Any, noise_std: Any, selection: str, seed: Any):
        try:
            question = encode_puzzle(puzzle, config, "puzzle")
            target = encode_puzzle(solution, config, "solution") if solution.strip() else None
            samples, noise_std, seed = read_sampling(samples, noise_std, seed)
            refinement = refine(model, question, target, halting, samples, noise_std, selection, seed)
        except (PuzzleError, SettingError) as error:
            raise gr.Error(str(error)) from None
        runs = refinement.trajectories
        which = "" if runs is None else f" (trajectory #{runs.chosen}, the one chosen of {len(runs.answers)})"
        for shown in range(1, len(refinement.answers)):
            progress = f"Refining: step {shown} of at most {config.default_solve_steps}{which}"
            yield steps_html(refinement, config, shown), "", progress, ""
            time.sleep(step_delay)
        yield (steps_html(refinement, config, len(refinement.answers)), answer_text(refinement.final, config),
               summary(refinement), trajectories_html(refinement, config))

    rows, cols = config.grid_shape
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(f"# {html.escape(title)}\nA Tiny Recursive Model ({config.task}, {rows}x{cols} grid, "
                    f"at most {config.default_solve_steps} supervision steps). Paste a puzzle row by row "
                    f"(symbols {sorted(symbol_ids(config))}), or pick an example, and press **Solve**.")
        with gr.Row():
            puzzle = gr.Textbox(label="Puzzle", lines=min(rows, 9), elem_id="trm-puzzle")
            solution = gr.Textbox(label="Solution (optional: colours the cells right/wrong)", lines=min(rows, 9),
                                  elem_id="trm-solution")
        halting = gr.Radio(["act", "max"], value="act", label="Halting: act stops once P(halt) > 0.5, "
                                                                "max runs every step (the paper's protocol)")
        with gr.Accordion("Think harder: K noisy trajectories, one chosen", open=False, elem_id="trm-think"):
            gr.Markdown("Runs K trajectories of the puzzle, adding Gaussian noise of scale σ to each one's latent "
                        "z before every supervision step (PTRM, arXiv:2605.19943), and keeps one: **halt** takes "
                        "the trajectory whose halting head is the most confident at its last step, **vote** the "
                        "answer most trajectories reached. The same seed gives the same trajectories. K = 1 is "
                        "the plain solve (no noise).")
            with gr.Row():
                samples = gr.Number(1, label=f"Trajectories K (1 to {MAX_SAMPLES})", step=1,
                                    elem_id="trm-samples-k")
                noise_std = gr.Number(DEFAULT_NOISE_STD, label="Noise σ (>= 0)", step=0.05, elem_id="trm-noise")
                selection = gr.Radio(["halt", "vote"], value="halt", label="Selection", elem_id="trm-selection")
                seed = gr.Number(0, label="Seed", step=1, elem_id="trm-seed")
        button = gr.Button("Solve", variant="primary", elem_id="trm-solve")
        examples = fitting_examples(config)
        if examples:
            gr.Examples(examples, inputs=[puzzle, solution], label="Examples")
        status = gr.Markdown(elem_id="trm-status")
        steps = gr.HTML(elem_id="trm-steps")
        answer = gr.Textbox(label="Final answer", lines=min(rows, 9), elem_id="trm-answer", interactive=False)
        trajectories = gr.HTML(elem_id="trm-trajectories")
        button.click(solve, inputs=[puzzle, solution, halting, samples, noise_std, selection, seed],
                     outputs=[steps, answer, status, trajectories])
    return demo


def default_model() -> str:
    """In a Space-style repo the model sits beside this file; elsewhere `TRM_MODEL` names it."""
    here = Path(__file__).resolve().parent
    if os.environ.get("TRM_MODEL"):
        return os.environ["TRM_MODEL"]
    if (here / "config.json").is_file():
        return str(here)
    raise SystemExit("app.py: no model given; pass a model folder or Hub repo id, or set TRM_MODEL")


def launch(model_id: str, port: int | None = None, host: str = "127.0.0.1", step_delay: float = 0.3) -> None:
    """Serve the demo until interrupted; analytics and share links stay off (the page needs no internet)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    model = load_model(model_id)
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])  # system fonts: no font download
    name = Path(model_id).name if os.path.isdir(model_id) else model_id
    build_demo(model, f"TRM: {name}", step_delay).launch(server_name=host, server_port=port, share=False,
                                                          theme=theme, css=PAGE_CSS)


def add_arguments(parser: argparse.ArgumentParser, model_required: bool) -> None:
    parser.add_argument("model", nargs=None if model_required else "?", help="model folder or Hub repo id")
    parser.add_argument("--port", type=int, default=None, help="port to serve on (default: Gradio's 7860 or the "
                                                               "next free one)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (0.0.0.0 to reach it from other machines)")
    parser.add_argument("--step-delay", type=float, default=0.3, help="seconds between shown steps")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser, model_required=False)
    args = parser.parse_args(argv)
    launch(args.model or default_model(), args.port, args.host, args.step_delay)


if __name__ == "__main__":
    main(sys.argv[1:])
