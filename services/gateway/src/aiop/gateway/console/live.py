"""Server-Sent Events as the console's pages read them: each message is HTML whose
top-level elements say where they go (``static/console.js``): ``data-op="replace"``
swaps the element of the same id, ``data-op="upsert"`` does too or, when the page has
none yet, puts it first in ``data-into``; ``data-op="append"`` adds its children to the
end of the element of its id."""


def sse_message(html: str, event: str | None = None) -> bytes:
    lines = [f"event: {event}"] if event else []
    lines += [f"data: {line}" for line in html.splitlines() or [""]]
    return ("\n".join(lines) + "\n\n").encode()


def sse_headers() -> dict[str, str]:
    # No proxy buffering: a page is only live if each message is passed on at once.
    return {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
