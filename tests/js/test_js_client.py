"""The official JavaScript client (`@elevenlabs/client`, pinned in `tests/js/package.json`) holds a
session with the emulator: subprotocol `convai` (and `bearer.<token>`), a user message and the
agent's response, a contextual update, user activity, pings, and a client tool round trip.

Runs `node tests/js/roundtrip.mjs`; installs the pinned client with `npm ci` when
`tests/js/node_modules` is missing. Skipped only where `node` is not installed.
"""

from __future__ import annotations

import json
import selectors
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callsid_resolver.testing import Emulator, EmulatorServer

HERE = Path(__file__).parent
AGENT = "agent_fake0example0agent0000000001"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(
    NODE is None, reason="node is not installed: the @elevenlabs/client test needs Node 18+"
)


@pytest.fixture(scope="module")
def node_modules() -> Path:
    modules = HERE / "node_modules"
    if not (modules / "@elevenlabs" / "client").is_dir():
        npm = shutil.which("npm")
        assert npm is not None, "node is installed but npm is not: install npm to run this test"
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(HERE)],
            check=True,
            timeout=600,
            capture_output=True,
        )
    return modules


@pytest.fixture
def emulator() -> Emulator:
    emu = Emulator(recording="default")
    emu.ping_interval = 0.1
    return emu


@pytest.fixture
def server(emulator: Emulator) -> Iterator[EmulatorServer]:
    with EmulatorServer(emulator) as running:
        yield running


def native_websocket() -> list[str] | None:
    """Node's own WebSocket (undici): global from Node 22, behind a flag on Node 20."""
    assert NODE is not None
    for flags in ([], ["--experimental-websocket"]):
        probe = subprocess.run(
            [NODE, *flags, "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"],
            capture_output=True,
            timeout=30,
        )
        if probe.returncode == 0:
            return flags
    return None


class Node:
    """`roundtrip.mjs` as a child process, read line by line with a deadline."""

    def __init__(self, args: list[str], flags: list[str]) -> None:
        assert NODE is not None
        self.process = subprocess.Popen(
            [NODE, *flags, str(HERE / "roundtrip.mjs"), *args],
            cwd=HERE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._selector = selectors.DefaultSelector()
        assert self.process.stdout is not None
        self._selector.register(self.process.stdout, selectors.EVENT_READ)

    def read(self, timeout: float = 20.0) -> dict[str, Any]:
        assert self.process.stdout is not None
        if not self._selector.select(timeout):
            raise AssertionError(f"node said nothing in {timeout} s")
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(5)
            assert self.process.stderr is not None
            raise AssertionError(f"node exited: {self.process.stderr.read()[-2000:]}")
        event: dict[str, Any] = json.loads(line)
        return event

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(5)
        self._selector.close()
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the emulator never saw it"
        time.sleep(0.01)


def round_trip(
    emulator: Emulator, server: EmulatorServer, flags: list[str], *args: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the client through a whole session; its result and what the emulator received."""
    node = Node([server.ws_url, AGENT, *args], flags)
    try:
        connected = node.read()
        assert connected["event"] == "connected", connected
        conversation_id = connected["conversation_id"]
        assert node.read()["event"] == "sent"
        call_id = emulator.call_client_tool_sync(
            conversation_id, "lookup_order", {"order_id": "A-1001"}
        )
        session = emulator.session(conversation_id)
        wait_for(lambda: bool(session.tool_results(call_id)) and bool(session.pongs))
        node.send("end")
        result = node.read()
    finally:
        node.close()
    assert result["event"] == "result", result
    assert result["conversation_id"] == conversation_id
    wait_for(lambda: not session.live)
    return result, session.events


def check(emulator: Emulator, result: dict[str, Any], events: list[dict[str, Any]]) -> None:
    assert result["subprotocol"] == "convai"
    assert result["errors"] == []
    assert [m["text"] for m in result["messages"] if m["source"] == "ai"] == [emulator.agent_reply]
    assert result["tool_calls"] == [{"order_id": "A-1001"}]
    kinds = [e["type"] for e in events if e["type"] != "pong"]
    assert kinds[0] == "conversation_initiation_client_data"
    assert kinds[1:] == ["user_message", "contextual_update", "user_activity", "client_tool_result"]
    by_type = {e["type"]: e for e in events}
    assert by_type["user_message"]["text"] == "Where is my order?"
    assert by_type["contextual_update"]["text"] == "CRM: the caller is a VIP customer"
    tool_result = by_type["client_tool_result"]
    assert tool_result["result"] == '{"order":"A-1001","status":"shipped"}'  # a string
    assert tool_result["is_error"] is False
    assert by_type["pong"]["event_id"] >= 1
    assert result["pings"] >= 1


def test_the_js_client_holds_a_session_over_ws(
    node_modules: Path, emulator: Emulator, server: EmulatorServer
) -> None:
    emulator.profile = "observed"  # strict: a non-string tool result would be refused
    result, events = round_trip(emulator, server, [], "ws")
    check(emulator, result, events)
    assert result["disconnect"]["reason"] == "user"


def test_the_js_client_holds_a_session_over_nodes_own_websocket(
    node_modules: Path, emulator: Emulator, server: EmulatorServer
) -> None:
    flags = native_websocket()
    if flags is None:
        pytest.skip("this Node has no built-in WebSocket; the ws run covers the client")
    result, events = round_trip(emulator, server, flags, "native")
    check(emulator, result, events)


def test_the_js_client_authorizes_a_private_agent_with_a_bearer_token(
    node_modules: Path, emulator: Emulator, server: EmulatorServer
) -> None:
    emulator.require_signed_url = True
    result, events = round_trip(emulator, server, [], "ws", emulator.sign(AGENT))
    check(emulator, result, events)
    conversation = emulator.conversation(result["conversation_id"])
    assert conversation is not None
    assert conversation["metadata"]["authorization_method"] == "authorization_header"


def test_the_js_client_is_refused_with_a_forged_token(
    node_modules: Path, emulator: Emulator, server: EmulatorServer
) -> None:
    emulator.require_signed_url = True
    node = Node([server.ws_url, AGENT, "ws", emulator.sign(AGENT) + "x"], [])
    try:
        failed = node.read()
    finally:
        node.close()
    assert failed["event"] == "failed"
    assert emulator.requests.of("agent_ws")[-1].status == 403
