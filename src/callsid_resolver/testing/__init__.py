"""Test offline: a local ElevenLabs Agents API (extra `callsid-resolver[testing]`).

`Emulator` holds conversations from bundled recordings or generated histories and answers the
endpoints this library and the official SDK call: in-process through `Emulator.transport()`, or on
a loopback port through `EmulatorServer`. The pytest plugin (`callsid_resolver.pytest_plugin`)
wraps it in fixtures.
"""

from ._emulator import Emulator
from ._record import record_conversations, scrub_conversation
from ._recordings import list_recordings, load_recording
from ._remote import EmulatorProcess, RemoteEmulator
from ._server import EmulatorServer
from ._synthetic import conversation_at_depth, synthetic_conversations
from ._transport import EmulatorTransport

__all__ = [
    "Emulator",
    "EmulatorProcess",
    "EmulatorServer",
    "EmulatorTransport",
    "RemoteEmulator",
    "conversation_at_depth",
    "list_recordings",
    "load_recording",
    "record_conversations",
    "scrub_conversation",
    "synthetic_conversations",
]
