"""Server-Sent Events as the console's pages read them: each message is HTML whose
top-level elements say where they go (``static/console.js``): ``data-op="replace"``
swaps the element of the same id, ``data-op="upsert"`` does too or, when the page has
none yet, puts it first in ``data-into``; ``data-op="append"`` adds its children to the
end of the element of its id."""

from aiop.gateway.handlers.logs import sse_event


def sse_message(html: str, event: str = "message") -> bytes:
    return sse_event(event, html.encode())


def sse_headers() -> dict[str, str]:
    # No proxy buffering: a page is only live if each message is passed on at once.
    return {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
