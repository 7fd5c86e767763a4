"""``aiop dlq ls|replay``: the dead letters you may see, each with why it was given up on,
and one of them sent again to its subject, as it was or fixed (GET /v1/dead-letters)."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from aiop.cli.common import JsonFlag, api_call, fail

dlq = typer.Typer(help="Dead letters: messages given up on, and replaying one.",
                  no_args_is_help=True)  # fmt: skip


@dlq.command("ls")
def ls(
    limit: Annotated[int, typer.Option(help="At most this many records.")] = 50,
    before: Annotated[int | None, typer.Option(help="Older than this seq (the next page).")] = None,
    as_json: JsonFlag = False,
) -> None:  # fmt: skip
    """The dead letters of your projects (and the platform's, with the default project),
    newest first."""
    page = api_call(lambda gw: gw.dead_letters(limit=limit, before=before))
    if as_json:
        typer.echo(json.dumps(page))
        return
    for item in page["items"]:
        typer.echo(_line(item))
    if page["next"] is not None:
        typer.echo(f"(more: --before {page['next']})", err=True)


def _line(item: dict[str, Any]) -> str:
    replayed = f"  replayed {item['replayed_at'][:19]}" if item["replayed_at"] else ""
    return (
        f"{item['seq']:>6}  {item['recorded_at'][:19]}  {item['project'] or '-':<12} "
        f"{item['original_subject']:<40} {item['reason'][:120]}{replayed}"
    )


@dlq.command("replay")
def replay(
    seq: int,
    payload_file: Annotated[
        Path | None, typer.Option(help="Send this file (the fixed message, UTF-8) instead.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replay a record replayed before.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Send dead letter SEQ again to its original subject, as it was or fixed."""
    payload = None
    if payload_file is not None:
        try:
            payload = payload_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read {payload_file}: {exc}", 2)
    sent = api_call(lambda gw: gw.replay_dead_letter(seq, payload, force))
    if as_json:
        typer.echo(json.dumps(sent))
    else:
        typer.echo(f"{seq} replayed to {sent['subject']}")
