"""Stopping background tasks, including one that outlives its first cancel."""

import asyncio
import sys

from aiop.servicekit.tasks import cancel_and_wait, finish


async def test_a_cancel_lost_by_wait_for_is_repeated() -> None:
    """The reply and the cancel land in one loop turn: on Python 3.11 ``wait_for`` hands
    back the reply and the cancel is gone, so a loop around it would run on."""
    replies: asyncio.Queue[asyncio.Future[int]] = asyncio.Queue()
    rounds = 0

    async def requesting() -> None:
        nonlocal rounds
        while True:
            reply: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            await replies.put(reply)
            await asyncio.wait_for(reply, timeout=60)
            rounds += 1

    task = asyncio.create_task(requesting())
    first = await replies.get()
    first.set_result(1)
    task.cancel()
    if sys.version_info < (3, 12):  # the cancel was lost: the task asks again
        await asyncio.wait_for(replies.get(), timeout=10)
        assert not task.done()
    await asyncio.wait_for(cancel_and_wait([task]), timeout=10)
    assert task.done()
    assert rounds <= 1


async def test_a_task_that_swallows_a_cancel_is_cancelled_again() -> None:
    swallowed = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            swallowed.set()
        await asyncio.sleep(60)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)  # let it reach its first sleep
    await asyncio.wait_for(cancel_and_wait([task]), timeout=10)
    assert swallowed.is_set()
    assert task.cancelled()


async def test_finished_and_failed_tasks_are_left_as_they_are() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    done = asyncio.create_task(asyncio.sleep(0, result=7))
    failed = asyncio.create_task(fails())
    await asyncio.wait({done, failed})
    await cancel_and_wait([done, failed])
    assert done.result() == 7
    assert isinstance(failed.exception(), RuntimeError)


async def test_a_cleanup_runs_to_its_end_through_repeated_cancels() -> None:
    steps: list[str] = []
    begun, release = asyncio.Event(), asyncio.Event()

    async def cleanup() -> None:
        steps.append("begun")
        begun.set()
        await release.wait()
        steps.append("ended")

    async def streaming() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await finish(cleanup())

    task = asyncio.create_task(streaming())
    await asyncio.sleep(0)  # let it reach its wait
    task.cancel()
    await asyncio.wait_for(begun.wait(), timeout=10)
    for _ in range(3):  # cancelled again and again, as a cancelled anyio scope does
        task.cancel()
        await asyncio.sleep(0)
    assert not task.done()
    release.set()
    await asyncio.wait_for(asyncio.wait({task}), timeout=10)
    assert steps == ["begun", "ended"]
    assert task.cancelled()
