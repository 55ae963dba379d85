"""The Sudoku-Extreme CSV schema (`source,question,answer,rating`), shared by Sudoku and maze files.

`sapientinc/sudoku-extreme` and `sapientinc/maze-30x30-hard-1k` both use it, and so do this
package's generators, so one reader serves real and generated data. Read with the `csv` module,
never pandas: pandas turns an 81-digit answer into an integer, and maze rows are mostly spaces,
which must never be stripped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from .atomic import check_target, write_text_atomically
from .errors import DataFormatError

CSV_COLUMNS = ("source", "question", "answer", "rating")
RATING_MIN, RATING_MAX = -(2**31), 2**31 - 1  # ratings are stored as int32


class PuzzleRow(NamedTuple):
    """One CSV row; `line` is its line number in the file (the header is line 1), for error messages."""

    source: str
    question: str
    answer: str
    rating: int
    line: int = 0


def iter_puzzle_csv(path: str | os.PathLike) -> Iterator[PuzzleRow]:
    """Yield the rows of a CSV in the schema, checking the header, field count and integer rating.

    Undecodable bytes and rows the csv module cannot parse (a field over its size limit, a stray
    quote) raise `DataFormatError` naming the line, like every other problem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CSV file {path} does not exist")
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.reader(stream)
        complete = 0  # the last line of the last row read in full
        try:
            for fields in reader:
                if complete == 0:
                    if tuple(fields) != CSV_COLUMNS:
                        raise DataFormatError(f"{path}: line 1: header is {fields}, expected {list(CSV_COLUMNS)}")
                elif fields:  # (a blank line, e.g. at the end of the file, is skipped)
                    yield _puzzle_row(fields, path, reader.line_num)
                complete = reader.line_num
        except UnicodeDecodeError as error:
            raise DataFormatError(f"{path}: line {_first_undecodable_line(path)}: not UTF-8 text "
                                  f"({error.reason})") from None
        except csv.Error as error:
            raise DataFormatError(f"{path}: line {complete + 1}: not a readable CSV row ({error})") from None
        if complete == 0:
            raise DataFormatError(f"{path}: file is empty, expected the header {','.join(CSV_COLUMNS)}")


def _puzzle_row(fields: list[str], path: Path, line: int) -> PuzzleRow:
    if len(fields) != len(CSV_COLUMNS):
        raise DataFormatError(
            f"{path}: line {line}: expected {len(CSV_COLUMNS)} fields ({','.join(CSV_COLUMNS)}), got {len(fields)}"
        )
    source, question, answer, rating = fields
    return PuzzleRow(source, question, answer, _parse_rating(rating, path, line), line)


