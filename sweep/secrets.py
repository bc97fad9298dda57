"""Values that must never be printed: ``--env`` values, and the user part and query
values of a URL (``https://user:TOKEN@host/x.git``).

A ``Secret`` shows as ``***`` (a URL as itself with those parts as ``***``) in ``str``,
``repr`` and so in every log line, exception and Dask task description that holds it;
``reveal()`` gives the value, to the one call that needs it (a command's environment,
``git clone``). Text that a command printed, and that may quote a secret (git prints
the URL it could not reach, token included), goes through ``hide`` before it is shown.
"""

import logging
import urllib.parse
from collections.abc import Iterable

from pipeline.download import redact

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
    for field in parts.query.split("&"):
        name, sep, _ = field.partition("=")
        if sep:
            for text in (field, urllib.parse.unquote_plus(field)):
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
