"""The README is a user's document: short, opening with the set-up commands and the main job, its
cheap commands run as written, every figure next to the command that made it, every link alive.

The command checks run through click's CliRunner (no subprocess); the quick recipe on the builtin set
runs on the tiny test model here and, marked slow, on the embedded MiniLM as the README writes it.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgebert.cli.main import main
from tests.test_cli_hints import parse

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
USER_DOCS = [README, *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "examples").glob("*.md"))]
LINKED_DOCS = [*USER_DOCS, ROOT / "benchmarks" / "README.md"]
MAX_LINES = 250
SETUP = ['pip install torch==2.13.0 -e ".[dev,optimum]"', "python -m pytest"]  # what .ci/run runs

FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```", re.M | re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# A commit hash: 7 to 40 hex digits with at least one digit and one letter (a word such as "defaced" or
# a number such as 2026 is none).
COMMIT = re.compile(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b")


def _text(path: Path = README) -> str:
    return path.read_text(encoding="utf-8")


def _blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def _commands(text: str) -> list[str]:
    """The `edgebert ...` command lines of the fenced blocks (a console block's `$ ` prompt removed)."""
    found = []
    for lang, body in _blocks(text):
        for line in body.splitlines():
            line = line.strip()
            if lang == "console":
                if not line.startswith("$ "):
                    continue  # output
                line = line[2:]
            elif lang != "bash":
                continue
            if line.startswith("edgebert "):
                found.append(line.split(" #")[0].strip().removesuffix("&").strip())
    return found


def _console_output(text: str, command: str) -> list[str]:
    """The output lines a console block shows under ``$ command``."""
    for lang, body in _blocks(text):
        lines = body.splitlines()
        if lang == "console" and lines and lines[0] == f"$ {command}":
            return [ln for ln in lines[1:] if not ln.startswith("$ ")]
    raise AssertionError(f"README shows no output of `{command}`")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", _text(path))
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


def invoke(command: str):
    return CliRunner().invoke(main, shlex.split(command)[1:], prog_name="edgebert")


def test_readme_is_short():
    lines = _text().count("\n")
    assert lines <= MAX_LINES, f"README.md has {lines} lines; at most {MAX_LINES} (details go to docs/)"


def test_readme_opens_with_the_setup_commands_then_the_main_job():
    blocks = _blocks(_text())
    assert blocks[0] == ("bash", "\n".join(SETUP) + "\n"), blocks[0]
    assert blocks[1] == ("bash", "edgebert compress\n"), blocks[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert all(cmd in ci for cmd in SETUP)  # CI runs the README's commands verbatim


def test_readme_says_how_to_get_the_cpu_only_torch_wheel():
    text = " ".join(_text().split())
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in text


@pytest.mark.parametrize("path", USER_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_user_documents_name_no_session_host_or_commit(path):
    text = _text(path)
    for phrase in ("this session", "this host"):
        assert phrase not in text.lower(), f"{path.name} says {phrase!r}"
    assert not COMMIT.findall(text), f"{path.name} names commits {COMMIT.findall(text)}"


def test_commit_pattern_catches_hashes_only():
    assert COMMIT.findall("at commit 5f8f055, git show e9e49cd:x") == ["5f8f055", "e9e49cd"]
    assert not COMMIT.findall("2026-11-30 defaced 1234567 sha256 avx512_vnni")


@pytest.mark.parametrize("path", LINKED_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files_and_headings_that_exist(path):
    broken = []
    for target in LINK.findall(FENCE.sub("", _text(path))):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(target)
    assert not broken, f"{path.relative_to(ROOT)} links to what does not exist: {broken}"


def test_every_command_in_the_user_documents_parses():
    commands = [(p.name, c) for p in USER_DOCS for c in _commands(_text(p))]
    assert len([c for name, c in commands if name == "README.md"]) >= 10  # the collector sees them
    for name, command in commands:
        parse(command)  # raises click.UsageError for an unknown command or option


def test_every_command_has_a_readme_section():
    headings = _anchors(README)
    missing = [name for name in main.commands if name not in headings]
    assert not missing, f"README has no section for {missing}"


@pytest.mark.parametrize("command", ["edgebert --help", *(f"edgebert {n} --help" for n in sorted(main.commands))])
def test_help_runs(command):
    result = invoke(command)
    assert result.exit_code == 0, result.output
    assert "Usage: edgebert" in result.output


@pytest.mark.parametrize("command", ["edgebert targets", "edgebert models"])
def test_readme_shows_what_the_command_prints(command):
    result = invoke(command)
    assert result.exit_code == 0, result.output
    printed = result.output.splitlines()
    shown = _console_output(_text(), command)
    assert shown and all(line in printed for line in shown), (shown, printed)


def _quick_command() -> str:
    quick = [c for c in _commands(_text()) if c.startswith("edgebert compress") and "--recipe quick" in c]
    assert quick, "README names no quick-recipe compress command"
    return quick[0]


def _run_quick(tmp_path, *extra):
    words = shlex.split(_quick_command())
    out = tmp_path / "quick"
    words[words.index("--out") + 1] = str(out)  # the README's command, written under tmp_path
    result = CliRunner().invoke(main, [*words[1:], "--no-cache", "--quiet", *extra])
    assert result.exit_code == 0, result.output
    assert (out / "manifest.json").is_file() and (out / "model" / "model.onnx").is_file()
    return out


def test_quick_recipe_on_the_builtin_set_runs(tmp_path, tiny_bert_dir):
    """The README's quick command on its builtin data, with the tiny test model in place of MiniLM."""
    import json

    out = _run_quick(tmp_path, "--model", str(tiny_bert_dir))
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["kind"] for s in manifest["stages"]] == ["finetune", "export-onnx", "quantize"]
    assert manifest["run"]["data"]["name"] == "builtin:intents"  # the README's default data


@pytest.mark.slow
def test_quick_recipe_as_written(tmp_path):
    """The README's quick command exactly (the embedded MiniLM, the builtin set); minutes on 2 cores."""
    _run_quick(tmp_path)


def _sections(text: str) -> list[str]:
    return re.split(r"^#{2,3} ", text, flags=re.M)


def test_every_results_table_names_its_command_and_machine():
    """A table holding measured figures (decimals) sits in a section that gives the command that made
    them (`edgebert ...` or `python benchmarks/...`) and the machine (an Intel or AMD CPU, so far)."""
    tables = 0
    for section in _sections(_text()):
        rows = [ln for ln in section.splitlines() if ln.startswith("|") and not ln.startswith("|---")]
        figures = [ln for ln in rows[1:] if re.search(r"\d\.\d", ln)]
        if not figures:
            continue
        tables += 1
        title = section.splitlines()[0]
        assert re.search(r"`(edgebert \w+|python benchmarks/\w+\.py)", section) or \
            re.search(r"^(\$ )?(edgebert \w+|python benchmarks/\w+\.py)", section, re.M), f"section {title!r}: no command"
        assert re.search(r"\b(Intel|AMD)\b", section), f"section {title!r}: no machine named"
    assert tables >= 3


def test_benchmarks_readme_indexes_every_record():
    """benchmarks/README.md is the one index of benchmarks/results/: every record there is named in it."""
    index = _text(ROOT / "benchmarks" / "README.md")
    records = sorted((ROOT / "benchmarks" / "results").iterdir())
    assert records
    missing = [p.name for p in records if p.name.split(".")[0] not in index]
    assert not missing, f"benchmarks/README.md does not index {missing}"
