"""One value of params.yaml changed in place, every other byte kept: how the benchmark's
scenarios and the tests edit params, so that a diff shows the one change."""

import re
from pathlib import Path


def set_param(params_yaml: Path, key: str, text: str) -> str:
    """Write ``text`` as the value of ``key`` in params.yaml, keeping all else byte for byte.

    ``key`` is ``section.name``, or a ``name`` that only one section has. ``text`` is
    written as it is, so that tests can try YAML spellings. Returns the old text.
    """
    section, _, name = key.rpartition(".")
    lines = params_yaml.read_text(encoding="utf-8").splitlines(keepends=True)
    pattern = re.compile(rf"^(\s+{re.escape(name)}:[ \t]*)([^#\n]*?)([ \t]*(#.*)?\n?)$")
    current, found = None, []
    for i, line in enumerate(lines):
        if line[:1].strip() and not line.startswith("#"):
            current = line.split(":", 1)[0]
        elif (not section or current == section) and (match := pattern.match(line)):
            found.append((i, match))
    if len(found) != 1:
        raise ValueError(f"{key}: {len(found)} lines set it in {params_yaml}, not one")
    [(i, match)] = found
    lines[i] = match.group(1) + text + match.group(3)
    params_yaml.write_text("".join(lines), encoding="utf-8")
    return match.group(2)
