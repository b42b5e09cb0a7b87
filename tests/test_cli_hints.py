"""Every command edgebert suggests (in --help examples and in messages) is one the CLI accepts.

The commands are collected from each command's --help text and from the string literals of the
package's source, then parsed by click as ``edgebert ...`` would parse them: an unknown command or
option, an extra argument or a missing required one fails the test. Placeholders (MODEL, DATA, ...)
and paths that do not exist here are fine: only the syntax is checked.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import click
import pytest

from edgebert.cli.main import main

PACKAGE = Path(__file__).resolve().parents[1] / "edgebert"
COMMANDS = "|".join(sorted(main.commands))
# A hint: "edgebert <command> ..." after ": ", a quote, a backquote or "e.g. " (prose such as "another
# edgebert compress (...)" is not one), up to the end of the quoted text, a ")" or a sentence's end.
HINT = re.compile(rf"(?:: |'|`|e\.g\. )edgebert (?:{COMMANDS})\b[^'`\n)]*")
# In --help prose (lines wrapped): quoted commands only, the usage line is no hint.
QUOTED = re.compile(rf"'edgebert (?:{COMMANDS})\b[^'`)]*'")


def _literals(path: Path) -> list[tuple[str, bool]]:
    """(text, is_docstring) for the string literals of a module, f-strings with each {field} as X."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            out.append(("".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values), False))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.value, id(node) in docstrings))
    return out


def _clean(hint: str) -> str:
    hint = hint.split("#")[0]  # a shell comment in a help example
    hint = hint[hint.index("edgebert"):].strip().rstrip("'")
    if not hint.endswith("..."):  # "--data ..." is a placeholder, a single "." ends the sentence
        hint = hint.rstrip(".;,:")
    return hint.removesuffix(" &").strip()


def source_hints(docstrings: bool = False) -> list[tuple[str, str]]:
    """Commands in the package's messages (``docstrings``: in its docstrings instead)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for text, is_doc in _literals(path):
            if is_doc != docstrings:
                continue
            for m in HINT.finditer(" ".join(text.split("\n"))):
                found.append((str(path.relative_to(PACKAGE.parent)), _clean(m.group(0))))
    return found


def _helps() -> list[tuple[str, str]]:
    out = []
    with click.Context(main, info_name="edgebert") as ctx:
        out.append(("edgebert --help", main.get_help(ctx)))
    for name, cmd in main.commands.items():
        with click.Context(cmd, info_name=name, parent=click.Context(main, info_name="edgebert")) as ctx:
            out.append((f"edgebert {name} --help", cmd.get_help(ctx)))
    return out


def help_examples() -> list[tuple[str, str]]:
    """The command lines of the Example(s) blocks of every --help."""
    found = []
    for where, text in _helps():
        in_example = False
        for line in text.splitlines():
            if line.strip().startswith(("Example", "Quick start")):
                in_example = True
            elif not line.strip():
                in_example = False
            elif in_example and line.strip().startswith("edgebert "):
                found.append((where, _clean(line)))
    return found


def help_mentions() -> list[tuple[str, str]]:
    """Commands quoted in the prose of every --help (e.g. "see 'edgebert models'")."""
    return [(where, _clean(m.group(0))) for where, text in _helps()
            for m in QUOTED.finditer(" ".join(text.split()))]


def parse(command: str) -> None:
    """Parse ``command`` as the CLI would; raise click.UsageError for a command it would refuse. A bare
    ``edgebert NAME`` is a reference to the command (as in "see 'edgebert models'"): it must exist."""
    words = shlex.split(command)
    assert words[0] == "edgebert", command
    name, args = words[1], words[2:]
    cmd = main.commands.get(name)
    if cmd is None:
        raise click.UsageError(f"no command {name!r}")
    if not args:
        return
    parent = click.Context(main, info_name="edgebert")
    try:
        cmd.make_context(name, args, parent=parent)
    except click.MissingParameter:
        raise
    except click.BadParameter as exc:  # a value check (a path that does not exist here): the syntax holds
        if "does not exist" not in str(exc):
            raise


def options_exist(command: str) -> None:
    """For a command named in a docstring: the command and every --option it names exist."""
    words = shlex.split(command)
    cmd = main.commands.get(words[1])
    if cmd is None:
        raise click.UsageError(f"no command {words[1]!r}")
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    unknown = [w for w in words[2:] if w.startswith("--") and w.split("=")[0] not in known]
    if unknown:
        raise click.UsageError(f"no option {', '.join(unknown)}")


def test_hints_are_found():
    """The collectors see the hints they are meant to check (else the tests below check nothing)."""
    hints = {h for _, h in source_hints()}
    assert "edgebert compress --list-stages" in hints
    assert any(h.startswith("edgebert compress --model MODEL") for h in hints)  # the runtime's "build one" hint
    examples = {h for _, h in help_examples()}
    assert any(h.startswith("edgebert predict ") for h in examples) and len(examples) >= 10


@pytest.mark.parametrize("where,hint", source_hints() + help_examples() + help_mentions())
def test_every_suggested_command_parses(where, hint):
    try:
        parse(hint)
    except click.UsageError as exc:
        pytest.fail(f"{where} suggests `{hint}`, which edgebert refuses: {exc.format_message()}")


@pytest.mark.parametrize("where,hint", source_hints(docstrings=True))
def test_commands_named_in_docstrings_exist(where, hint):
    try:
        options_exist(hint)
    except click.UsageError as exc:
        pytest.fail(f"{where} names `{hint}`: {exc.format_message()}")


def test_the_bad_hint_of_the_issue_is_caught():
    with pytest.raises(click.UsageError, match="unexpected extra argument"):
        parse("edgebert compress MODEL --target cpu --out ARTIFACT")
    with pytest.raises(click.UsageError):
        parse("edgebert bench --data intents")  # no model: a required argument missing


def test_runtime_examples_use_the_folder_the_main_job_writes():
    """predict / serve / calibrate / bench examples name the artifact `edgebert compress` writes."""
    from edgebert.pipeline import DEFAULT_MODEL, DEFAULT_TARGET, default_out

    artifact = str(default_out(DEFAULT_MODEL, DEFAULT_TARGET))
    for where, hint in help_examples():
        words = shlex.split(hint)
        if words[1] in ("predict", "serve", "calibrate", "bench"):
            assert words[2] == artifact, f"{where}: {hint}"
