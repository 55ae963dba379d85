"""Find the `train.csv` / `test.csv` pair of a builder: a local folder, or a pinned Hub dataset revision.

Records where the files came from (folder or repo id, revision and resolved commit, SHA-256 of
each file) so `trm_metadata.json` says exactly which bytes a dataset was built from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .puzzle_csv import file_sha256

CSV_SPLIT_FILES = {"train": "train.csv", "test": "test.csv"}


def resolve_csv_files(
    csv_dir: str | os.PathLike | None, repo_id: str, revision: str
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Paths of `train.csv` and `test.csv`, and a provenance record.

    With `csv_dir`, both files must be in it. Without, they are downloaded with `hf_hub_download`
    from the dataset `repo_id` at `revision` (needs the network, or the files already in the Hub cache).
    """
    if csv_dir is not None:
        folder = Path(csv_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"CSV folder {folder} does not exist")
        paths = {split: folder / name for split, name in CSV_SPLIT_FILES.items()}
        missing = [str(path) for path in paths.values() if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"{folder} must hold train.csv and test.csv; missing {missing}")
        source: dict[str, Any] = {"kind": "local_csv", "csv_dir": str(folder.resolve())}
    else:
        paths = _download(repo_id, revision)
        snapshot = paths["train"].parent
        commit = snapshot.name if snapshot.parent.name == "snapshots" else None
        source = {"kind": "hub_csv", "repo_id": repo_id, "revision": revision, "commit": commit}
    source["sha256"] = {name: file_sha256(paths[split]) for split, name in CSV_SPLIT_FILES.items()}
    return paths, source


def _download(repo_id: str, revision: str) -> dict[str, Path]:
    from huggingface_hub import hf_hub_download

    paths = {}
    for split, name in CSV_SPLIT_FILES.items():
        try:
            paths[split] = Path(hf_hub_download(repo_id, name, repo_type="dataset", revision=revision))
        except Exception as error:  # offline, unknown revision, gated repo, ...: all need the same advice
            raise RuntimeError(
                f"could not get {name} of the Hub dataset {repo_id} at revision {revision!r}: "
                f"{type(error).__name__}: {error}. Download it elsewhere and pass --csv-dir (csv_dir=)."
            ) from error
    return paths


__all__ = ["CSV_SPLIT_FILES", "resolve_csv_files"]
