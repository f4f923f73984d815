from __future__ import annotations

import subprocess
import sys

import pytest

from callsid_resolver.cli import EXIT_AUTH, EXIT_USAGE, main


def test_missing_key_exits_3_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    assert main(["resolve", "CA" + "a" * 32]) == EXIT_AUTH
    assert "ELEVENLABS_API_KEY" in capsys.readouterr().err


def test_bad_call_sid_exits_2_before_any_request(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", "sk_test")
    # An unroutable base URL: a request would fail with exit 4, not 2.
    code = main(["resolve", "CA-not a sid", "--base-url", "http://127.0.0.1:9"])
    assert code == EXIT_USAGE
    assert "invalid call SID" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_python_dash_m_runs_the_same_program() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "callsid_resolver", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "resolve" in done.stdout
    assert "demo" in done.stdout
