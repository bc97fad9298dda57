"""What the sweep's client, cluster and workers share: the records that travel between
client and worker, the filter that hides its secrets, and the boundary of its commands.

Exit codes, for ``python -m sweep``, ``python -m sweep.show`` and a point's own process
alike, are the project's one table (``pipeline/errors.py``): ``EXIT_OK``; ``EXIT_FAILED``
when a point failed (each is reported with its error), or with a traceback for our own
bugs; ``EXIT_USAGE`` for a mistake in the command or the project, one line, before
anything runs; 128 + N when stopped by signal N (130 for Ctrl-C).

Secrets (``--env`` values, a git URL's user part and query values) are the project's
``pipeline.secrets.Secret``; ``HideSecrets`` hides them in every log line, and text
that a command printed goes through ``hide`` before it is shown.

Records: the client hands a ``PointJob`` to a Dask task, which hands it as JSON to the
point's own process (``python -m sweep.worker``) on the worker; that process prints a
``PointResult`` as JSON, which the task returns to the client. Dask pickles a job's
``Secret``s into the task as they are; only the JSON for the point's own process,
through a pipe, holds them in the clear.

The boundary (``boundary``): one message and ``EXIT_USAGE`` for a ``UserError``;
"stopped by SIGINT" and 128 + N for a stop by signal N; a traceback and ``EXIT_FAILED``
only for our own bugs. Every line on stderr, Dask's and DVC's included, has the given
secrets hidden. These are not stages: nothing here speaks of a stage's outputs.
"""

import json
import logging
import signal
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from pipeline.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    STOP_SIGNALS,
    StageStopped,
    UserError,
    stopped,
)
from pipeline.secrets import Secret, hide

log = logging.getLogger("sweep")


class HideSecrets(logging.Filter):
    """A logging filter that hides ``secrets`` in every record that passes, whoever
    logged it (this package, Dask, DVC), traceback included."""

    def __init__(self, secrets: Iterable[str | Secret]):
        super().__init__()
        self.secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg, record.args = hide(record.getMessage(), self.secrets), None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = hide(text, self.secrets)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = hide(record.stack_info, self.secrets)
        return True


State = Literal["done", "exists", "failed"]


@dataclass(frozen=True)
class PointJob:
    """One experiment to run: where its code is, what to set, and what to call it.

    ``work_dir`` holds the worker host's shared DVC cache, the clones and a lock file;
    ``None`` lets the worker use its default (see ``sweep.worker.default_work_dir``).
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


def _stop(signum, frame):
    # Once: stopping in order takes a few seconds that a second Ctrl-C must not cut short.
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise StageStopped(signum)


def boundary(body: Callable[[], int | None], *, secrets: Iterable[str | Secret] = ()) -> int:
    """Run ``body`` with the sweep's logging and stop signals; its exit code."""
    secrets = tuple(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(HideSecrets(secrets))
    root, ours = logging.getLogger(), logging.getLogger("sweep")
    levels = root.level, ours.level
    # Dask's own INFO lines (workers starting and closing) are noise here: its warnings stay.
    root.setLevel(logging.WARNING)
    ours.setLevel(logging.INFO)
    root.addHandler(handler)
    previous = {signum: signal.signal(signum, _stop) for signum in STOP_SIGNALS}
    try:
        return body() or EXIT_OK
    except UserError as exc:
        log.error("error: %s", exc)
        return EXIT_USAGE
    except StageStopped as exc:
        log.error("stopped by %s", exc)
        return stopped(exc.signum)
    except Exception as exc:  # our bug: its traceback, with the secrets hidden all the same
        sys.stderr.write(hide("".join(traceback.format_exception(exc)), secrets))
        return EXIT_FAILED
    finally:
        for signum, handler_before in previous.items():
            signal.signal(signum, handler_before)
        root.removeHandler(handler)
        root.setLevel(levels[0])
        ours.setLevel(levels[1])
