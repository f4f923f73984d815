"""`callsid-resolver resolve` against a served emulator under both profiles."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from callsid_resolver.cli import EXIT_AUTH, EXIT_NOT_FOUND, main
from callsid_resolver.testing import Emulator, EmulatorServer

LIVE_SID, LIVE_ID = "CAdeadbeef000000000000000000000001", "conv_fake0inbound0live00000000001"
DONE_SID, DONE_ID = "CAdeadbeef00000000000000000000beef", "conv_fake0inbound0done00000000002"
SIP_UUID, SIP_ID = "7f1e9a52-3c1d-4c8e-9f00-5a1b2c3d4e5f", "conv_fake0sip0trunk0done00000006"


@pytest.fixture(params=["documented", "observed"])
def server(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EmulatorServer]:
    emulator = Emulator(recording="default", profile=request.param, api_key="sk_cli")
    with EmulatorServer(emulator) as served:
        monkeypatch.setenv("ELEVENLABS_API_KEY", "sk_cli")
        monkeypatch.setenv("ELEVENLABS_BASE_URL", served.base_url)
        yield served


def resolve(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["resolve", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_finished_call_resolves_under_both(
    server: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = resolve(capsys, DONE_SID, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["conversation_id"], result["matched_by"]) == (DONE_ID, "phone_call.call_sid")
    assert result["requests"] == 2


def test_a_live_call_resolves_or_says_why_not(
    server: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = resolve(capsys, LIVE_SID)
    if server.emulator.profile.live_call_hides_ids:
        assert code == EXIT_NOT_FOUND
        assert "The call is live" in err
        assert "remember()" in err
        server.emulator.end_session(LIVE_ID)
        code, out, err = resolve(capsys, LIVE_SID)  # no negative entry hides it once it ended
    assert code == 0, err
    assert out.strip() == LIVE_ID


def test_a_sip_call_resolves_by_each_of_its_ids(
    server: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = server.emulator.shown(SIP_ID)
    assert shown is not None
    for call_id in {SIP_UUID, shown["metadata"]["phone_call"]["call_id"]}:
        code, out, err = resolve(capsys, call_id)
        assert code == 0, err
        assert out.strip() == SIP_ID


def test_a_refused_key_shows_the_code_and_the_request_id(
    server: EmulatorServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", "sk_wrong")
    code, _, err = resolve(capsys, DONE_SID)
    assert code == EXIT_AUTH
    assert "[invalid_api_key]" in err
    assert f"request id {server.emulator.requests[-1].request_id}" in err
    assert "sk_wrong" not in err
