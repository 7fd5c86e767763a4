"""The run list's live rows when task-manager's view lags the stream: a run whose last
event ended it is drawn again until its view says so too; one drawn for any other event
is drawn once more, then left alone."""

from typing import Any

from aiop.client.errors import NotFound
from aiop.gateway.console import runs
from aiop.gateway.console.web import Console


class Views:
    """``status`` answers, one after the other, per run."""

    def __init__(self, **states: list[str]) -> None:
        self.states = states

    async def status(self, workflow_id: str) -> dict[str, Any]:
        if workflow_id not in self.states:
            raise NotFound(404, {"detail": "gone"})
        left = self.states[workflow_id]
        state = left.pop(0) if len(left) > 1 else left[0]
        return {"workflow_id": workflow_id, "name": "n", "project": "default", "state": state,
                "created_at": "2026-12-03T12:00:00+00:00", "origin": {"kind": "api"}}  # fmt: skip


CHOSEN = runs.chosen_filters({})


async def draw(views: Views, ids: dict[str, bool], owed: dict[str, int]) -> list[str]:
    console = Console.__new__(Console)
    Console.__init__(console, None, None)  # type: ignore[arg-type]
    return await runs._rows(console, views, CHOSEN, ids, owed)  # type: ignore[arg-type]


async def test_an_ended_run_is_drawn_until_its_view_ends_it_too() -> None:
    views = Views(wf=["running", "running", "succeeded"])
    owed: dict[str, int] = {}
    rows = await draw(views, {"wf": True}, owed)
    assert 'data-state="running"' in rows[0]
    assert owed == {"wf": runs.LAGGING_ROUNDS}
    await draw(views, dict.fromkeys(owed, False), owed)
    assert owed == {"wf": runs.LAGGING_ROUNDS - 1}
    rows = await draw(views, dict.fromkeys(owed, False), owed)
    assert 'data-state="succeeded"' in rows[0]
    assert owed == {}


async def test_another_event_owes_one_more_draw_then_none() -> None:
    views = Views(wf=["queued", "running"])
    owed: dict[str, int] = {}
    await draw(views, {"wf": False}, owed)
    assert owed == {"wf": 1}
    rows = await draw(views, dict.fromkeys(owed, False), owed)
    assert 'data-state="running"' in rows[0]
    assert owed == {}


async def test_a_run_gone_or_filtered_out_draws_nothing() -> None:
    assert await draw(Views(), {"gone": True}, {}) == []
    chosen = runs.chosen_filters({"state": "failed"})
    console = Console.__new__(Console)
    Console.__init__(console, None, None)  # type: ignore[arg-type]
    rows = await runs._rows(console, Views(wf=["succeeded"]), chosen, {"wf": True}, {})  # type: ignore[arg-type]
    assert rows == []


class Listing:
    """``list_workflows`` and ``stats`` answers, as after a reconnect."""

    def __init__(self, *states: str) -> None:
        self.runs = [Views(**{f"wf{i}": [s]}) for i, s in enumerate(states)]
        self.asked: dict[str, Any] = {}

    async def list_workflows(self, **query: Any) -> dict[str, Any]:
        self.asked = query
        rows = [await views.status(next(iter(views.states))) for views in self.runs]
        return {"workflows": rows, "next_cursor": None}

    async def stats(self, **_: Any) -> dict[str, Any]:
        return {"counts": {"failed": 1}, "buckets": []}


async def test_a_connect_draws_the_first_page_oldest_first_then_the_counts() -> None:
    console = Console.__new__(Console)
    Console.__init__(console, None, None)  # type: ignore[arg-type]
    listing = Listing("running", "failed")  # newest first, as the API lists them
    html = await runs._caught_up(console, listing, CHOSEN)  # type: ignore[arg-type]
    assert [h.split('"', 2)[1] for h in html[:2]] == ["run-wf1", "run-wf0"]
    assert 'data-state="running"' in html[1]
    assert 'id="counts"' in html[2]
    assert listing.asked["limit"] == runs.PAGE
