"""The benchmark runner (`python -m benchmarks`): a failing area or scenario is recorded and the
run goes on, the report is on disk after every section, `--only` runs only what it names.

Fast: fake area modules stand in for `benchmarks/<area>.py`; no emulator process is started.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import types
from pathlib import Path
from typing import Any

import httpx
import pytest
from benchmarks import cold, run
from benchmarks.goals import Goal, goal_from_dict, run_area
from benchmarks.loopback import LoopbackServer, Recorder
from benchmarks.report import docs_page, markdown, svg_plot
from benchmarks.scenarios import Bench, Result, estimated_walk, walk_requests

from callsid_resolver import AsyncCallSidResolver, AsyncElevenLabsClient, MemoryCache
from callsid_resolver.testing import Emulator, newest_first, synthetic_conversations

IN_PROCESS = ["--area-timeout", "0"]  # the fake areas live in this process's sys.modules
SLOW_AREA = """
import os, subprocess, sys, time
from benchmarks.goals import Goal

def measure(quick):
    if quick:
        return [Goal("apart", "in a process of its own", float(os.getpid()), 1.0, "pid", 1.0)]
    emulator = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(os.environ["PID_FILE"], "w") as f:
        f.write(str(emulator.pid))
    time.sleep(120)
"""


def fake_area(monkeypatch: pytest.MonkeyPatch, name: str, measure: Any) -> None:
    module = types.ModuleType(f"benchmarks.{name}")
    if measure is not None:
        module.measure = measure  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)


def saved(out: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((out / "latest.json").read_text())
    return report


@pytest.fixture
def areas(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Three fake areas: one meets its goal, one raises, one falls short; `calls` logs them."""
    calls: list[tuple[str, bool]] = []

    def fast(quick: bool) -> list[Goal]:
        calls.append(("fast", quick))
        return [Goal("fast", "lookups >= 3x dict", 300.0, 100.0, "/s", 3.0, baseline_name="dict")]

    def broken(quick: bool) -> list[Goal]:
        calls.append(("broken", quick))
        raise TimeoutError("PoolTimeout after 11 minutes")

    def slow(quick: bool) -> list[Goal]:
        calls.append(("slow", quick))
        return [Goal("slow", "bytes per mapping", 800.0, 400.0, "B", 1.0, higher_is_better=False)]

    for name, measure in (("fast", fast), ("broken", broken), ("slow", slow)):
        fake_area(monkeypatch, name, measure)
    monkeypatch.setattr(run, "AREAS", ("fast", "broken", "slow"))
    return calls


def test_a_failing_area_is_recorded_and_the_run_goes_on(
    areas: list[tuple[str, bool]], tmp_path: Path
) -> None:
    only = ["--only", "fast", "--only", "broken", "--only", "slow"]
    code = run.main([*IN_PROCESS, *only, "--quick", "--out", str(tmp_path)])

    assert code == 1  # a failed measurement fails the run, after everything else ran
    assert areas == [("fast", True), ("broken", True), ("slow", True)]
    report = saved(tmp_path)
    verdicts = [(g["area"], g["verdict"], g["ratio"]) for g in report["goals"]]
    assert verdicts == [("fast", "met", 3.0), ("broken", "failed", 0.0), ("slow", "short", 0.5)]
    assert "PoolTimeout after 11 minutes" in report["goals"][1]["failed"]
    assert report["finished"] is True
    assert set(report["timings"]) == {"area fast", "area broken", "area slow"}
    page = (tmp_path / "latest.md").read_text()
    goals = page.index("## Goals (issue #16)")
    assert goals < page.index("| fast | lookups >= 3x dict | 300 /s | 100 /s (dict) | 3.00x")
    assert "| broken | (the area's benchmark) | TimeoutError" in page
    assert "| slow | bytes per mapping | 800 B | 400 B | 0.50x | >= 1x | short |" in page


def test_a_short_goal_is_a_finding_not_a_failure(
    areas: list[tuple[str, bool]], tmp_path: Path
) -> None:
    assert run.main([*IN_PROCESS, "--only", "fast", "--only", "slow", "--out", str(tmp_path)]) == 0
    assert [g["verdict"] for g in saved(tmp_path)["goals"]] == ["met", "short"]
    assert areas == [("fast", False), ("slow", False)]  # the full run: quick=False


