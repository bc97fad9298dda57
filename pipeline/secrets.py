"""Secrets, and how every message of the project keeps them out: one redaction for all.

A URL's whole user part (``https://user:TOKEN@host/``) and every query value (a signed
URL's ``X-Amz-Signature=...``) are secrets, and so are a sweep's ``--env`` values.
``redact`` gives a URL fit for a message, a log or a repr; a ``Secret`` holds a value
that prints as ``***`` (a URL as ``redact`` shows it) in ``str`` and ``repr``, and so in
every log line, exception and Dask task that holds it, while ``reveal()`` gives it to the
one call that needs it; ``hide`` takes them out of text that a command printed, which may
quote one (git prints the URL it could not reach, token included). The stages' downloads
and the sweep use these, and nothing else.
"""

import re
import urllib.parse
from collections.abc import Iterable

MASK = "***"  # what a secret, or a secret part of a URL, is shown as
# A scheme and its slashes, however many: ``https:/user:TOKEN@host/``, a typo, still
# holds a password.
_URL_START = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/*")


def redact(url: str) -> str:
    """``url`` fit for a message, a log or a repr: its whole user part and every query
    value become ``***``, and so does a fragment.

    Only the text is read, so that a malformed URL is redacted too rather than raising.
    The user part is everything before the last ``@``, so that a password holding an
    unencoded ``/``, ``?`` or ``#`` is hidden whole; when that part held a ``?`` or a ``#``,
    the ``@`` may as well have stood in a query value or a fragment, and all that follows
    it is hidden too. Text that does not start with a scheme and its colon (a folder) is
    returned as it is.
    """
    start = _URL_START.match(url)
    if start is None:
        return url
    head, rest = url[: start.end()], url[start.end() :]
    user, at, rest = rest.rpartition("@")
    if at:
        head += MASK + at
        if "?" in user or "#" in user:
            return head + MASK
    rest, hash_mark, _ = rest.partition("#")
    rest, question, query = rest.partition("?")
    if query:
        query = "&".join(_hide_value(item) for item in query.split("&"))
    fragment = hash_mark + MASK if hash_mark else ""
    return head + rest + question + query + fragment


def _hide_value(item: str) -> str:
    """``key=***`` for a query's ``key=value``; a bare item is a value, so all of it."""
    key, equals, value = item.partition("=")
    if not equals:
        return MASK if key else ""
    return f"{key}={MASK}" if value else item


def url_secrets(url: str) -> dict[str, str]:
    """How a message can quote what ``redact`` hides, and what to show instead: the user
    part with its ``@``, each ``name=value`` of the query and the fragment, as written and
    decoded. The user part ends at the last ``@``, as in ``redact``, so that a password
    holding an unencoded ``/``, ``?`` or ``#`` is found whole.

    In URL form only: a bare user name such as ``git`` (``ssh://git@host/x.git``) would
    otherwise be hidden in every word that contains it.
    """
    start = _URL_START.match(url)
    if start is None:
        return {}
    found = {}
    user, at, rest = url[start.end() :].rpartition("@")
    if at:
        for text in (user, urllib.parse.unquote(user)):
            found[f"{text}@"] = f"{MASK}@"
    rest, hash_mark, fragment = rest.partition("#")
    if fragment:
        found[hash_mark + fragment] = hash_mark + MASK
    for pair in rest.partition("?")[2].split("&"):
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
        return cls(url, shown=redact(url), parts=url_secrets(url))

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
