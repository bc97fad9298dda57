"""What the client sends to run one point, and what comes back: their fields and their JSON.

The client hands a ``PointJob`` to a Dask task, which hands it as JSON to the point's
own process (``python -m sweep.point``) on the worker; that process prints a
``PointResult`` as JSON, which the task returns to the client.
"""

import json
from dataclasses import asdict, dataclass, field
from typing import Literal

State = Literal["done", "exists", "failed"]


@dataclass(frozen=True)
class PointJob:
    """One experiment to run: where its code is, what to set, and what to call it.

    ``work_dir`` holds the worker host's shared DVC cache, the clones and a lock file;
    ``None`` lets the worker use its default (see ``sweep.point.default_work_dir``).
    ``cache_dir``, when set, is the DVC cache to share instead of ``work_dir/cache``.
    ``identity`` is the client's git user (name, email), for a worker that has none.
    ``env`` changes the worker's environment for the commands of this point: a value
    of ``None`` unsets the variable.
    """

    sweep_id: str
    name: str
    flags: tuple[str, ...]
    git_url: str
    base: str
    work_dir: str | None = None
    cache_dir: str | None = None
    identity: tuple[str, str] | None = None
    env: dict[str, str | None] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "PointJob":
        raw = json.loads(text)
        raw["flags"] = tuple(raw["flags"])
        raw["identity"] = tuple(raw["identity"]) if raw["identity"] else None
        return cls(**raw)


@dataclass(frozen=True)
class PointResult:
    """How a point ended: ``done`` (run and shared now), ``exists`` (shared by an earlier
    attempt or sweep with the same name and params) or ``failed`` (``error``, one line).
    ``ran`` lists the stages that ran; none when DVC's run cache had the results."""

    name: str
    state: State
    error: str = ""
    ran: tuple[str, ...] = ()
    host: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "PointResult":
        raw = json.loads(text)
        raw["ran"] = tuple(raw["ran"])
        return cls(**raw)
