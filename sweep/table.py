"""The sweep's tables: the swept params (or those that differ) and the headline metrics,
one row per experiment, as aligned columns."""

from pipeline import paths
from pipeline.formats import HEADLINE_METRICS
from sweep.grid import Point

METRICS_FILE = paths.PROJECT.metrics.relative_to(paths.ROOT).as_posix()


def lookup(tree: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def aligned(rows: list[list[str]]) -> str:
    """``rows`` (the first one the header) as left-aligned columns, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def headline(data: dict) -> list[str]:
    """The headline metrics of one experiment's data (from ``dvc exp show --json``)."""
    metrics = (data.get("metrics") or {}).get(METRICS_FILE, {}).get("data") or {}
    return [cell(metrics.get(name)) for name in HEADLINE_METRICS]


def sweep_table(points: dict[str, Point], shown: dict[str, dict]) -> str:
    """The swept params and headline metrics of each experiment of ``points`` that
    ``shown`` (experiments' data by name) holds."""
    overrides = next(iter(points.values())).overrides
    rows = [["experiment", *(o.label for o in overrides), *HEADLINE_METRICS]]
    for name, point in points.items():
        data = shown.get(name)
        if data is None:
            continue
        params = [
            lookup((data.get("params") or {}).get(o.file, {}).get("data", {}), o.key)
            for o in point.overrides
        ]
        rows.append([name, *map(cell, params), *headline(data)])
    return aligned(rows)
