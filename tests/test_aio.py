"""cancel_and_wait stops a task whose first cancellation is lost, as a retry loop loses
it when asyncio.wait_for swallows it (Python 3.11) or a library turns it into an error."""

from __future__ import annotations

import asyncio

from ssmd.aio import cancel_and_wait


async def test_a_task_that_loses_a_cancellation_is_stopped() -> None:
    turns = 0
    lost = 0

    async def retrying() -> None:
        nonlocal turns, lost
        while True:
            turns += 1
            try:
                await asyncio.sleep(0.01)  # the loop's backoff between attempts
            except asyncio.CancelledError:
                if lost:
                    raise
                lost += 1  # the first one is lost: the loop goes on as after an error

    task = asyncio.create_task(retrying())
    while turns < 2:
        await asyncio.sleep(0)
    await cancel_and_wait(task, every=0.05)
    assert task.cancelled() and lost == 1


async def test_a_finished_or_failed_task_is_left_as_it_ended() -> None:
    async def fails() -> None:
        raise RuntimeError("ended on its own")

    done = asyncio.create_task(asyncio.sleep(0))
    failed = asyncio.create_task(fails())
    await asyncio.wait({done, failed})
    await cancel_and_wait(done)
    await cancel_and_wait(failed)
    assert not done.cancelled() and isinstance(failed.exception(), RuntimeError)
