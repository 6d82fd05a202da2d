"""Run the main job end to end on the bundled sample world (no network needed).

Writes a synthetic world (COGs + STAC), ingests it onto a UTM cube, trains the
tiny model, embeds the area, builds a designed-feature baseline and probes both
with the world's labels, then prints where every output is.

Example: aef demo ./aef-demo --steps 200
"""

from __future__ import annotations

from pathlib import Path

import typer

from aefcli.commands.options import JSON, use_json

NO_ARGS_IS_HELP = False


def command(
    out: Path = typer.Argument(Path("aef-demo"), help="Folder for every output (created)."),
    size: int = typer.Option(256, help="World side in pixels (multiple of 16)."),
    steps: int = typer.Option(200, help="Training steps of the tiny model."),
    seed: int = typer.Option(0, help="Seed of the world and the training."),
    json: bool = JSON,
) -> None:
    from aefcli import console
    from aefcli.demo import DemoConfig, run

    use_json(json)
    outputs = run(DemoConfig(out=out, size=size, steps=steps, seed=seed))
    times = ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in outputs.items() if "seconds" in v)
    lines = [f"demo done ({times}); outputs:"] + [f"  {k:<20} {v}" for k, v in outputs["outputs"].items()]
    console.report(outputs, "\n".join(lines))
