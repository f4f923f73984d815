"""A `Sender`'s lanes: one ordered, bounded queue of sends per call, and the task writing it.

Sends are written in the order they were made, and a burst is neither lost nor reordered. A lane
holds at most `queue_size` sends waiting to be written; a send that finds it full waits for room
up to `send_timeout`, then raises `SendTimeout` (nothing was sent). Consecutive sends of a lane
that a `RunChannel` takes together (for a session on another worker, for the mailbox) go as one
run: one Redis round trip instead of one per send; each send of the run then settles on its own,
exactly as if it had gone alone.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from ._channels import RunChannel
from ._errors import SenderError, SendTimeout
from ._records import Job, settle
from ._router_messages import MAX_RUN

__all__ = ["MAX_LANE_RUN", "Lane", "Lanes"]

MAX_LANE_RUN = MAX_RUN  # sends of one lane taken together at most (a router run's limit)
_CLOSED_WHILE_SENDING = (
    "the sender was closed while this was being sent: it may or may not have arrived"
)


@dataclass(eq=False)
class Lane:
    """The ordered queue of one call's sends and the task writing them."""

    jobs: collections.deque[Job] = field(default_factory=collections.deque)  # admitted
    waiting: collections.deque[Job] = field(default_factory=collections.deque)  # for room
    current: list[Job] = field(default_factory=list)  # taken out of `jobs`, being written
    task: asyncio.Task[None] | None = None


class Lanes:
    """The lanes of one `Sender`, keyed by `Target.lane_key`.

    `dispatch(job)` delivers one job (it never raises: the outcome goes to the job's future);
    `run_channels` are asked, in order, whether they take a job together with the jobs after
    it (`RunChannel.takes_run`).
    """

    def __init__(
        self,
        dispatch: Callable[[Job], Awaitable[None]],
        run_channels: Sequence[RunChannel],
        *,
        queue_size: int,
        send_timeout: float,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.queue_size = queue_size
        self.send_timeout = send_timeout
        self._dispatch = dispatch
        self._run_channels = tuple(run_channels)
        self._lanes: dict[str, Lane] = {}

    def __len__(self) -> int:
        return len(self._lanes)

    async def enqueue(self, job: Job) -> None:
        """Queue `job` in its call's lane, waiting for room up to `send_timeout`.

        Raises `SendTimeout` when the lane stayed full (the job is not queued)."""
        key = job.target.lane_key
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = Lane()
            lane.task = asyncio.create_task(self._run(key, lane), name="callsid-live-lane")
        if not lane.waiting and len(lane.jobs) < self.queue_size:
            lane.jobs.append(job)  # no await since the lane lookup: order is call order
            return
        admitted = job.admitted = asyncio.get_running_loop().create_future()
        lane.waiting.append(job)
        try:
            await asyncio.wait_for(asyncio.shield(admitted), self.send_timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
            if admitted.done():  # admitted as the timer fired: it is queued, carry on
                if isinstance(exc, asyncio.CancelledError):
                    job.cancelled = True
                    raise
                return
            lane.waiting.remove(job)
            admitted.cancel()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise SendTimeout(
                job.target.short, timeout=self.send_timeout, queue_size=self.queue_size
            ) from None

    async def aclose(self) -> None:
        """Stop every lane; the jobs not yet written fail with `SenderError`."""
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, key: str, lane: Lane) -> None:
        try:
            while lane.jobs:
                job = lane.jobs.popleft()
                self._admit(lane)
                if job.cancelled:
                    continue
                lane.current = [job]
                runner = next((c for c in self._run_channels if c.takes_run(job)), None)
                if runner is None:
                    await self._dispatch(job)
                else:
                    lane.current = self._run_of(lane, job, runner)
                    for ready in await runner.prepare_run(lane.current):
                        await self._dispatch(ready)
                # Dispatched: each job is settled, or its write's confirmation will settle it.
                lane.current = []
        finally:
            # Reached with both deques empty, or on `aclose()`: fail whatever is left, the jobs
            # being written included (their outcome would otherwise never come: nothing lost).
            if self._lanes.get(key) is lane:
                del self._lanes[key]
            for job in lane.current:
                settle(job.done, SenderError(_CLOSED_WHILE_SENDING))
            for job in (*lane.jobs, *lane.waiting):
                settle(job.done, SenderError("the sender was closed before this was sent"))

    def _admit(self, lane: Lane) -> None:
        while lane.waiting and len(lane.jobs) < self.queue_size:
            admitted = lane.waiting.popleft()
            lane.jobs.append(admitted)
            assert admitted.admitted is not None
            admitted.admitted.set_result(None)

    def _run_of(self, lane: Lane, job: Job, runner: RunChannel) -> list[Job]:
        """`job` and the jobs after it in the lane that `runner` takes too, up to
        `MAX_LANE_RUN`."""
        run = [job]
        while lane.jobs and len(run) < MAX_LANE_RUN and lane.jobs[0].target == job.target:
            if not runner.takes_run(lane.jobs[0]):
                break
            following = lane.jobs.popleft()
            self._admit(lane)
            if not following.cancelled:
                run.append(following)
        return run
