"""`callsid-resolver doctor` against the emulator: it must report each profile as it is, write a
profile that loads back into what it measured, only read, and never print a secret."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from callsid_resolver._doctor import (
    Diagnosis,
    DoctorOptions,
    consequences,
    diagnose,
    profile_document,
)
from callsid_resolver._doctor._probe import only_get
from callsid_resolver.cli import main
from callsid_resolver.testing import (
    DOCUMENTED,
    OBSERVED,
    Emulator,
    EmulatorProfile,
    EmulatorServer,
    load_profile,
    load_recording,
)

KEY = "sk_doctor_secret_0123456789abcdef0123456789abcdef"
LIVE_TWILIO = "conv_fake0inbound0live00000000001"
PROFILES = {"documented": DOCUMENTED, "observed": OBSERVED}
# What each profile must read back as, field by field: the doctor cannot measure
# `strict_client_events` without opening a conversation: it takes the observed value.
UNMEASURABLE = {"strict_client_events"}
PHONE = re.compile(r"\+\d{6,}")


def world(profile: str | EmulatorProfile, **kwargs: Any) -> Emulator:
    """The default recording plus the SIP-trunk one: live Twilio and SIP calls, finished
    Twilio (inbound, outbound) and SIP calls, and a web chat."""
    emulator = Emulator(recording="default", profile=profile, **kwargs)
    for conversation in load_recording("sip_trunk"):
        emulator.add_conversation(conversation)
    return emulator


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ELEVENLABS_API_KEY", KEY)
    monkeypatch.delenv("ELEVENLABS_BASE_URL", raising=False)
    return KEY


@pytest.fixture(params=sorted(PROFILES))
def profile_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def served(profile_name: str, key: str) -> Iterator[EmulatorServer]:
    with EmulatorServer(world(profile_name)) as server:
        yield server


def doctor(
    server: EmulatorServer, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    code = main(["doctor", "--base-url", server.base_url, *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def in_process(emulator: Emulator, **options: Any) -> Diagnosis:
    transport = emulator.transport()
    return diagnose(KEY, DoctorOptions(base_url="http://emulator", transport=transport, **options))


def results(diagnosis: Diagnosis) -> dict[str, str]:
    return {c.name: c.result for c in diagnosis.checks}


def test_the_doctor_reports_each_profile_and_its_json_loads_back(
    served: EmulatorServer, profile_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "profile.json"
    code, out = doctor(served, capsys, "--json", str(path))
    assert code == 0, out
    truth = PROFILES[profile_name]
    document = json.loads(path.read_text())
    settings = document["settings"]
    expected = {f: getattr(truth, f) for f in truth.settings() if f not in UNMEASURABLE}
    assert settings == expected
    loaded = load_profile(path)
    assert dataclasses.replace(loaded, name=truth.name) == dataclasses.replace(
        OBSERVED, name=truth.name, **expected
    )
    if profile_name == "observed":
        assert dataclasses.replace(loaded, name="observed") == OBSERVED
    # The table says it in words.
    live = "hides its call id" if truth.live_call_hides_ids else "shows its call id"
    assert re.search(rf"^live call +{live}", out, re.MULTILINE)
    assert re.search(rf"^errors +{truth.error_body}", out, re.MULTILINE)
    assert re.search(r"^filter +support", out, re.MULTILINE)
    assert re.search(rf"^SIP ids +{truth.sip_call_ids}", out, re.MULTILINE)
    if truth.live_call_hides_ids:
        assert "tools should pass system__conversation_id" in out
    where = "request-id" if truth.request_id_header else "x-trace-id + body"
    assert f"id in {where}" in out


def test_the_doctor_only_reads_and_sends_nothing_into_the_call(
    served: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator = served.emulator
    code, out = doctor(served, capsys, "--monitor", LIVE_TWILIO, "--json", str(tmp_path / "p"))
    assert code == 0, out
    assert re.search(r"^monitor +accepted", out, re.MULTILINE)
    assert {r.method for r in emulator.requests} == {"GET"}
    counts = emulator.counts
    assert counts["monitor_ws"] == 1
    assert "outbound_call" not in counts
    assert "agent_ws" not in counts
    assert emulator.monitor_commands == {LIVE_TWILIO: []}
    assert emulator.sessions == {}
    assert emulator.conversation(LIVE_TWILIO)["status"] == "in-progress"  # type: ignore[index]
    # About a dozen requests, not a scan of the history.
    assert emulator.total_requests <= 20


def test_the_output_holds_no_key_token_phone_number_or_whole_call_id(
    served: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "profile.json"
    _, out = doctor(served, capsys, "--monitor", LIVE_TWILIO, "--json", str(path))
    written = out + path.read_text()
    assert served.emulator.count("signed_url") == 1  # a URL was issued, and not shown
    assert KEY not in written
    assert "conversation_signature" not in written
    assert "wss://" not in written
    assert PHONE.search(written) is None
    for conversation in served.emulator.conversations():
        phone = conversation["metadata"].get("phone_call") or {}
        for call_id in (phone.get("call_sid"), phone.get("call_id")):
            assert not call_id or call_id not in written
    assert "paste it" in out  # the report says it may be shared


@pytest.mark.parametrize("mode", ["support", "ignore", "reject", "empty"])
def test_each_filter_behaviour_is_told_apart(mode: str) -> None:
    emulator = world(dataclasses.replace(DOCUMENTED, filter_mode=mode))  # type: ignore[arg-type]
    diagnosis = in_process(emulator)
    assert diagnosis.settings["filter_mode"] == mode
    assert results(diagnosis)["filter"] == mode
    if mode != "support":
        assert "filter_sees_live_calls" not in diagnosis.settings  # unproven, so left out
        assert any("scan" in line for line in consequences(diagnosis))


def test_a_workspace_with_one_call_still_tells_support_from_ignore() -> None:
    call = next(c for c in load_recording("default") if c["status"] == "done")
    for mode in ("support", "ignore"):
        emulator = Emulator([call], profile=dataclasses.replace(DOCUMENTED, filter_mode=mode))
        assert in_process(emulator).settings["filter_mode"] == mode


def test_without_a_live_call_the_live_checks_say_unknown_and_measure_nothing() -> None:
    finished = [c for c in load_recording("default") if c["status"] == "done"]
    diagnosis = in_process(Emulator(finished, profile="observed"))
    assert results(diagnosis)["live call"] == "unknown"
    assert "live_call_hides_ids" not in diagnosis.settings
    assert "filter_sees_live_calls" not in diagnosis.settings
    assert any("run the doctor again during a call" in line for line in consequences(diagnosis))
    assert not diagnosis.problem


def test_a_refused_key_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", "sk_wrong_key_not_the_workspace_one")
    with EmulatorServer(world("observed", api_key=KEY)) as server:
        code, out = doctor(server, capsys)
        assert {r.method for r in server.emulator.requests} == {"GET"}
    assert code == 1
    assert re.search(r"^key +refused \(X\) +GET /v1/convai/conversations: 401", out, re.MULTILINE)
    assert "nothing works until this is fixed: key" in out
    assert "sk_wrong_key" not in out
    assert KEY not in out


def test_a_key_without_the_read_permission_exits_1_naming_it(
    key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator = world("observed")
    # An API that echoes the key back in a message must not get it into the report.
    message = f"The API key {KEY} is missing the permission convai_read to execute this."
    body = {"detail": {"type": "authorization_error", "code": "missing_permissions",
                       "message": message, "request_id": "req_1", "param": None}}  # fmt: skip
    emulator.inject(403, endpoint="list", body=body, times=10)
    with EmulatorServer(emulator) as server:
        code, out = doctor(server, capsys)
    assert code == 1
    assert re.search(r"^key +accepted, lacks a permission \(X\) +403", out, re.MULTILINE)
    assert "missing_permissions" in out
    assert "convai_read" in out
    assert re.search(r"^list +refused \(X\)", out, re.MULTILINE)
    assert KEY not in out
    assert "The API key *** is missing" in out


def test_no_key_is_bad_usage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    assert main(["doctor", "--base-url", "http://127.0.0.1:9"]) == 2
    assert "ELEVENLABS_API_KEY" in capsys.readouterr().err


def test_an_unwritable_json_file_is_bad_usage(
    served: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = doctor(served, capsys, "--json", str(tmp_path / "missing-dir" / "p.json"))
    assert code == 2
    assert "cannot write" in out


def test_a_refused_monitor_is_named_and_is_not_a_blocking_problem(
    key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator = world("documented")
    emulator.monitor_refusal = "plan"
    with EmulatorServer(emulator) as server:
        code, out = doctor(server, capsys, "--monitor", LIVE_TWILIO)
    assert code == 0
    assert re.search(r"^monitor +refused \(!\) +closed with code 1008 \(plan\)", out, re.MULTILINE)
    assert "Sender uses the mailbox" in out
    assert emulator.monitor_commands.get(LIVE_TWILIO, []) == []


def test_a_signed_url_refusal_is_reported(key: str, capsys: pytest.CaptureFixture[str]) -> None:
    emulator = world("observed")
    emulator.inject(404, endpoint="signed_url")
    with EmulatorServer(emulator) as server:
        code, out = doctor(server, capsys, "--agent-id", "agent_fake0missing")
    assert code == 0
    assert re.search(r"^signed URL +refused \(!\) +agent agent_fake0missing: 404", out, re.M)


def test_the_doctors_client_refuses_anything_but_get() -> None:
    only_get(httpx.Request("GET", "http://emulator/v1/convai/conversations"))
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        with pytest.raises(RuntimeError, match="only reads"):
            only_get(httpx.Request(method, "http://emulator/v1/convai/twilio/outbound-call"))


@pytest.mark.parametrize("hides", [False, True])
@pytest.mark.parametrize("sees", [False, True])
def test_the_live_filter_is_measured_whether_or_not_the_get_hides_the_sid(
    hides: bool, sees: bool
) -> None:
    profile = dataclasses.replace(
        DOCUMENTED, live_call_hides_ids=hides, filter_sees_live_calls=sees
    )
    diagnosis = in_process(world(profile))
    assert diagnosis.settings["live_call_hides_ids"] is hides
    assert diagnosis.settings["filter_sees_live_calls"] is sees
    assert results(diagnosis)["live filter"] == ("sees" if sees else "misses") + " live calls"


def test_a_list_endpoint_that_keeps_failing_is_a_problem(
    key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator = world("documented")
    emulator.inject(503, endpoint="list", times=3)  # every attempt the retry policy allows
    with EmulatorServer(emulator) as server:
        code, out = doctor(server, capsys)
    assert code == 1
    # Three attempts, then the errors check's request without a key.
    assert [r.status for r in emulator.requests.of("list")] == [503, 503, 503, 401]
    assert re.search(r"^list +failed \(X\) +503 from GET /v1/convai/conversations", out, re.M)


def test_max_reads_below_one_is_bad_usage(key: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--base-url", "http://127.0.0.1:9", "--max-reads", "0"]) == 2
    assert "--max-reads" in capsys.readouterr().err


def test_the_example_run_in_the_docs_is_what_the_doctor_prints(
    key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    page = (Path(__file__).parent.parent / "docs" / "doctor.md").read_text()
    example = page.split("```text\n", 1)[1].split("```", 1)[0]
    with EmulatorServer(world("observed")) as server:
        code = main(["doctor", "--base-url", server.base_url, "--monitor", LIVE_TWILIO])
        requests = server.emulator.total_requests
    assert code == 0
    assert capsys.readouterr().out.startswith(example)
    stated = re.search(r"(\d+)\s+requests in all", page)
    assert stated is not None
    assert requests == int(stated.group(1))


def test_a_filtered_list_that_fails_is_that_checks_failure_only() -> None:
    emulator = world("documented")
    inner = emulator.transport()

    def handler(request: httpx.Request) -> httpx.Response:
        if "dynamic_variable_filter" in request.url.params:
            return httpx.Response(418, json={"detail": {"status": "teapot", "message": "no"}})
        return inner.handle_request(request)

    options = DoctorOptions(base_url="http://emulator", transport=httpx.MockTransport(handler))
    diagnosis = diagnose(KEY, options)
    assert results(diagnosis)["filter"] == "failed"
    assert "filter_mode" not in diagnosis.settings
    assert "filter_sees_live_calls" not in diagnosis.settings
    assert results(diagnosis)["errors"] == "legacy"  # the checks after it still ran
    assert results(diagnosis)["signed URL"] == "ok"
    assert not diagnosis.problem


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_an_emulator_playing_the_doctors_file_is_measured_the_same(
    profile: str, tmp_path: Path
) -> None:
    first = in_process(world(profile))
    path = tmp_path / "measured.json"
    path.write_text(json.dumps(profile_document(first, "measured")))
    again = in_process(world(str(path)))
    assert again.settings == first.settings
    assert [(c.name, c.result) for c in again.checks] == [(c.name, c.result) for c in first.checks]