def test_only_runs_what_it_names(areas: list[tuple[str, bool]], tmp_path: Path) -> None:
    assert run.main([*IN_PROCESS, "--only", "slow", "--quick", "--out", str(tmp_path)]) == 0

    assert areas == [("slow", True)]
    report = saved(tmp_path)
    assert [g["area"] for g in report["goals"]] == ["slow"]
    # None of the sections ran: no emulator, no Redis, no sending.
    assert report["runs"] == []
    assert "observed" not in report
    assert "sending" not in report
    assert list(report["timings"]) == ["area slow"]


def test_only_an_area_without_a_module_is_a_failure(
    areas: list[tuple[str, bool]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(run, "AREAS", ("fast", "nowhere"))
    assert run.main([*IN_PROCESS, "--only", "nowhere", "--out", str(tmp_path)]) == 1
    assert "no benchmarks/nowhere.py" in saved(tmp_path)["failures"][0]["error"]


def test_an_area_without_a_module_yet_is_listed_as_absent(tmp_path: Path) -> None:
    progress = run.Progress(tmp_path, run.new_report(run.parse_args(["--quick"])))
    run.run_goals(progress, "nowhere", run.parse_args(["--quick"]))
    assert progress.report["absent_areas"] == ["nowhere"]
    assert progress.report["goals"] == []
    assert "Not measured (no module yet): nowhere." in markdown(progress.report)


def test_an_area_without_measure_is_a_failed_goal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_area(monkeypatch, "unfinished", None)
    monkeypatch.setattr(run, "AREAS", ("unfinished",))
    assert run.main([*IN_PROCESS, "--only", "unfinished", "--out", str(tmp_path)]) == 1
    (goal,) = saved(tmp_path)["goals"]
    assert goal["verdict"] == "failed"
    assert "AttributeError" in goal["failed"]


def test_a_killed_run_leaves_what_it_measured(
    areas: list[tuple[str, bool]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen_on_disk: list[list[str]] = []

    def killed(quick: bool) -> list[Goal]:
        # What a reader of the results finds while this area runs: the previous one is there.
        seen_on_disk.append([g["area"] for g in saved(tmp_path)["goals"]])
        raise KeyboardInterrupt  # not an Exception: nothing may swallow it

    fake_area(monkeypatch, "killed", killed)
    monkeypatch.setattr(run, "AREAS", ("fast", "killed", "slow"))
    with pytest.raises(KeyboardInterrupt):
        run.main(
            [
                *IN_PROCESS,
                "--only",
                "fast",
                "--only",
                "killed",
                "--only",
                "slow",
                "--out",
                str(tmp_path),
            ]
        )

    assert seen_on_disk == [["fast"]]
    report = saved(tmp_path)
    assert report["finished"] is False
    assert [g["area"] for g in report["goals"]] == ["fast"]
    page = (tmp_path / "latest.md").read_text()
    assert "This run did not finish" in page
    assert "| fast | lookups >= 3x dict |" in page
    assert not list(tmp_path.glob("*.partial"))


def test_render_rebuilds_the_pages_and_the_docs_from_a_saved_report(
    areas: list[tuple[str, bool]], tmp_path: Path
) -> None:
    run.main([*IN_PROCESS, "--only", "fast", "--only", "slow", "--out", str(tmp_path / "a")])
    docs = tmp_path / "docs" / "benchmarks.md"
    saved_json = tmp_path / "a" / "latest.json"
    assert (
        run.main(
            [
                *IN_PROCESS,
                "--render",
                str(saved_json),
                "--out",
                str(tmp_path / "b"),
                "--docs",
                str(docs),
            ]
        )
        == 0
    )

    assert (tmp_path / "b" / "latest.md").read_text() == (tmp_path / "a" / "latest.md").read_text()
    page = docs.read_text()
    assert page.startswith("# Benchmarks\n")
    # The goals lead the run's report, before any other table.
    assert (
        page.index("## Goals (issue #16)") < page.index("| area | goal |") < page.index("## Time")
    )
    assert next(goal_from_dict(g) for g in saved(tmp_path / "a")["goals"]).ratio == 3.0


class CountingEmulator:
    """The two members of `RemoteEmulator` that `Bench.measure` uses."""

    def __init__(self) -> None:
        self.total_requests = 0

    def reset_counts(self) -> None:
        self.total_requests = 0


def test_a_scenario_that_raises_is_recorded_with_the_runs_it_finished() -> None:
    emulator = CountingEmulator()
    kept: list[Result] = []
    bench = Bench(emulator, "http://127.0.0.1:1", on_result=kept.append)  # type: ignore[arg-type]
    runs = iter([2, 3, None])

    def scenario() -> None:
        n = next(runs)
        emulator.total_requests = 5 if n is None else n
        if n is None:
            raise httpx.PoolTimeout("no connection available")

    failed = bench.measure("flaky", 1, 5, scenario)
    after = bench.measure("next", 1, 2, lambda: None)

    assert kept == [failed, after]
    assert len(failed.seconds) == 2
    assert failed.requests == 5
    assert failed.error is not None
    assert "PoolTimeout" in failed.error
    assert failed.extra["requests_varied"] is True
    assert after.error is None
    assert len(after.seconds) == 2
    row = failed.as_dict()
    assert row["median"] is not None
    assert row["error"] == failed.error
    assert Result("never ran", 1, 0, error="boom").as_dict()["median"] is None


def test_the_sdk_walk_costs_what_the_estimate_of_a_deeper_walk_assumes() -> None:
    """The deep SDK walk is estimated from `walk_requests`: check it against the official SDK
    walking the emulator, for targets on the first page, across pages and at a page's edge."""
    from elevenlabs import ElevenLabs

    history = synthetic_conversations(400, seed=7)
    emulator = Emulator(history)
    ordered = newest_first(history)
    phones = [i for i, c in enumerate(ordered) if c["metadata"].get("phone_call")]
    for index in (phones[0], 99 if 99 in phones else phones[60], phones[-1]):
        sid = ordered[index]["metadata"]["phone_call"]["call_sid"]
        emulator.reset_counts()
        with httpx.Client(transport=emulator.transport()) as http:
            sdk = ElevenLabs(api_key="bench-key", base_url="http://emulator", httpx_client=http)
            Bench._walk(sdk, sid)
        assert emulator.total_requests == walk_requests(index + 1), index


def test_a_deeper_walk_is_estimated_per_request() -> None:
    walked = Result("baseline: SDK list+get walk", 250, 253, [14.0, 13.9, 14.1])
    deep = estimated_walk(walked, 2_000, 2_001)
    assert deep.requests == 2_001 + 21
    assert deep.median == pytest.approx(14.0 / 253 * 2_022)
    assert deep.extra["estimated_from_depth"] == 250


def test_a_partial_report_renders() -> None:
    report = run.new_report(run.parse_args([]))
    report["runs"].append({"size": 1_000, "results": [], "warm_lookups_per_second": None})
    assert svg_plot(report) == ""
    page = markdown(report)
    assert "did not finish" in page
    assert "## 1,000 conversations" in page
    assert docs_page(report).count("# Benchmarks\n") == 1


def test_run_area_turns_an_exception_into_a_failed_goal_with_a_bounded_error() -> None:
    def boom(quick: bool) -> list[Goal]:
        raise ValueError("x" * 500)

    (goal,) = run_area("cold", boom, True)
    assert goal.verdict == "failed"
    assert goal.ratio == 0.0
    assert len(goal.failed or "") <= 300


@pytest.fixture
def apart(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A real module (`measure` must run in another process), found via PYTHONPATH."""
    (tmp_path / "slow_area.py").write_text(SLOW_AREA)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("PID_FILE", str(tmp_path / "pid"))
    monkeypatch.setattr(run, "AREAS", ("apart",))
    monkeypatch.setattr(run, "area_module", lambda area: "slow_area")
    monkeypatch.syspath_prepend(str(tmp_path))  # for find_spec in this process
    return tmp_path


def test_an_area_runs_in_a_process_of_its_own(apart: Path) -> None:
    assert run.main(["--only", "apart", "--quick", "--out", str(apart / "out")]) == 0
    (goal,) = saved(apart / "out")["goals"]
    assert goal["verdict"] == "met"
    assert goal["measured"] not in (0.0, float(os.getpid()))


def test_an_area_past_its_time_ends_with_its_processes_and_the_run_goes_on(apart: Path) -> None:
    started = time.monotonic()
    code = run.main(["--only", "apart", "--area-timeout", "3", "--out", str(apart / "out")])
    assert time.monotonic() - started < 60
    assert code == 1
    (goal,) = saved(apart / "out")["goals"]
    assert goal["verdict"] == "failed"
    assert "ran past 3 s" in goal["failed"]
    emulator = int((apart / "pid").read_text())
    for _ in range(50):  # the emulator the area started went with it
        if not Path(f"/proc/{emulator}").exists() or "Z" in _state(emulator):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"process {emulator} outlived its area")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"


def test_the_quickest_areas_run_first_and_the_goals_show_in_the_issues_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ran: list[str] = []

    def area(name: str) -> Any:
        def measure(quick: bool) -> list[Goal]:
            ran.append(name)
            return [Goal(name, "a goal", 2.0, 1.0, "x", 1.0)]

        return measure

    for name in ("cold", "fleet"):
        fake_area(monkeypatch, name, area(name))
    monkeypatch.setattr(run, "AREAS", ("cold", "fleet"))
    only = ["--only", "cold", "--only", "fleet"]
    assert run.main([*IN_PROCESS, *only, "--quick", "--out", str(tmp_path)]) == 0
    assert ran == ["fleet", "cold"]
    assert [g["area"] for g in saved(tmp_path)["goals"]] == ["cold", "fleet"]


def _recorded(lookups: int) -> tuple[dict[str, tuple[int, dict[str, str], str]], dict[str, str]]:
    """Replies of the in-process emulator to `lookups` cold lookups, through the recorder."""
    history = newest_first(synthetic_conversations(lookups * 3, seed=16))
    expected = {
        c["metadata"]["phone_call"]["call_sid"]: c["conversation_id"]
        for c in history
        if (c["metadata"].get("phone_call") or {}).get("call_sid")
    }
    sids = list(expected)[:lookups]
    recorder = Recorder(Emulator(history).transport())

    async def resolve_all() -> None:
        async with AsyncElevenLabsClient("bench-key", transport=recorder) as client:
            resolver = AsyncCallSidResolver(client, cache=MemoryCache())
            for sid in sids:
                assert (await resolver.resolve(sid)).conversation_id == expected[sid]

    asyncio.run(resolve_all())
    return recorder.replies, {s: expected[s] for s in sids}


def test_the_replay_server_answers_the_recorded_bytes_after_the_latency() -> None:
    replies, expected = _recorded(3)
    assert len(replies) == 2 * len(expected)  # one filtered list and one GET per lookup
    get = next(t for t in replies if "?" not in t)
    listing = next(t for t in replies if "?" in t)
    with LoopbackServer(replies, latency=0.05) as server, httpx.Client() as http:
        started = time.perf_counter()
        response = http.get(server.base_url + get)
        assert time.perf_counter() - started >= 0.05
        status, headers, body = replies[get]
        assert (response.status_code, response.text) == (status, body)
        assert response.headers["request-id"] == headers["request-id"]
        # Backends escape a query differently (aiohttp leaves `:` alone, httpx may not).
        escaped = http.get(server.base_url + listing.replace(":", "%3A"))
        assert escaped.text == replies[listing][2]
        assert http.get(server.base_url + "/v1/convai/conversations/nope").status_code == 404
        assert server.take_count() == 3
        assert server.take_count() == 0  # the count path is not counted, and reading resets


def test_the_cold_burst_through_the_replay_server_resolves_every_sid() -> None:
    replies, expected = _recorded(20)
    sids = list(expected)
    with LoopbackServer(replies, latency=0.0) as server:
        for backend in ("httpx", "aiohttp"):
            run = asyncio.run(cold._burst(server.base_url, backend, 5, sids, expected))
            assert run["failed"] == 0, run["first_error"]
            assert server.take_count() == 2 * len(sids)


def test_without_wrk_the_ceiling_is_measured_by_a_bare_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replies, _ = _recorded(1)
    get = next(t for t in replies if "?" not in t)
    monkeypatch.setattr(cold.shutil, "which", lambda name: None)
    with LoopbackServer(replies, latency=0.0) as server:
        server.take_count()
        rate, tool = cold.server_ceiling(server.base_url, get, 4)
        assert tool == "aiohttp"
        assert rate > 0
        assert server.take_count() == 4 * 20
