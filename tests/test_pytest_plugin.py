"""The pytest plugin as a user meets it: a test file run by pytest with the plugin loaded."""

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


async def test_async_fixtures(async_call_sid_resolver):
    res = await async_call_sid_resolver.resolve(LIVE_CALL)
    assert res.source == "filter"


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


def test_fixtures_and_marker_work_in_a_users_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    result = pytester.runpytest_subprocess("-q")  # the entry point loads it
    result.assert_outcomes(passed=5, errors=1)
    result.stdout.fnmatch_lines(["*unknown callsid_resolver marker argument*colour*"])


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
