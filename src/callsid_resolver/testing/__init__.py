"""Test offline: a local ElevenLabs Agents API (extra `callsid-resolver[testing]`).

`Emulator` holds conversations from bundled recordings or generated histories and answers the
endpoints this library and the official SDK call: in-process through `Emulator.transport()` (an
httpx transport for sync and async clients), as an ASGI app (`Emulator.app`), or on a loopback port
through `EmulatorServer` (HTTP and the agent and monitoring WebSockets). Its `profile`
(`DOCUMENTED`, `OBSERVED`, or one `load_profile` reads from a `doctor` file) chooses which reading
of the real API it plays. The pytest plugin
(`callsid_resolver.pytest_plugin`) wraps it in fixtures.
"""

from ._emulator import Emulator
from ._profile import (
    DOCUMENTED,
    OBSERVED,
    EmulatorProfile,
    FilterMode,
    load_profile,
    profile_document,
    profile_file,
)
from ._record import record_conversations, scrub_conversation
from ._recordings import list_recordings, load_recording, load_recording_file
from ._remote import EmulatorProcess, RemoteEmulator
from ._requests import RequestLog, RequestRecord
from ._server import EmulatorServer
from ._session import Session
from ._settings import MonitorRefusal
from ._synthetic import conversation_at_depth, newest_first, synthetic_conversations
from ._transport import EmulatorTransport
from ._webhooks import sign_webhook

__all__ = [
    "DOCUMENTED",
    "OBSERVED",
    "Emulator",
    "EmulatorProcess",
    "EmulatorProfile",
    "EmulatorServer",
    "EmulatorTransport",
    "FilterMode",
    "MonitorRefusal",
    "RemoteEmulator",
    "RequestLog",
    "RequestRecord",
    "Session",
    "conversation_at_depth",
    "list_recordings",
    "load_profile",
    "load_recording",
    "load_recording_file",
    "newest_first",
    "profile_document",
    "profile_file",
    "record_conversations",
    "scrub_conversation",
    "sign_webhook",
    "synthetic_conversations",
]
