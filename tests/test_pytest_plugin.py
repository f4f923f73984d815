"""The pytest plugin as a user meets it: a test file run by pytest with the plugin loaded.

Each run is a subprocess with the plugin loaded by its entry point, as in a user's project, and
with the user's own configuration (pytest-asyncio strict mode is its default; our own suite runs
in auto mode, which once hid that the async fixtures failed under strict mode).
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = """
import pytest
from callsid_resolver import ConversationNotFound

LIVE_CALL = "CAdeadbeef000000000000000000000001"


def test_resolves_the_recorded_live_call(call_sid_resolver, elevenlabs_emulator):
    res = call_sid_resolver.resolve(LIVE_CALL)
    assert res.conversation_id == "conv_fake0inbound0live00000000001"
    assert res.requests == 2
    assert elevenlabs_emulator.count("list") == 1


@pytest.mark.callsid_resolver(filter_mode="reject", synthetic=300, seed=3)
def test_marker_chooses_data_and_behaviour(call_sid_resolver, elevenlabs_emulator):
    res = call_sid_resolver.resolve(LIVE_CALL)
    assert res.source in ("live", "scan")
    assert len(elevenlabs_emulator.conversations()) == 305


def test_unknown_sid(call_sid_resolver):
    with pytest.raises(ConversationNotFound):
        call_sid_resolver.resolve("CA" + "0" * 32)


def test_a_real_server_for_other_processes(elevenlabs_server):
    import httpx
    r = httpx.get(elevenlabs_server.base_url + "/v1/convai/conversations",
                  headers={"xi-api-key": "k"})
    assert r.status_code == 200


@pytest.mark.callsid_resolver(colour="blue")
def test_bad_marker(elevenlabs_client):
    pass
"""

# One async test, in the form each way of running async tests asks for.
ASYNC_TEST = """
import pytest

LIVE_CALL = "CAdeadbeef000000000000000000000001"


{mark}
async def test_async_fixtures(
    async_call_sid_resolver, async_elevenlabs_client, elevenlabs_emulator
):
    res = await async_call_sid_resolver.resolve(LIVE_CALL)
    assert res.conversation_id == "conv_fake0inbound0live00000000001"
    assert res.source == "filter"
    assert elevenlabs_emulator.count("list") == 1
    again = await async_elevenlabs_client.get_conversation(res.conversation_id)
    assert again.status == "in-progress"
"""


def test_fixtures_and_marker_work_in_a_users_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-q")  # the entry point loads it
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*unknown callsid_resolver marker argument*colour*"])


@pytest.mark.parametrize(
    ("ini", "mark"),
    [
        pytest.param("", "@pytest.mark.asyncio", id="pytest-asyncio-strict-by-default"),
        pytest.param("asyncio_mode = strict", "@pytest.mark.asyncio", id="pytest-asyncio-strict"),
        pytest.param("asyncio_mode = auto", "", id="pytest-asyncio-auto"),
        pytest.param("", "@pytest.mark.anyio", id="anyio"),
    ],
)
def test_async_fixtures_work_in_every_async_mode(
    pytester: pytest.Pytester, ini: str, mark: str
) -> None:
    pytester.makepyfile(test_async=ASYNC_TEST.format(mark=mark))
    pytester.makeini(f"[pytest]\n{ini}\n")
    args = ["-p", "no:asyncio"] if "anyio" in mark else []
    result = pytester.runpytest_subprocess("-q", *args)
    result.assert_outcomes(passed=1)


def test_the_fixtures_never_point_at_the_real_api(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_network="""
import pytest
from callsid_resolver.live import MemoryMailbox, MonitorChannel, Sender

LIVE_CALL = "CAdeadbeef000000000000000000000001"


def test_in_process_clients(elevenlabs_client, async_elevenlabs_client, monkeypatch):
    for client in (elevenlabs_client, async_elevenlabs_client):
        assert "elevenlabs.io" not in client.base_url
        assert client.base_url.endswith(".invalid")  # RFC 6761: never resolves


def test_the_environment_cannot_redirect_them(pytester_env_base_url, elevenlabs_client):
    assert "elevenlabs.io" not in elevenlabs_client.base_url


@pytest.mark.asyncio
async def test_with_a_server_the_sockets_reach_it(
    elevenlabs_server, async_call_sid_resolver, async_elevenlabs_client, elevenlabs_emulator
):
    assert async_elevenlabs_client.base_url == elevenlabs_server.base_url
    async with MonitorChannel(async_elevenlabs_client, resolver=async_call_sid_resolver) as monitor:
        sender = Sender(monitor=monitor, mailbox=MemoryMailbox())
        receipt = await sender.send_contextual_update("VIP caller", call_sid=LIVE_CALL)
    assert receipt.channel == "monitor"
    assert elevenlabs_emulator.monitor_commands[receipt.conversation_id]
""",
        conftest="""
import pytest

@pytest.fixture
def pytester_env_base_url(monkeypatch):
    monkeypatch.setenv("ELEVENLABS_BASE_URL", "https://api.elevenlabs.io")
""",
    )
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=3)


def test_without_the_testing_extra_the_fixtures_say_what_to_install(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
import sys
sys.modules["starlette"] = None  # as if `[testing]` were not installed
"""
    )
    pytester.makepyfile(
        test_missing="""
def test_uses_the_emulator(call_sid_resolver):
    pass
"""
    )
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(errors=1)
    output = result.stdout.str()
    assert "pip install 'callsid-resolver[testing]' (missing: starlette)" in output
    assert "No module named" not in output


def test_the_profile_reaches_the_emulator(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncallsid_resolver_profile = observed\n")
    pytester.makepyfile(
        test_profile="""
import pytest


def test_suite_default(elevenlabs_emulator):
    assert elevenlabs_emulator.profile.name == "observed"


@pytest.mark.callsid_resolver(profile="documented")
def test_marker_overrides_it(elevenlabs_emulator):
    assert elevenlabs_emulator.profile.name == "documented"
"""
    )
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=2)


def test_the_plugin_imports_nothing_heavy_at_load(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_light="""
import sys

def test_light():
    assert "starlette" not in sys.modules
    assert "uvicorn" not in sys.modules
    assert "callsid_resolver.testing" not in sys.modules
"""
    )
    result = pytester.runpytest_subprocess("-q")  # the entry point loads it
    result.assert_outcomes(passed=1)


def test_the_emulator_has_a_repr_worth_reading_in_a_failure() -> None:
    from callsid_resolver.testing import Emulator

    emulator = Emulator(recording="default", api_key="sk_secret_key_000", profile="observed")
    emulator.filter_mode = "reject"
    text = repr(emulator)
    assert text == (
        "<Emulator 5 conversation(s), 1 live, profile 'observed', filter_mode='reject', "
        "one key, 0 request(s) served>"
    )
    assert "sk_secret" not in text
