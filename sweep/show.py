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

from stages.errors import UserError
from sweep.cli import boundary
from sweep.driver import HEADLINE_METRICS, METRICS_FILE, cell, dvc, run

PARAMS_FILE = "params.yaml"


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """``{"train": {"alpha": 1}}`` as ``{"train.alpha": 1}``; lists stay values."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def rows(shown: list[dict]) -> list[tuple[str, dict, dict]]:
    """(name, flat params, metrics) of each baseline and its experiments, in order."""
    found = []
    for baseline in shown:
        for entry in [baseline, *(baseline.get("experiments") or ())]:
            data = entry["revs"][0]["data"] if "revs" in entry else entry.get("data") or {}
            rev = entry.get("rev") or "?"
            name = entry.get("name") or (rev[:7] if len(rev) == 40 else rev)
            params = (data.get("params") or {}).get(PARAMS_FILE, {}).get("data") or {}
            metrics = (data.get("metrics") or {}).get(METRICS_FILE, {}).get("data") or {}
            found.append((name, flatten(params), metrics))
    return found


def table(found: list[tuple[str, dict, dict]]) -> str:
    """The params that differ between the rows, then the headline metrics, aligned."""
    keys = sorted({key for _, params, _ in found for key in params})
    varying = [k for k in keys if len({json.dumps(p.get(k)) for _, p, _ in found}) > 1]
    lines = [["experiment", *varying, *HEADLINE_METRICS]]
    for name, params, metrics in found:
        lines.append(
            [
                name,
                *(cell(params.get(k)) for k in varying),
                *(cell(metrics.get(m)) for m in HEADLINE_METRICS),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sweep.show", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rev", default="HEAD", help="the commit whose experiments to show")
    args = parser.parse_args(argv)
    try:
        shown = json.loads(run(dvc("exp", "show", "--json", "--rev", args.rev), Path.cwd()))
    except json.JSONDecodeError as exc:
        raise UserError(f"dvc exp show --json printed no JSON ({exc})") from None
    found = rows(shown)
    if len(found) < 2:
        print(
            f"no experiments of {args.rev}: run some with python -m sweep or dvc exp run",
            file=sys.stderr,
        )
    print(table(found))


if __name__ == "__main__":
    sys.exit(boundary(main))
