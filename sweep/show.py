"""``python -m sweep.show [--rev REV]``: the experiments of a commit as a narrow table.

``dvc exp show`` prints every param, every metric and every dependency's hash, metrics
before params: after a sweep that is a hundred columns, with the one that was swept far
to the right. This prints one row per experiment (the commit's own first) and only the
params whose values differ between them, then the headline metrics, however the
experiments were run (``python -m sweep``, ``dvc exp run --queue``, ``dvc exp run``).
"""

import argparse
import json
import sys
from pathlib import Path

from pipeline.dvc_api import PARAMS_FILE, rows
from sweep.client import HEADLINE_METRICS, aligned, cell, exp_show, headline
from sweep.shared import boundary


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """``{"train": {"alpha": 1}}`` as ``{"train.alpha": 1}``; lists stay values."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def table(found: list[tuple[str, dict]]) -> str:
    """The params that differ between the rows (name, data), then the headline metrics."""
    params = [
        flatten((data.get("params") or {}).get(PARAMS_FILE, {}).get("data") or {})
        for _, data in found
    ]
    keys = sorted({key for flat in params for key in flat})
    varying = [k for k in keys if len({json.dumps(flat.get(k)) for flat in params}) > 1]
    lines = [["experiment", *varying, *HEADLINE_METRICS]]
    for (name, data), flat in zip(found, params, strict=True):
        lines.append([name, *(cell(flat.get(k)) for k in varying), *headline(data)])
    return aligned(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sweep.show", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rev", default="HEAD", help="the commit whose experiments to show")
    args = parser.parse_args(argv)
    found = rows(exp_show(Path.cwd(), args.rev))
    if len(found) < 2:
        print(
            f"no experiments of {args.rev}: run some with python -m sweep or dvc exp run",
            file=sys.stderr,
        )
    print(table(found))


if __name__ == "__main__":
    sys.exit(boundary(main))
