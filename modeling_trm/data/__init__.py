"""Puzzle datasets for TRM: builders for the paper's sources, offline generators, and their metadata.

Raw puzzles -> builder (+ augmentation) -> `datasets.DatasetDict` with `train`/`test` splits and a
`trm_metadata.json` beside them. One module per job, imported directly (this file imports nothing,
so `modeling_trm.data.arc_augment` stays a cheap numpy-only import for the metrics):

- `metadata`: `DatasetMetadata`, `save_trm_dataset`, `load_trm_dataset`.
- `sudoku`, `maze`, `arc`: `build_sudoku_dataset`, `build_maze_dataset`, `build_arc_dataset*`.
- `generate_sudoku`, `generate_maze`: offline generators writing the Sudoku-Extreme CSV schema.
- `sudoku_solver`: the backtracking solver behind the generator's uniqueness check and rating.
- `build`: the work of `trm data build ...` / `trm data generate ...` (parsers: `modeling_trm.commands.data`),
  and `build_from_recipe` for `trm train`.
- helpers: `puzzle_csv` (the shared CSV schema), `csv_source` (local folder or Hub download),
  `tables` (numpy columns -> `datasets.Dataset`), `atomic` (temp-then-rename outputs), `errors`.
"""
