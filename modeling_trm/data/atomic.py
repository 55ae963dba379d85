"""Write outputs so that a crash or a bad row never leaves a half-written file or folder under the final name.

Everything is built in a temporary sibling of the target (same file system, so the final step is a
rename) and moved into place only when complete.

Fault injection (tests only): with `TRM_FAULT_KILL_AT=<point>` in the environment, a process kills
itself with SIGKILL when it reaches that point of a write, as a crash or `kill -9` would there. The
points are `KILL_POINTS`; `tests/test_faults_interrupted.py` uses them to land kills mid-write.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


KILL_POINT_ENV = "TRM_FAULT_KILL_AT"
KILL_POINTS = (
    "temp-file-written",  # write_text_atomically: the temporary file is complete, not yet renamed
    "dataset-written",  # save_trm_dataset: the splits are in the staging folder, the metadata is not
    "staging-complete",  # atomic_directory: the staging folder is complete, not yet renamed
    "old-moved-aside",  # replace_path with overwrite: the old target is moved aside, the new one not yet in
)


def fault_point(name: str) -> None:
    """Kill this process here if `TRM_FAULT_KILL_AT` names this point (see the module docstring)."""
    if os.environ.get(KILL_POINT_ENV) == name:
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def check_target(target: str | os.PathLike, overwrite: bool) -> Path:
    """Fail early (before any work) if `target` exists and may not be replaced."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists (pass overwrite=True / --overwrite to replace it)")
    return target


@contextmanager
def atomic_directory(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder; on normal exit it becomes `target`, on error it is deleted."""
    target = check_target(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield staging
        fault_point("staging-complete")
        replace_path(staging, target, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_path(staging: Path, target: Path, overwrite: bool) -> None:
    """Move a finished `staging` file or folder to `target`, replacing an old one only if `overwrite`."""
    if not target.exists():
        os.rename(staging, target)
        return
    check_target(target, overwrite)
    if staging.is_file() and not target.is_dir():
        os.replace(staging, target)
        return
    # A folder cannot be swapped in one rename: move the old one aside first, then drop it.
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.rename(target, retired / target.name)
    fault_point("old-moved-aside")
    os.rename(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder."""
    path = Path(path)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        fault_point("temp-file-written")
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


__all__ = ["KILL_POINTS", "KILL_POINT_ENV", "atomic_directory", "check_target", "fault_point", "replace_path",
           "write_text_atomically"]
