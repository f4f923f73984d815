"""The command line as a user meets it: exit codes, one-line messages, never a traceback."""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from callsid_resolver import __version__
from callsid_resolver.cli import (
    EXIT_AUTH,
    EXIT_FAILURE,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    _parser,
    main,
)
from callsid_resolver.testing import Emulator, EmulatorServer, load_recording_file

ROOT = Path(__file__).parent.parent
LIVE_CALL = "CAdeadbeef000000000000000000000001"
UNKNOWN_CALL = "CA" + "0" * 32


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed program, as a shell runs it (a traceback would show on its stderr)."""
    import os

    environment = {k: v for k, v in os.environ.items() if not k.startswith("ELEVENLABS_")}
    return subprocess.run(
        [sys.executable, "-m", "callsid_resolver", *args],
        capture_output=True,
        text=True,
        env=environment | (env or {}),
        timeout=60,
        check=False,
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.fixture
def served() -> Iterator[EmulatorServer]:
    with EmulatorServer(Emulator(recording="default", api_key="sk_emulated_key")) as server:
        yield server


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["resolve", LIVE_CALL, "--base-url", "not-a-url"], "'not-a-url' is not a URL"),
        (["resolve", LIVE_CALL, "--max-scan", "-5"], "--max-scan: -5 is below the minimum"),
        (["emulator", "--recording", "nosuch"], "'nosuch' is neither a bundled recording"),
        (["record", "/nonexistent/dir/x.json"], "no directory /nonexistent/dir"),
        (["record", "x.json", "--limit", "0"], "--limit: 0 is below the minimum, 1"),
        (["emulator", "--port", "70000"], "70000 is not a TCP port"),
        (["emulator", "--latency", "soon"], "'soon' is not a number of seconds"),
        (["emulator", "--profile", "nosuch"], "--profile"),
        (["demo", "--profile", "nosuch"], "--profile"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_traceback(args: list[str], says: str) -> None:
    done = cli(*args, env={"ELEVENLABS_API_KEY": "sk_unused"})
    assert done.returncode == EXIT_USAGE, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr  # one line, no usage dump
    assert says in done.stderr
    assert done.stdout == ""


def test_a_busy_port_says_which_flag_to_change(busy_port: int) -> None:
    done = cli("emulator", "--port", str(busy_port))
    assert done.returncode == EXIT_USAGE
    assert done.stderr == (
        f"error: cannot listen on 127.0.0.1:{busy_port}: Address already in use; "
        "choose another --port (0 picks a free one)\n"
    )


@pytest.mark.parametrize("command", [["resolve", LIVE_CALL], ["record", "out.json"]])
def test_a_bad_environment_base_url_is_bad_input(command: list[str]) -> None:
    done = cli(*command, env={"ELEVENLABS_API_KEY": "k", "ELEVENLABS_BASE_URL": "x"})
    assert done.returncode == EXIT_USAGE
    assert done.stderr.startswith("error: $ELEVENLABS_BASE_URL 'x' is not a URL")


def test_version() -> None:
    done = cli("--version")
    assert (done.returncode, done.stdout) == (0, f"callsid-resolver {__version__}\n")


def test_every_argument_has_help_and_every_help_lists_the_exit_codes() -> None:
    parser = _parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands = dict(subparsers.choices)
    assert {"resolve", "demo", "emulator", "record"} <= set(commands)
    for name, command in [("callsid-resolver", parser), *commands.items()]:
        for action in command._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{name}: {action.dest} has no help"
        text = command.format_help()
        assert "\nexit codes:\n  0  " in text, f"{name}: no exit codes"
        for code in range(6) if name != "doctor" else ():  # the doctor's 1 is its own
            assert re.search(rf"^  {code}  \w", text, re.M), f"{name}: exit code {code} missing"


def test_missing_key_names_the_clis_own_way_to_pass_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    assert main(["resolve", "CA" + "a" * 32]) == EXIT_AUTH
    err = capsys.readouterr().err
    assert "export ELEVENLABS_API_KEY=" in err
    assert "api_key=" not in err  # the Python way means nothing in a shell


def test_bad_call_sid_exits_2_before_any_request(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", "sk_test")
    # An unroutable base URL: a request would fail with exit 4, not 2.
    code = main(["resolve", "CA-not a sid", "--base-url", "http://127.0.0.1:9"])
    assert code == EXIT_USAGE
    assert "invalid call SID" in capsys.readouterr().err


def test_resolve_json_prints_the_resolution_or_an_error_object(
    served: EmulatorServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", "sk_emulated_key")
    assert main(["resolve", LIVE_CALL, "--base-url", served.base_url, "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["conversation_id"] == "conv_fake0inbound0live00000000001"

    code = main(["resolve", UNKNOWN_CALL, "--base-url", served.base_url, "--json"])
    out = capsys.readouterr().out
    error = json.loads(out)
    assert code == EXIT_NOT_FOUND == error["exit_code"]
    assert error["error"] == "not_found"
    assert error["call_sid"] == UNKNOWN_CALL
    assert error["searched"]["requests"] >= 1

    monkeypatch.setenv("ELEVENLABS_API_KEY", "sk_wrong_key")
    code = main(["resolve", LIVE_CALL, "--base-url", served.base_url, "--json"])
    error = json.loads(capsys.readouterr().out)
    assert (code, error["error"], error["exit_code"]) == (EXIT_AUTH, "auth", EXIT_AUTH)
    assert "sk_wrong_key" not in json.dumps(error)

    monkeypatch.delenv("ELEVENLABS_API_KEY")
    code = main(["resolve", LIVE_CALL, "--base-url", served.base_url, "--json"])
    assert json.loads(capsys.readouterr().out)["error"] == "missing_key"


def test_an_unreachable_api_exits_4(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], busy_port: int
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", "k")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens there once closed
    assert main(["resolve", LIVE_CALL, "--base-url", f"http://127.0.0.1:{port}"]) == EXIT_FAILURE
    assert capsys.readouterr().err.startswith("error: ")


def test_python_dash_m_runs_the_same_program() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "callsid_resolver", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "resolve" in done.stdout
    assert "demo" in done.stdout


# -- the emulator command ----------------------------------------------------------------------
def serve(*args: str, lines: int) -> list[str]:
    """Start `callsid-resolver emulator ARGS`, read its first `lines` stderr lines, stop it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "callsid_resolver", "emulator", "--port", "0", *args],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    try:
        return [process.stderr.readline() for _ in range(lines)]
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stderr.close()


