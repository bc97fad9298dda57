"""Print the part of requirements.txt that the stages need on another platform.

The packages whose code the stages run (``pipeline.interpreter.STAGE_PACKAGES``, which the
stages check on start) and everything they require there, each block as requirements.txt
writes it, with its hashes, for ``pip install --require-hashes`` of another platform's
wheels. The dependencies are read from this environment's installed metadata, which
``make setup`` installed from the same requirements.txt, with the markers evaluated for
the target platform.

    python platforms/stage_requirements.py [--machine aarch64] > stage-requirements.txt
"""

import argparse
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.interpreter import STAGE_PACKAGES  # noqa: E402


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_blocks(text: str) -> dict[str, str]:
    """Each ``name==version`` entry of a pip-compile file with its continuation lines
    (hashes) and comments, by normalized name."""
    blocks: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", line)
        if match:
            current = normalized(match[1])
            blocks[current] = [line]
        elif current and line.startswith((" ", "\t")):
            blocks[current].append(line)
        else:
            current = None
    return {name: "\n".join(lines) for name, lines in blocks.items()}


def closure(roots: list[str], environment: dict[str, str]) -> set[str]:
    """``roots`` and everything their installed metadata requires under ``environment``."""
    seen: set[str] = set()
    todo = [normalized(name) for name in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for spec in metadata.requires(name) or ():
            requirement = Requirement(spec)
            if requirement.marker and not requirement.marker.evaluate(environment | {"extra": ""}):
                continue
            todo.append(normalized(requirement.name))
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machine", default="aarch64", help="platform_machine of the target")
    parser.add_argument("--requirements", type=Path, default=ROOT / "requirements.txt")
    args = parser.parse_args()
    blocks = requirement_blocks(args.requirements.read_text(encoding="utf-8"))
    target = {
        "platform_machine": args.machine,
        "platform_system": "Linux",
        "sys_platform": "linux",
        "os_name": "posix",
    }
    needed = closure(list(STAGE_PACKAGES), target)
    missing = sorted(needed - blocks.keys())
    if missing:
        sys.exit(f"error: requirements.txt does not pin {', '.join(missing)}: run `make lock`")
    print("\n".join(blocks[name] for name in sorted(needed)))


if __name__ == "__main__":
    main()
