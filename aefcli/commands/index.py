"""Index finished tile stores: a STAC Collection + one Item per complete OUT_DIR/<ID>.zarr.

Incomplete stores are skipped and listed. With --cog, each store also gets a
Cloud-Optimised GeoTIFF mirror (OUT_DIR/cog/) and each UTM zone a GDAL VRT
(OUT_DIR/mosaic-<EPSG>.vrt) that opens the region as one raster in any GIS
(GDAL 3.10 cannot read Zarr v3 stores directly). Re-run after more tiles finish.

Example: aef index out/ --cog
"""

from __future__ import annotations

from pathlib import Path

import typer

from aefcli import console
from aefcli.commands.options import JSON, use_json

NO_ARGS_IS_HELP = True


def command(
    out_dir: Path = typer.Argument(..., help="Folder holding the <TILE_ID>.zarr embedding stores."),
    cog: bool = typer.Option(False, "--cog", help="Also write COG mirrors and one GDAL VRT mosaic per UTM zone."),
    json: bool = JSON,
) -> None:
    from aefcli.index import build_index

    use_json(json)
    result = build_index(out_dir, cog=cog)
    for reason in result.skipped:
        console.say(f"skipped {reason}")
    console.report(
        {"collection": str(result.collection), "items": len(result.items), "skipped": list(result.skipped), "vrts": [str(v) for v in result.vrts]},
        human=f"{result.collection}: {len(result.items)} items, {len(result.skipped)} skipped" + "".join(f"\n{v}" for v in result.vrts),
    )