def test_the_emulator_says_what_it_serves() -> None:
    first, data, live, key, profile, try_url, try_key, try_resolve = serve(
        "--synthetic", "3", "--latency", "0.01", "--filter-mode", "reject", lines=8
    )
    assert re.fullmatch(
        r"ElevenLabs emulator on http://127\.0\.0\.1:\d+ \(Ctrl-C stops it\)\n", first
    )
    assert "recording default, 8 conversation(s) including 3 generated (seed 0)" in data
    assert f"live calls: {LIVE_CALL}" in live
    assert "key: any non-empty xi-api-key" in key
    assert "profile: documented; filter mode: reject; latency: 0.01 s" in profile
    port = first.rsplit(":", 1)[1].split()[0]
    assert try_url.endswith(f"export ELEVENLABS_BASE_URL=http://127.0.0.1:{port}\n")
    assert try_key.endswith("export ELEVENLABS_API_KEY=any-key\n")
    assert f"callsid-resolver resolve {LIVE_CALL}" in try_resolve


def test_the_emulator_serves_a_file_written_by_record(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    with EmulatorServer(Emulator(recording="live_calls")) as server:
        done = cli(
            "record", str(path), "--base-url", server.base_url, env={"ELEVENLABS_API_KEY": "k"}
        )
    assert done.returncode == 0, done.stderr
    _, data, live, key = serve("--recording", str(path), "--api-key", "secret", lines=4)
    assert f"recording {path}, 2 conversation(s)" in data
    assert LIVE_CALL in live
    assert "key: only the --api-key key" in key
    assert "secret" not in key


def test_a_file_that_is_not_a_recording_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "notes.json").write_text('{"hello": 1}')
    done = cli("emulator", "--recording", str(tmp_path / "notes.json"))
    assert done.returncode == EXIT_USAGE
    assert "give a file written by 'callsid-resolver record'" in done.stderr
    assert "Traceback" not in done.stderr


def test_listening_beyond_loopback_warns_that_any_key_is_accepted() -> None:
    lines = serve("--host", "0.0.0.0", "--recording", "none", lines=6)  # noqa: S104
    assert "ANY non-empty key is accepted" in lines[-1]
    assert "--api-key" in lines[-1]