def _first_undecodable_line(path: Path) -> int:
    """Line number of the first line that is not UTF-8 (the text layer decodes ahead, so the csv reader
    cannot tell which line it was)."""
    with open(path, "rb") as stream:
        for number, line in enumerate(stream, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return number


def read_puzzle_csv(
    path: str | os.PathLike,
    *,
    min_rating: int | None = None,
    subsample_size: int | None = None,
    rng: np.random.Generator | None = None,
    progress: bool = False,
) -> list[PuzzleRow]:
    """Rows of a CSV, optionally only those rated at least `min_rating`, optionally a random subset.

    With `subsample_size`, `subsample_size` rows are drawn without replacement from the eligible
    rows using `rng` (so the choice is reproducible from a seed) and returned in file order. The
    file is read twice then, keeping only ratings on the first pass, so the 3.8M-row Sudoku-Extreme
    `train.csv` never sits in memory as strings.
    """
    def eligible(row: PuzzleRow) -> bool:
        return min_rating is None or row.rating >= min_rating

    def rows(step: str) -> Iterator[PuzzleRow]:
        return tqdm(iter_puzzle_csv(path), desc=f"{step} {Path(path).name}", unit=" rows", disable=not progress)

    if subsample_size is None:
        return [row for row in rows("reading") if eligible(row)]
    if subsample_size < 1:
        raise ValueError(f"subsample_size must be positive, got {subsample_size}")
    keep = np.fromiter((eligible(row) for row in rows("scanning")), dtype=bool)
    candidates = np.flatnonzero(keep)
    if subsample_size > candidates.size:
        rated = f" rated >= {min_rating}" if min_rating is not None else ""
        raise ValueError(f"{path}: asked for {subsample_size} rows but only {candidates.size} rows{rated} exist")
    rng = rng if rng is not None else np.random.default_rng(0)
    chosen = np.zeros(keep.size, dtype=bool)
    chosen[rng.choice(candidates, size=subsample_size, replace=False)] = True
    return [row for index, row in enumerate(rows("reading")) if chosen[index]]


def write_puzzle_csv(path: str | os.PathLike, rows: Iterable[PuzzleRow], overwrite: bool = False) -> int:
    """Write rows in the schema, atomically (temporary file, then rename); returns the number written."""
    path = check_target(path, overwrite)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for row in rows:
        writer.writerow([row.source, row.question, row.answer, int(row.rating)])
        count += 1
    write_text_atomically(path, buffer.getvalue())
    return count


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, recorded in dataset provenance."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def encode_strings(
    strings: list[str], lookup: np.ndarray, length: int, what: str, rows: list[PuzzleRow], path: str | os.PathLike
) -> np.ndarray:
    """Encode equal-length ASCII strings to an `(n, length)` int16 array of ids through `lookup`.

    `lookup[byte]` is the id of that character, or -1 where the character is not in the alphabet.
    Errors name the file, the line of the offending row, the field (`what`) and the problem.
    """
    for row, text in zip(rows, strings):
        if len(text) != length:
            raise DataFormatError(
                f"{path}: line {row.line}: {what} has {len(text)} characters, expected {length}"
            )
    if not strings:
        return np.zeros((0, length), dtype=np.int16)
    try:
        raw = "".join(strings).encode("ascii")
    except UnicodeEncodeError as error:
        row_index, position = divmod(error.start, length)
        raise DataFormatError(
            f"{path}: line {rows[row_index].line}: {what} has symbol {strings[row_index][position]!r} at "
            f"position {position}, outside the alphabet {_alphabet(lookup)}"
        ) from None
    ids = lookup[np.frombuffer(raw, dtype=np.uint8)].reshape(len(strings), length)
    bad = np.argwhere(ids < 0)
    if bad.size:
        row_index, position = (int(v) for v in bad[0])
        raise DataFormatError(
            f"{path}: line {rows[row_index].line}: {what} has symbol {strings[row_index][position]!r} at "
            f"position {position}, outside the alphabet {_alphabet(lookup)}"
        )
    return ids


def make_lookup(symbols: dict[str, int]) -> np.ndarray:
    """Byte -> id table for `encode_strings` (-1 for characters outside `symbols`)."""
    lookup = np.full(256, -1, dtype=np.int16)
    for symbol, token_id in symbols.items():
        lookup[ord(symbol)] = token_id
    return lookup


def _alphabet(lookup: np.ndarray) -> str:
    return repr("".join(chr(byte) for byte in np.flatnonzero(lookup >= 0)))


def _parse_rating(text: str, path: Path, line: int) -> int:
    try:
        rating = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not value.is_integer():
            raise DataFormatError(f"{path}: line {line}: rating {text!r} is not an integer") from None
        rating = int(value)
    if not RATING_MIN <= rating <= RATING_MAX:  # the dataset stores ratings as int32
        raise DataFormatError(f"{path}: line {line}: rating {rating} is outside the int32 range "
                              f"[{RATING_MIN}, {RATING_MAX}]")
    return rating


__all__ = [
    "CSV_COLUMNS",
    "PuzzleRow",
    "encode_strings",
    "file_sha256",
    "iter_puzzle_csv",
    "make_lookup",
    "read_puzzle_csv",
    "write_puzzle_csv",
]
