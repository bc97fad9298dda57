"""What the client sends to run one point, and what comes back: their fields and their JSON.

The client hands a ``PointJob`` to a Dask task, which hands it as JSON to the point's
own process (``python -m sweep.point``) on the worker; that process prints a
``PointResult`` as JSON, which the task returns to the client.

A job's secrets (``--env`` values, the user part of its git URL) are ``Secret``s: Dask
pickles them into the task as they are, and a log line or an error that describes the
task shows ``***``. Only the JSON for the point's own process, through a pipe, holds
them in the clear.
"""

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from sweep.secrets import Secret

State = Literal["done", "exists", "failed"]


@dataclass(frozen=True)
class PointJob:
    """One experiment to run: where its code is, what to set, and what to call it.

    ``work_dir`` holds the worker host's shared DVC cache, the clones and a lock file;
    ``None`` lets the worker use its default (see ``sweep.point.default_work_dir``).
    ``cache_dir``, when set, is the DVC cache to share instead of ``work_dir/cache``.
    ``identity`` is the client's git user (name, email), for a worker that has none.
    ``env`` changes the worker's environment for the commands of this point: a value
    of ``None`` unsets the variable. ``secret_env`` sets more, whose values are secrets.
    """

    sweep_id: str
    name: str
    flags: tuple[str, ...]
    git_url: Secret
    base: str
    work_dir: str | None = None
    cache_dir: str | None = None
    identity: tuple[str, str] | None = None
    env: dict[str, str | None] = field(default_factory=dict)
    secret_env: dict[str, Secret] = field(default_factory=dict)

    def secrets(self) -> list[Secret]:
        """What no message about this job may show."""
        return [self.git_url, *self.secret_env.values()]

    def to_json(self) -> str:
        """The job for the point's process, secrets in the clear."""
        revealed = replace(self, git_url=None, secret_env={})
        return json.dumps(
            asdict(revealed)
            | {
                "git_url": self.git_url.reveal(),
                "secret_env": {name: value.reveal() for name, value in self.secret_env.items()},
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "PointJob":
        raw = json.loads(text)
        raw["flags"] = tuple(raw["flags"])
        raw["identity"] = tuple(raw["identity"]) if raw["identity"] else None
        raw["git_url"] = Secret.url(raw["git_url"])
        raw["secret_env"] = {name: Secret(value) for name, value in raw["secret_env"].items()}
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
