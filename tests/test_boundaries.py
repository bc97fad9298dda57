"""What every command of the project shares at its boundary: one table of exit codes
(``pipeline/errors.py``) and one redaction of secrets (``pipeline/secrets.py``)."""

import ast
import re

import pytest

from pipeline import errors, paths, secrets

COMMAND_FOLDERS = ("pipeline", "stages", "tools", "sweep", "benchmarks", "platforms")


# The functions whose value is an exit code (with what they nest): each entry point's, the
# sweep's boundary and the sweep itself.
EXIT_CODE_FUNCTIONS = {"main", "boundary", "sweep"}


def numbers(node: ast.AST) -> list[int]:
    return [
        n.value
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and type(n.value) is int and n.value != 0
    ]


def python_files() -> list:
    files = []
    for folder in COMMAND_FOLDERS:
        files += sorted((paths.ROOT / folder).rglob("*.py"))
    return files


def test_the_table_is_documented_as_it_is_defined():
    assert (errors.EXIT_OK, errors.EXIT_FAILED, errors.EXIT_USAGE) == (0, 1, 2)
    assert errors.stopped(2) == 130  # SIGINT, as a shell reports Ctrl-C
    docs = (paths.ROOT / "docs" / "pipeline.md").read_text()
    table = docs[docs.index("## Exit codes") :]
    for code, words in [
        ("0", "done"),
        ("1", "it ran and found a failure"),
        ("2", "could not run as asked"),
        ("128+N", "stopped by signal N"),
    ]:
        assert re.search(rf"^\| {re.escape(code)} \| {words}", table, re.M), code


def test_no_command_spells_an_exit_code_of_its_own():
    # A number in sys.exit() or SystemExit() or returned as an exit code, or an EXIT_ name
    # defined outside errors.py, is a second table: each takes its codes from errors.py.
    found = []
    for path in python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(paths.ROOT)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) in ("sys.exit", "SystemExit", "exit")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, int)
            ):
                found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
            if isinstance(node, ast.FunctionDef) and node.name in EXIT_CODE_FUNCTIONS:
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Return) and inner.value is not None:
                        found += [
                            f"{where}:{inner.lineno}: {node.name} returns {number}"
                            for number in numbers(inner.value)
                        ]
            if isinstance(node, ast.Assign) and where.as_posix() != "pipeline/errors.py":
                for target in ast.walk(node):
                    if isinstance(target, ast.Name) and target.id.startswith("EXIT_"):
                        found.append(f"{where}:{node.lineno}: defines {target.id}")
    assert found == []


REDACTION = {"redact", "redact_url", "url_secrets", "hide", "Secret", "MASK", "HIDDEN"}


def test_secrets_are_redacted_by_one_module():
    # A second redaction would show a URL one way in a download's message and another in
    # a sweep's, and a fix to one would miss the other.
    found = []
    for path in python_files():
        where = path.relative_to(paths.ROOT).as_posix()
        if where == "pipeline/secrets.py":
            continue
        text = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in REDACTION:
                found.append(f"{where}:{node.lineno}: defines {node.name}")
            if isinstance(node, ast.Assign):
                names = {t.id for a in node.targets for t in ast.walk(a) if isinstance(t, ast.Name)}
                found += [f"{where}:{node.lineno}: defines {n}" for n in names & REDACTION]
        if '"***"' in text:
            found.append(f"{where}: spells the mask")
    assert found == []


def test_one_line_shows_the_world_s_words_safely_on_one_line():
    assert errors.one_line("HTTP 404 Not\x1b[2JFound") == "HTTP 404 Not?[2JFound"
    assert errors.one_line("\n  first line  \nsecond\n") == "first line"
    assert errors.one_line("x" * 300) == "x" * 197 + "..."
    assert errors.one_line(ValueError()) == "ValueError"
    assert errors.one_line(ValueError("bad value\nTraceback")) == "bad value"


@pytest.mark.parametrize(
    "url",
    [
        "https://u:TOK/EN-SECRET@h/x.git",  # an unencoded / ends urlsplit's host part early
        "https://u:TOK?EN-SECRET@h/x.git",
        "https://TOKEN-SECRET@h/x.git?sig=SIG-SECRET#FRAG-SECRET",
        "https:/u:TOKEN-SECRET@h/x.git",  # one slash, a typo
    ],
)
def test_what_redact_hides_in_a_url_hide_finds_in_a_commands_words(url):
    # git prints the URL it could not reach: what hides it there must be what redact
    # hides, or the message shows what the URL's repr never did.
    said = f"fatal: unable to access '{url}/': Could not resolve host: h"
    shown = secrets.hide(said, [secrets.Secret.url(url)])
    assert "SECRET" not in shown + str(secrets.Secret.url(url)) + secrets.redact(url)
    assert shown.startswith("fatal: unable to access 'https:/") and shown.endswith(": h")
