"""Errors the CLI turns into a one-line message and an exit code.

Library code raises these for problems of the user's input or data; anything
else escaping to the CLI is a bug and keeps its traceback.
"""


class AefError(Exception):
    """A user or data problem: one line saying what is wrong and what to do. Exit 1."""

    exit_code = 1


class InputError(AefError):
    """Bad arguments or files given by the user (bbox, period, GeoJSON, paths)."""


class DataError(AefError):
    """The data cannot serve the request (empty search, corrupt asset, no valid pixels)."""


class PartialFailure(AefError):
    """The job finished but skipped some work (e.g. broken assets); outputs stay valid."""

