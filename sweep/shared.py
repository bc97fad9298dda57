"""What the sweep's client, cluster and workers share: its exit codes, its secrets, the
records that travel between client and worker, and the boundary of its commands.

Exit codes, for ``python -m sweep``, ``python -m sweep.show`` and a point's own process
alike: ``DONE``; ``POINT_FAILED`` when a point failed (each is reported with its error);
``USER_ERROR`` for a mistake in the command or the project, one line, before anything
runs; ``STOPPED`` + N when stopped by signal N (130 for Ctrl-C); ``BUG``, with a
traceback, for our own bugs.

Secrets: ``--env`` values, and the user part and query values of a URL
(``https://user:TOKEN@host/x.git``). A ``Secret`` shows as ``***`` (a URL as itself with
those parts as ``***``) in ``str``, ``repr`` and so in every log line, exception and Dask
task description that holds it; ``reveal()`` gives the value, to the one call that needs
it (a command's environment, ``git clone``). Text that a command printed, and that may
quote a secret (git prints the URL it could not reach, token included), goes through
``hide`` before it is shown.

Records: the client hands a ``PointJob`` to a Dask task, which hands it as JSON to the
point's own process (``python -m sweep.worker``) on the worker; that process prints a
``PointResult`` as JSON, which the task returns to the client. Dask pickles a job's
``Secret``s into the task as they are; only the JSON for the point's own process,
through a pipe, holds them in the clear.

The boundary (``boundary``): one message and ``USER_ERROR`` for a ``UserError``;
"stopped by SIGINT" and ``STOPPED`` + N for a stop by signal N; a traceback and ``BUG``
only for our own bugs. Every line on stderr, Dask's and DVC's included, has the given
secrets hidden. These are not stages: nothing here speaks of a stage's outputs.
"""

import json
import logging
import signal
import sys
import traceback
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from pipeline.download import redact
from pipeline.errors import STOP_SIGNALS, StageStopped, UserError

log = logging.getLogger("sweep")

# The exit codes of the sweep's commands (see above), here and nowhere else.
DONE = 0
POINT_FAILED = 1
BUG = 1
USER_ERROR = 2
STOPPED = 128  # plus the signal's number

MASK = "***"


def redact_url(url: str) -> str:
    """``url`` with its whole user part and every query value as ``***``: the stages' own
    redaction, so that a URL reads the same in a download's message and a sweep's."""
    return redact(url)


def url_secrets(url: str) -> dict[str, str]:
    """How a message can quote what ``redact_url`` hides, and what to show instead: the
    user part with its ``@``, and each ``name=value`` of the query (as written and decoded).

    In URL form only: a bare user name such as ``git`` (``ssh://git@host/x.git``) would
    otherwise be hidden in every word that contains it.
    """
    parts = urllib.parse.urlsplit(url)
    found = {}
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        for text in (userinfo, urllib.parse.unquote(userinfo)):
            found[f"{text}@"] = f"{MASK}@"
    for pair in parts.query.split("&"):
        name, sep, _ = pair.partition("=")
        if sep:
            for text in (pair, urllib.parse.unquote_plus(pair)):
                found[text] = f"{urllib.parse.unquote_plus(name)}={MASK}"
    return found


class Secret:
    """A value that prints as ``***``, or as ``shown``; ``reveal()`` gives it."""

    __slots__ = ("_value", "_shown", "_parts")

    def __init__(self, value: str, *, shown: str = MASK, parts: dict[str, str] | None = None):
        self._value = value
        self._shown = shown
        self._parts = dict(parts) if parts is not None else {value: MASK}

    @classmethod
    def url(cls, url: str) -> "Secret":
        """A URL that prints without its user part and query values."""
        return cls(url, shown=redact_url(url), parts=url_secrets(url))

    def reveal(self) -> str:
        return self._value

    def texts(self) -> dict[str, str]:
        """What must not appear in a message (the value, or a URL's secret parts), each
        with what to show instead."""
        return self._parts

    def __str__(self) -> str:
        return self._shown

    def __repr__(self) -> str:
        return f"Secret({self._shown!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))


# A shorter value (``--env OMP_NUM_THREADS=8``) cannot be told from the other words and
# numbers of a message: hiding it would garble every line, and hide nothing worth hiding.
SHORTEST_HIDDEN = 4


def hide(text: str, secrets: Iterable[str | Secret]) -> str:
    """``text`` with every occurrence of each secret (a string, or a ``Secret``'s texts)
    of at least ``SHORTEST_HIDDEN`` characters replaced by ``***``, the longest first."""
    texts = {}
    for secret in secrets:
        texts |= secret.texts() if isinstance(secret, Secret) else {secret: MASK}
    for found in sorted(texts, key=len, reverse=True):
        if len(found) < SHORTEST_HIDDEN:
            break
        text = text.replace(found, texts[found])
    return text


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
        return body() or DONE
    except UserError as exc:
        log.error("error: %s", exc)
        return USER_ERROR
    except StageStopped as exc:
        log.error("stopped by %s", exc)
        return STOPPED + exc.signum
    except Exception as exc:  # our bug: its traceback, with the secrets hidden all the same
        sys.stderr.write(hide("".join(traceback.format_exception(exc)), secrets))
        return BUG
    finally:
        for signum, handler_before in previous.items():
            signal.signal(signum, handler_before)
        root.removeHandler(handler)
        root.setLevel(levels[0])
        ours.setLevel(levels[1])
