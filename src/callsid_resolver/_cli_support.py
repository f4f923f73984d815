"""Parts of the command line kept out of `cli`: argument types that refuse bad input, the help
formatter and its exit-code epilogs, and the `-v` and progress logging."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NoReturn, TextIO

import httpx

from ._client_base import DEFAULT_BASE_URL

if TYPE_CHECKING:
    from .testing import EmulatorProfile

__all__ = [
    "DOCTOR_EXIT_CODES",
    "EXIT_CODES",
    "HelpFormatter",
    "Parser",
    "UsageError",
    "add_profile_argument",
    "base_url",
    "count_at_least",
    "filter_modes",
    "port_number",
    "profile_argument",
    "request_counter",
    "seconds",
    "verbose_log",
]

EXIT_NOT_FOUND, EXIT_USAGE, EXIT_AUTH, EXIT_FAILURE, EXIT_MISSING_EXTRA = 1, 2, 3, 4, 5
EXIT_CODES = """\
exit codes:
  0  success
  1  no conversation carries the call SID
  2  bad input or usage (the message says what to change)
  3  missing or rejected API key
  4  any other API or network failure
  5  an optional dependency is missing (the message names the extra to install)
"""
DOCTOR_EXIT_CODES = """\
exit codes:
  0  the checks ran
  1  a problem the library cannot work around
  2  bad input or usage, or no key in ELEVENLABS_API_KEY
  4  an API or network failure stopped the checks
"""


class UsageError(Exception):
    """Bad input found after parsing (a file, a port, an environment variable): exit 2."""


def profile_argument(value: str) -> EmulatorProfile:
    """The `EmulatorProfile` that `--profile` names, or a `UsageError` saying what to give."""
    from .testing import load_profile

    try:
        return load_profile(value)
    except (ValueError, LookupError, OSError) as exc:
        raise UsageError(f"--profile: {exc}") from None


# -- argument types: each refuses bad input with a message that argparse turns into exit 2 --
def count_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum, {minimum}")
        return value

    parse.__name__ = "number"
    return parse


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 60:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..60 seconds")
    return value


def port_number(text: str) -> int:
    value = count_at_least(0)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(
            f"{value} is not a TCP port (0..65535; 0 picks a free one)"
        )
    return value


def base_url(text: str, *, source: str = "") -> str:
    """`text` if it is an http(s) URL with a host, else a message naming `source`."""
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL:
        url = httpx.URL()
    if url.scheme not in ("http", "https") or not url.host:
        named = f"{source} {text!r}" if source else repr(text)
        raise argparse.ArgumentTypeError(
            f"{named} is not a URL; give one like {DEFAULT_BASE_URL} "
            "or http://127.0.0.1:8000 for the emulator"
        )
    return text


# -- the parser ---------------------------------------------------------------------------------
class Parser(argparse.ArgumentParser):
    """Usage errors in one line that says what to do, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.HelpFormatter):
    """Keeps the exit-code epilog's line breaks; wraps descriptions as usual."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("exit codes:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def filter_modes() -> list[str]:
    from typing import get_args

    from .testing._profile import FilterMode

    return list(get_args(FilterMode))


def add_profile_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile", metavar="NAME|FILE",
        help="what the emulator imitates: documented (the API's docs, default), observed (what "
        "real workspaces were seen doing), or a profile file written by 'doctor --json'",
    )  # fmt: skip


# -- logging ------------------------------------------------------------------------------------
@contextlib.contextmanager
def verbose_log(enabled: bool, *, logger: str = "callsid_resolver") -> Iterator[None]:
    """At `-v`, the library's debug log (each request, its status and timing) on stderr."""
    if not enabled:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    with _debug_to(logging.getLogger(logger), handler):
        yield


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
def request_counter(stream: TextIO, *, enabled: bool = True) -> Iterator[None]:
    """Counts requests on one stderr line while a lookup runs, when stderr is a terminal."""
    if not enabled or not stream.isatty():
        yield
        return
    try:
        with _debug_to(logging.getLogger("callsid_resolver"), _ProgressLine(stream)):
            yield
    finally:
        stream.write("\r\033[K")


@contextlib.contextmanager
def _debug_to(logger: logging.Logger, handler: logging.Handler) -> Iterator[None]:
    """`logger`'s debug records go to `handler` for the block; its level is restored after."""
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
