"""``aiop executors``: the fleet as the gateway hears it (GET /v1/executors)."""

import json

import typer

from aiop.cli.common import JsonFlag, api_call


def executors(as_json: JsonFlag = False) -> None:
    """List the executors heard from lately: pool, load, circuits and Dagger engine."""
    fleet = api_call(lambda gw: gw.executors())
    if as_json:
        typer.echo(json.dumps(fleet))
        return
    for e in fleet:
        circuits = ",".join(f"{r}:{s}" for r, s in sorted(e["circuits"].items())) or "-"
        engine = {True: "up", False: "down", None: "-"}[e["engine"]["reachable"]]
        health = "STALE" if e["stale"] else "live"
        typer.echo(f"{e['id']:<40} {e['pool']:<10} {health:<5} steps {e['load']}/{e['capacity']}"
                   f"  runs {e['running']}  runners {','.join(e['runners'])}"
                   f"  circuits {circuits}  engine {engine}")  # fmt: skip
    typer.echo(f"{len(fleet)} executors")
