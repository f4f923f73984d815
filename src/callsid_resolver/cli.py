"""`callsid-resolver`: resolve a call SID from the shell, run the offline demo, serve the emulator.

Exit codes: 0 success, 1 no conversation for the SID, 2 bad input or usage, 3 missing or rejected
API key, 4 any other API or network failure, 5 an optional dependency is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import TextIO

from ._client import DEFAULT_BASE_URL, ElevenLabsClient
from ._exceptions import (
    AuthenticationFailed,
    CallSidResolverError,
    ConversationNotFound,
    InvalidCallSid,
    MissingApiKey,
)
from ._resolver import CallSidResolver

EXIT_NOT_FOUND, EXIT_USAGE, EXIT_AUTH, EXIT_FAILURE, EXIT_MISSING_EXTRA = 1, 2, 3, 4, 5
TESTING_HINT = "this command needs the emulator: pip install 'callsid-resolver[testing]'"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except ModuleNotFoundError as exc:
        if exc.name in ("starlette", "uvicorn", "websockets"):
            print(f"error: {TESTING_HINT}", file=sys.stderr)
            return EXIT_MISSING_EXTRA
        raise
    except InvalidCallSid as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConversationNotFound as exc:
        print(f"not found: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except (MissingApiKey, AuthenticationFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_AUTH
    except CallSidResolverError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callsid-resolver",
        description="Resolve Twilio/SIP call SIDs to ElevenLabs Agents conversations.",
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("resolve", help="resolve a call SID against the ElevenLabs API")
    p.add_argument("call_sid", metavar="CALL_SID")
    p.add_argument("--agent-id", help="narrow the search to this agent")
    p.add_argument("--phone-number-id", help="narrow the search to this agent phone number")
    p.add_argument("--since", type=int, metavar="UNIX", help="calls started at or after this time")
    p.add_argument("--max-scan", type=int, default=1000, help="conversations a scan may list")
    p.add_argument(
        "--base-url",
        help=f"API host (regional or emulator); $ELEVENLABS_BASE_URL, else {DEFAULT_BASE_URL}",
    )
    p.add_argument("--json", action="store_true", help="print the resolution as JSON")
    p.set_defaults(run=_resolve)

    p = sub.add_parser("demo", help="resolve call SIDs against the bundled emulator (offline)")
    p.add_argument("--json", action="store_true", help="print each step as a JSON line")
    p.set_defaults(run=_demo)

    p = sub.add_parser("emulator", help="serve the ElevenLabs emulator on loopback")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--recording", default="default", help="bundled recording to load, or none")
    p.add_argument("--synthetic", type=int, default=0, metavar="N", help="add N generated calls")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated calls")
    p.add_argument("--api-key", help="accept only this key (default: any non-empty key)")
    p.set_defaults(run=_emulator)

    p = sub.add_parser("record", help="record real conversations into a scrubbed recording file")
    p.add_argument("out", metavar="OUT.json")
    p.add_argument("--agent-id")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--base-url", help=f"API host; $ELEVENLABS_BASE_URL, else {DEFAULT_BASE_URL}")
    p.set_defaults(run=_record)

    from . import _doctor as doctor

    p = sub.add_parser("doctor", help="check what your ElevenLabs workspace does (read-only)")
    doctor.add_arguments(p)
    p.set_defaults(run=doctor.run)

    from . import _mcp_http  # its heavy imports wait for `run`

    p = sub.add_parser("mcp", help="serve the mailbox MCP server (streamable HTTP, shared secret)")
    _mcp_http.add_arguments(p)
    p.set_defaults(run=_mcp_http.run)
    return parser


def _resolve(args: argparse.Namespace) -> int:
    with ElevenLabsClient(base_url=args.base_url) as client, _progress(sys.stderr):
        resolver = CallSidResolver(client, max_scan=args.max_scan)
        result = resolver.resolve(
            args.call_sid,
            agent_id=args.agent_id,
            phone_number_id=args.phone_number_id,
            started_after=args.since,
        )
    if args.json:
        print(result.model_dump_json())
    else:
        print(result.conversation_id)
        print(f"via {result.source}, {result.requests} request(s)", file=sys.stderr)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(json_lines=args.json, out=sys.stdout)


def _emulator(args: argparse.Namespace) -> int:
    from .testing import Emulator, EmulatorServer, synthetic_conversations

    recording = None if args.recording == "none" else args.recording
    emulator = Emulator(recording=recording, api_key=args.api_key)
    for conversation in synthetic_conversations(args.synthetic, seed=args.seed):
        emulator.add_conversation(conversation)
    with EmulatorServer(emulator, host=args.host, port=args.port) as server:
        print(f"ElevenLabs emulator on {server.base_url} (Ctrl-C stops it)", file=sys.stderr)
        server.wait()
    return 0


def _record(args: argparse.Namespace) -> int:
    import os

    from .testing import record_conversations

    key = os.environ.get("ELEVENLABS_API_KEY")
    if not key:
        raise MissingApiKey("ELEVENLABS_API_KEY")
    base_url = args.base_url or os.environ.get("ELEVENLABS_BASE_URL") or DEFAULT_BASE_URL
    path = record_conversations(base_url, key, args.out, agent_id=args.agent_id, limit=args.limit)
    print(f"recorded into {path} (key, signatures and phone numbers scrubbed)", file=sys.stderr)
    return 0


class _ProgressLine(logging.Handler):
    """One self-overwriting stderr line counting requests, for scans that take a while."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.stream.write(f"\r{self.count} request(s)…")
        self.stream.flush()


@contextlib.contextmanager
def _progress(stream: TextIO) -> Iterator[None]:
    """Counts requests on one stderr line while a lookup runs, when stderr is a terminal."""
    if not stream.isatty():
        yield
        return
    logger = logging.getLogger("callsid_resolver")
    handler, level = _ProgressLine(stream), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        stream.write("\r\033[K")
