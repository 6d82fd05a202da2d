"""Where output goes: stdout is data (JSON lines with --json), stderr is talk.

The CLI's root callback sets the verbosity and JSON mode once; commands and
stages call `report`, `say` and `progress` instead of printing themselves.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from typing import Any, Iterable, TypeVar

T = TypeVar("T")


@dataclass
class ConsoleState:
    json: bool = False
    verbosity: int = 0  # -1 quiet, 0 normal, 1+ verbose


state = ConsoleState()


def configure(json_mode: bool = False, verbose: int = 0, quiet: bool = False) -> None:
    state.json = json_mode  # set per invocation: a command's own --json switches it on later
    state.verbosity = -1 if quiet else verbose
    level = logging.WARNING if quiet else logging.DEBUG if verbose > 1 else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)
    for noisy in ("rasterio", "urllib3", "distributed", "fsspec", "numcodecs"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def say(message: str) -> None:
    """A human message on stderr (silenced by -q)."""
    if state.verbosity >= 0:
        print(message, file=sys.stderr, flush=True)


def report(result: dict[str, Any], human: str | None = None) -> None:
    """A command's result: one JSON line on stdout with --json, else readable text."""
    if state.json:
        print(json.dumps(result, default=str), flush=True)
    elif human is not None:
        print(human, flush=True)
    else:
        for key, value in result.items():
            print(f"{key}: {value}", flush=True)


def progress(items: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it") -> Iterable[T]:
    """A tqdm bar on stderr, hidden with -q or when stderr is not a terminal and --json is on."""
    from tqdm import tqdm

    disable = state.verbosity < 0
    return tqdm(items, total=total, desc=desc, unit=unit, file=sys.stderr, disable=disable, dynamic_ncols=True)