def test_verbose_logs_each_request_without_a_signed_urls_token() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "callsid_resolver", "-v", "emulator", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    try:
        base_url = process.stderr.readline().split(" on ")[1].split()[0]
        while "callsid-resolver resolve" not in process.stderr.readline():
            pass
        import httpx

        headers = {"xi-api-key": "k"}
        httpx.get(f"{base_url}/v1/convai/conversations?page_size=2", headers=headers)
        httpx.get(
            f"{base_url}/v1/convai/conversations?conversation_signature=tok123", headers=headers
        )
        first, second = process.stderr.readline(), process.stderr.readline()
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stderr.close()
    assert re.search(r"GET /v1/convai/conversations\?page_size=2 -> 200 \(\d+\.\d ms\)", first)
    assert "tok123" not in second
    assert "conversation_signature=***" in second


# -- the record command ------------------------------------------------------------------------
def test_record_counts_what_it_recorded_and_refuses_to_overwrite(
    served: EmulatorServer, tmp_path: Path
) -> None:
    out = tmp_path / "rec.json"
    env = {"ELEVENLABS_API_KEY": "sk_emulated_key"}
    done = cli("record", str(out), "--limit", "3", "--base-url", served.base_url, env=env)
    assert done.returncode == 0, done.stderr
    assert f"recorded 3 conversation(s) into {out}" in done.stderr
    assert len(load_recording_file(out)) == 3

    before = out.read_text()
    again = cli("record", str(out), "--base-url", served.base_url, env=env)
    assert again.returncode == EXIT_USAGE
    assert "exists; pass --force to overwrite it" in again.stderr
    assert out.read_text() == before

    forced = cli("record", str(out), "--force", "--base-url", served.base_url, env=env)
    assert forced.returncode == 0, forced.stderr
    assert "recorded 5 conversation(s)" in forced.stderr


def test_record_with_a_rejected_key_exits_3(served: EmulatorServer, tmp_path: Path) -> None:
    out = tmp_path / "rec.json"
    done = cli("record", str(out), "--base-url", served.base_url, env={"ELEVENLABS_API_KEY": "no"})
    assert done.returncode == EXIT_AUTH
    assert "Traceback" not in done.stderr
    assert not out.exists()


def test_the_recordings_readme_uses_the_real_flags() -> None:
    readme = (ROOT / "src/callsid_resolver/testing/recordings/README.md").read_text()
    commands = re.findall(r"`callsid-resolver ([^`]+)`", readme)
    assert any(c.startswith("record ") for c in commands)
    assert any(c.startswith("emulator ") for c in commands)
    for command in commands:  # argparse exits 2 on a flag that does not exist
        _parser().parse_args(command.split())


def test_scrubbing_masks_whole_secrets_and_never_touches_ids() -> None:
    from callsid_resolver.testing import scrub_conversation

    conversation = load_recording_file(
        ROOT / "src/callsid_resolver/testing/recordings/default.json"
    )[0]
    conversation["analysis"] = {"transcript_summary": "the caller said fake twice: fake"}
    conversation["webhook"] = {"url": "https://example.com/hook?key=fake", "value": "fake"}
    out = scrub_conversation(conversation, secrets=("fake",))
    # Ids keep every character, however short the key is.
    assert out["conversation_id"] == conversation["conversation_id"]
    assert out["agent_id"] == conversation["agent_id"]
    assert "SCRUBBED0" not in json.dumps(out)
    assert out["analysis"]["transcript_summary"] == "the caller said SCRUBBED twice: SCRUBBED"
    assert out["webhook"] == {"url": "https://example.com/hook?key=SCRUBBED", "value": "SCRUBBED"}


def test_record_reports_progress_per_conversation(tmp_path: Path) -> None:
    from callsid_resolver.testing import record_conversations

    emulator = Emulator(recording="default")
    seen: list[tuple[int, int]] = []
    record_conversations(
        "https://api.elevenlabs.io",
        "fake",
        tmp_path / "rec.json",
        limit=4,
        transport=emulator.transport(),
        progress=lambda done, limit: seen.append((done, limit)),
    )
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    text = (tmp_path / "rec.json").read_text()
    assert "conv_fake0inbound" in text
    assert "SCRUBBED0" not in text
    with pytest.raises(ValueError, match="limit must be at least 1"):
        record_conversations("https://api.elevenlabs.io", "k", tmp_path / "x.json", limit=0)


def test_a_bug_is_one_line_and_v_adds_its_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import callsid_resolver.cli as cli_module

    def broken(args: argparse.Namespace) -> int:
        raise RuntimeError("something we did not foresee")

    monkeypatch.setattr(cli_module, "_resolve", broken)
    assert main(["resolve", LIVE_CALL]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert err == "error: unexpected RuntimeError: something we did not foresee (rerun with -v)\n"
    assert main(["-v", "resolve", LIVE_CALL]) == EXIT_FAILURE
    assert "Traceback (most recent call last)" in capsys.readouterr().err
