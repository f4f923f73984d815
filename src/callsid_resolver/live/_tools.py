"""Client tool calls a `ConversationSession` answers: a handler's value (or failure) as the
`client_tool_result` the agent gets (docs/protocol.md §8), with at most `max_running` handlers at
once (a slow handler never delays a pong, a flood of calls never starts a flood of tasks).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ._protocol import ClientToolCall, ClientToolResult, tool_result_text

__all__ = ["ToolCalls", "ToolHandler", "answer_tool_call", "refuse_tool_call"]

ToolHandler = Callable[[dict[str, Any]], Any]


async def answer_tool_call(handler: ToolHandler | None, call: ClientToolCall) -> ClientToolResult:
    """Run `handler` (sync or async) on the call's parameters; its value as the result, or the
    exception it raised (or a missing handler) as an error result. Never raises `Exception`."""
    try:
        if handler is None:
            raise LookupError(f"no handler registered for client tool {call.tool_name!r}")
        if inspect.iscoroutinefunction(handler):
            value = await handler(call.parameters)
        else:
            # A blocking handler runs in a thread: the loop keeps answering pings.
            value = await asyncio.to_thread(handler, call.parameters)
            if inspect.isawaitable(value):
                value = await value
        result, is_error = tool_result_text(value), False
    except Exception as exc:  # the agent gets the failure as the tool's result
        result, is_error = str(exc) or type(exc).__name__, True
    return ClientToolResult(tool_call_id=call.tool_call_id, result=result, is_error=is_error)


def refuse_tool_call(call: ClientToolCall, max_pending: int) -> ClientToolResult:
    """The error result for a call that found `max_pending` calls waiting already."""
    return ClientToolResult(
        tool_call_id=call.tool_call_id,
        result=f"too many client tool calls pending ({max_pending})",
        is_error=True,
    )


class ToolCalls:
    """The client tool calls of one session and the tasks running their handlers.

    At most `max_running` handler tasks exist at once; further calls wait their turn, and a call
    that finds `max_pending` waiting is refused at once through `refuse` (the caller writes it
    without waiting: the socket's reader hands calls in). `answer` sends each result.
    """

    def __init__(
        self,
        handlers: Mapping[str, ToolHandler] | None,
        *,
        answer: Callable[[ClientToolCall, ClientToolResult], Awaitable[None]],
        refuse: Callable[[ClientToolResult], Awaitable[None]],
        max_running: int,
        max_pending: int,
    ) -> None:
        if max_running < 1:
            raise ValueError("max_tool_calls must be at least 1")
        self.handlers: dict[str, ToolHandler] = dict(handlers or {})
        self.tasks: set[asyncio.Task[None]] = set()
        self.max_running = max_running
        self.max_pending = max_pending
        self._answer = answer
        self._refuse = refuse
        self._waiting: collections.deque[ClientToolCall] = collections.deque()

    async def take(self, call: ClientToolCall) -> None:
        """Run `call`'s handler now, queue it, or refuse it (see the class docstring)."""
        if len(self.tasks) < self.max_running:
            task = asyncio.create_task(self._work(call), name="callsid-live-tool")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif len(self._waiting) < self.max_pending:
            self._waiting.append(call)
        else:
            await self._refuse(refuse_tool_call(call, self.max_pending))

    async def aclose(self) -> None:
        """Drop the waiting calls and stop the running handlers."""
        self._waiting.clear()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _work(self, call: ClientToolCall) -> None:
        # Runs calls until none waits: at most `max_running` of these exist at once.
        next_call: ClientToolCall | None = call
        while next_call is not None:
            answer = await answer_tool_call(self.handlers.get(next_call.tool_name), next_call)
            await self._answer(next_call, answer)
            next_call = self._waiting.popleft() if self._waiting else None
