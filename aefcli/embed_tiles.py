"""`aef embed --tile A --tile B ...` / `--tiles-from FILE|-`: several global tiles in one process.

Each tile is still its own run of `aefcli.embed.run` into `OUT/ID.zarr` (resumable,
a finished tile a no-op), but the process pays its fixed cost once: the imports
(torch, dask, xarray, zarr: about 3 s on 2 cores), the model load and the cube
open are cached across tiles (`aefcli.embed_task` keeps them per process). A
tile whose input or data is unusable is reported and skipped; the others go on.

A tile already finished with the same checkpoint and settings is recognised from
its store's attributes and the checkpoint's header alone (`finished`), before any
heavy import: re-submitting a region's array job costs well under a second per
finished tile instead of a full start-up.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from aefcli.errors import AefError, InputError


def parse_tile_lines(lines: Iterable[str]) -> list[str]:
    """Tile ids from the lines of `aef tiles` output, in order, without repeats.

    Accepts `aef tiles --ids` (one id per line), the table (id in the first column)
    and `--json` lines ({"id": ...}); blank lines and `#` comments are skipped.
    Every id is checked (InputError naming the first bad line) before any work starts.
    """
    from aefcli.tiles import tile_from_id

    ids: dict[str, None] = {}
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                tid = str(json.loads(line)["id"])
            except (ValueError, KeyError, TypeError):
                raise InputError(f"line {n} of the tile list is JSON without an \"id\"; give `aef tiles --json` or `--ids` output.") from None
        else:
            tid = line.split()[0]
        try:
            tile_from_id(tid)
        except InputError as err:
            raise InputError(f"line {n} of the tile list: {err}") from None
        ids[tid] = None
    return list(ids)


def read_tile_ids(source: str | Path) -> list[str]:
    """Tile ids from a file, or from stdin when `source` is "-" (see `parse_tile_lines`)."""
    if str(source) == "-":
        return parse_tile_lines(sys.stdin)
    try:
        text = Path(source).read_text()
    except OSError as err:
        raise InputError(f"cannot read the tile list {source}: {err.strerror or err}; give a file of tile ids or - for stdin.") from None
    return parse_tile_lines(text.splitlines())


def _checkpoint_hash(checkpoint: Path) -> str | None:
    """The checkpoint's model hash from its safetensors header (numpy framework: no torch import)."""
    from safetensors import safe_open

    from aefcli.checkpoint import META_KEY, checkpoint_path

    try:
        with safe_open(str(checkpoint_path(checkpoint)), framework="np") as f:
            return json.loads((f.metadata() or {})[META_KEY])["model_hash"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable: the full run reports it properly


def finished(cfg, tile_id: str) -> dict[str, Any] | None:
    """`aefcli.embed.run`'s no-op result when OUT/ID.zarr is complete and made with cfg's settings, else None.

    Compared without opening the model or the cube: completeness, tile, model hash,
    period, dtype, chunk, window and overlap. Anything else (a store made otherwise, an
    unreadable one, --overwrite, --dry-run, a preview to write) goes through the full run,
    which resumes or reports it.
    """
    from aefcli.parse import parse_period

    if cfg.overwrite or cfg.dry_run or cfg.preview is not None:
        return None
    store = cfg.out / f"{tile_id}.zarr"
    try:
        attrs = json.loads((store / "zarr.json").read_text())["attributes"]["aef:embedding"]
        sig, tiling = attrs["signature"], attrs["tiling"]
        same = (attrs.get("complete") is True and attrs.get("tile") == tile_id and sig["dtype"] == cfg.dtype
                and sig["chunk"] == cfg.chunk and tiling["window"] == cfg.window and tiling["overlap"] == cfg.overlap
                and attrs["period"] == str(parse_period(cfg.period)))
    except (OSError, ValueError, KeyError, TypeError, AefError):
        return None
    if not same or attrs["model"]["hash"] != _checkpoint_hash(cfg.checkpoint):
        return None
    ny, nx = sig["shape"]
    chunks = -(-ny // cfg.chunk) * -(-nx // cfg.chunk)
    return {"store": str(store), "complete": True, "tiles_done": 0, "tiles_total": chunks, "finished_before": True}


def _preview_for(preview: Path | None, tile_id: str) -> Path | None:
    """One preview per tile: PREVIEW.png -> PREVIEW_<ID>.png beside it."""
    return None if preview is None else preview.with_name(f"{preview.stem}_{tile_id}{preview.suffix}")


def run_tiles(cfg, tile_ids: Sequence[str], on_result: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Embed every tile of `tile_ids` into `cfg.out/ID.zarr`, one after another, in this process.

    cfg: an `aefcli.embed.EmbedConfig` (its tile_id and preview are replaced per tile;
    a preview becomes PREVIEW_<ID>.png). on_result: called with each tile's result as
    soon as it is done (`aefcli.embed.run`'s summary plus "tile"; for a tile that
    failed with a user/data problem {"tile", "error"} instead). Returns the totals:
    tiles, complete, computed (chunks), failed (list of {"tile", "error"}), seconds.
    A bug (any other exception) stops the run with its traceback.
    """
    from aefcli.embed import run

    if not tile_ids:
        raise InputError("the tile list is empty; give tile ids from `aef tiles --ids`.")
    if cfg.bbox is not None:
        raise InputError("give either --bbox or tiles (--tile / --tiles-from), not both")
    t0 = time.perf_counter()
    complete, computed, failed = 0, 0, []
    for tid in tile_ids:
        try:
            one = replace(cfg, tile_id=tid, preview=_preview_for(cfg.preview, tid))
            result = {"tile": tid, **(finished(one, tid) or run(one))}
        except AefError as err:  # this tile's problem (no overlap with the cube, no data): go on with the rest
            result = {"tile": tid, "error": str(err)}
            failed.append(result)
        else:
            complete += bool(result.get("complete"))
            computed += int(result.get("tiles_done", 0))
        if on_result is not None:
            on_result(result)
    return {"tiles": len(tile_ids), "complete": complete, "computed": computed, "failed": failed,
            "seconds": round(time.perf_counter() - t0, 3), "out": str(cfg.out)}
