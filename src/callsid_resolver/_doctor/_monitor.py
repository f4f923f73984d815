"""The doctor's `--monitor` check: does the monitoring socket accept this key?

It opens `wss://<host>/v1/convai/conversations/{id}/monitor` (`docs/protocol.md §11`, §12), reads
the first message or waits for a refusal close, and closes: it sends no command, so the live
conversation is untouched. Refusals are named by the same rules `MonitorChannel` applies
(`live._refusals`).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._sync.client import ElevenLabsClient
    from ._probe import Diagnosis

__all__ = ["check_monitor"]


def check_monitor(
    client: ElevenLabsClient, conversation_id: str, diagnosis: Diagnosis, timeout: float
) -> None:
    """Add the `monitor` check for `conversation_id` to `diagnosis`; `timeout` bounds the
    handshake and the wait for the first event, each."""
    try:
        result, evidence = asyncio.run(_probe(client, conversation_id, timeout))
    except ImportError as exc:
        diagnosis.add("monitor", "unknown", str(exc), "note")
        return
    diagnosis.measured.setdefault("monitor_conversation_id", conversation_id)
    diagnosis.add("monitor", result, evidence, "ok" if result == "accepted" else "note")


async def _probe(client: ElevenLabsClient, conversation_id: str, timeout: float) -> tuple[str, str]:
    from ..live._protocol import monitor_url
    from ..live._refusals import refusal_from_close, refusal_from_status
    from ..live._transport import close_info, open_socket, require_websockets

    require_websockets()
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    url = monitor_url(client.base_url, conversation_id)
    try:
        connection = await open_socket(url, headers=client.auth_headers(), open_timeout=timeout)
    except InvalidStatus as exc:
        status, body = exc.response.status_code, bytes(exc.response.body or b"")
        refusal = refusal_from_status(conversation_id, status, body)
        return "refused", f"handshake answered {status} ({refusal.refusal}) {refusal.detail[:160]}"
    except (OSError, asyncio.TimeoutError) as exc:
        return "unreachable", f"{type(exc).__name__} opening the socket"
    try:
        first = await asyncio.wait_for(connection.recv(), timeout)
    except ConnectionClosed:
        code, reason = close_info(connection)
        refused = refusal_from_close(conversation_id, code, reason)
        kind = refused.refusal if refused is not None else "closed"
        return "refused", f"closed with code {code} ({kind}): {reason[:160]}"
    except asyncio.TimeoutError:
        return "accepted", f"open, no event within {timeout:g} s; closed, nothing sent"
    finally:
        await connection.close()
    return "accepted", f"open; first event {_event_type(first)!r}; closed, nothing sent"


def _event_type(message: str | bytes) -> str:
    try:
        event = json.loads(message)
    except ValueError:
        return "not JSON"
    return str(event.get("type", "?")) if isinstance(event, dict) else "?"
