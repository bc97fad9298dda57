"""The README and docs/: every relative link resolves, to a file and to a heading in it,
and the README stays short enough to read (the depth lives in docs/)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 250

# [text](target) and ![alt](target), the target up to the first space or ')'.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(m[1]) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


def links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


def test_slug_follows_github():
    assert slug("What it prints and produces") == "what-it-prints-and-produces"
    assert slug("`make verify`: the checks") == "make-verify-the-checks"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_every_doc_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md")}
    unlinked = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not unlinked, f"docs not linked from README.md: {unlinked}"


def test_readme_is_short():
    lines = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move depth to docs/"


def test_every_module_is_named_where_the_code_lives():
    text = (ROOT / "docs" / "pipeline.md").read_text(encoding="utf-8")
    section = text[text.index("## Where the code lives") :]
    named = {name for name in re.findall(r"`([\w/]+\.py)`", section) if "/" in name}
    for folder in ("tools/verify", "sweep"):  # named by folder, their modules listed after it
        row = next(line for line in section.splitlines() if line.startswith(f"| `{folder}/`"))
        named |= {f"{folder}/{name}" for name in re.findall(r"`(\w+\.py)`", row)}
    modules = {
        path.relative_to(ROOT).as_posix()
        for folder in ("stages", "pipeline", "tools/verify", "sweep", "benchmarks", "platforms")
        for path in (ROOT / folder).glob("*.py")
        if path.name != "__init__.py" or folder == "tools/verify"
    }
    modules -= {"tools/verify/__init__.py", "tools/verify/__main__.py", "sweep/__init__.py"}
    assert sorted(modules - named) == []
    assert sorted(name for name in named if not (ROOT / name).is_file()) == []
