"""The docs site as a new user reads it: how to install before the first release, a home page
that shows the library, tables and code that fit a 1280 px window, a CLI page for every command,
and a wheel carrying the examples the docs point at."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from callsid_resolver.cli import _parser
from callsid_resolver.testing import Emulator, EmulatorServer

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)
# Material's content column at 1280 px shows about 82 characters of code before it clips.
CODE_COLUMNS = 80
NARROW_PAGES = ["index.md", "quickstart.md", "cli.md", "testing.md", "errors.md"]
INSTALL_PAGES = ["index.md", "quickstart.md", "testing.md"]


def page(name: str) -> str:
    return (DOCS / name).read_text()


@pytest.mark.parametrize("name", INSTALL_PAGES)
def test_install_works_before_the_first_release(name: str) -> None:
    text = page(name)
    assert re.search(r'pip install -e "[^"]*\[testing\]"', text), "no install from a checkout"
    assert ".whl" in text or "index.md" in text, "no word on a built wheel"
    # A PyPI install is only ever offered as what to do once it is published.
    for paragraph in text.split("\n\n"):
        if re.search(r"pip install [\"']callsid-resolver\[", paragraph):
            assert "PyPI" in paragraph, paragraph


def test_the_home_page_installs_and_shows_code(monkeypatch: pytest.MonkeyPatch) -> None:
    text = page("index.md")
    blocks = dict((lang, code) for lang, code in FENCE.findall(text))
    assert "pip install" in blocks["console"]
    # The sample runs as written against the emulator, as the page says to.
    with EmulatorServer(Emulator(recording="default")) as server:
        monkeypatch.setenv("ELEVENLABS_BASE_URL", server.base_url)
        monkeypatch.setenv("ELEVENLABS_API_KEY", "any-key")
        scope: dict[str, object] = {}
        try:
            exec(compile(blocks["python"], "index.md", "exec"), scope)  # noqa: S102
        finally:
            if "client" in scope:
                scope["client"].close()  # type: ignore[attr-defined]
    assert scope["res"].conversation_id == "conv_fake0inbound0live00000000001"  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["channels.md", "cli.md"])
def test_no_table_is_too_wide_to_read(name: str) -> None:
    for line in page(name).splitlines():
        if line.startswith("|"):
            # Material shows `\|` inside code as a backslash and a bar.
            assert "\\|" not in line, line
            assert line.count("|") - 1 <= 3, f"more than 3 columns: {line[:60]}"


@pytest.mark.parametrize("name", NARROW_PAGES)
def test_no_code_line_is_clipped(name: str) -> None:
    for _, code in FENCE.findall(page(name)):
        for line in code.splitlines():
            assert len(line) <= CODE_COLUMNS, f"{name}: {len(line)} columns: {line}"


def test_the_cli_page_documents_every_command_and_flag() -> None:
    text = page("cli.md")
    parser = _parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, command in sub.choices.items():
        assert re.search(rf"^## {name}$", text, re.M), f"no section for {name}"
        section = text.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        assert f"$ callsid-resolver {name}" in section or f"callsid-resolver -v {name}" in section
        for action in command._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag not in ("--help", "--verbose"):
                    assert flag in section, f"{name} {flag} is not on the CLI page"


def test_the_wheel_and_the_sdist_carry_the_examples() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    assert "examples/" in config["targets"]["sdist"]["include"]
    assert config["targets"]["wheel"]["force-include"]["examples"] == "callsid_resolver/examples"
    for name in re.findall(
        r"`examples/(\w+\.py)`", "".join(p.read_text() for p in DOCS.glob("*.md"))
    ):
        assert (ROOT / "examples" / name).is_file(), name


def test_a_built_wheel_holds_the_examples(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--wheel",
            "-o",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "callsid_resolver/examples/mcp_server.py" in names
    assert "callsid_resolver/examples/webhook_starlette.py" in names
