"""The one error type of the data builders, so callers can tell bad input from bugs."""

from __future__ import annotations


class DataFormatError(ValueError):
    """A source file holds something that cannot be encoded.

    The message names the file, the row (CSV line) or task, and the problem, so the user can fix the
    source without reading builder code.
    """


__all__ = ["DataFormatError"]
