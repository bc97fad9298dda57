"""What the environment says about getting the data, read once at the stage's entry point.

``MNIST_MIRROR`` names a mirror that is tried before the data set's public mirrors, which
``MNIST_PUBLIC_MIRRORS=off`` switches off; ``MNIST_DOWNLOAD_SECONDS`` bounds one file's
download; ``MNIST_CACHE``, else ``$XDG_CACHE_HOME/mnist-mlp``, else ``~/.cache/mnist-mlp``,
holds the downloads, a folder for each data set. A mirror is a local folder (or a
``file://`` URL) or an http(s) URL that serves the four files under their usual names; a
URL's user part and query values are secrets, which no message shows.
"""

import math
import re
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.datasets import Dataset
from pipeline.download import user_cache_dir
from pipeline.errors import UserError
from pipeline.secrets import redact

ON = {"1", "on", "yes", "true"}
OFF = {"0", "off", "no", "false"}
DOWNLOAD_SECONDS = 600  # one file's download, retries included; MNIST_DOWNLOAD_SECONDS
CACHE_NAME = "mnist-mlp"  # the download cache's folder in the user's cache folder
ABOUT_MIRRORS = "a folder, a file:// URL or an http(s)://host/path/ URL"


@dataclass(frozen=True, repr=False)
class Mirror:
    """A place that serves the four files under their usual names, as the user wrote it:
    a local ``folder``, or an http(s) URL (``folder`` None).

    Its ``str`` and ``repr`` are the redacted text: a URL's user part and query values
    are secrets, which no message, log or traceback may show.
    """

    given: str
    folder: Path | None = None

    def __str__(self) -> str:
        return redact(self.given)

    def __repr__(self) -> str:
        return f"Mirror({redact(self.given)!r})"

    def url(self, name: str) -> str:
        """The URL of ``name`` on this http(s) mirror: the file name goes at the end of the
        path, before any query string; the scheme is matched whatever its case."""
        parts = urllib.parse.urlsplit(self.given)
        path = parts.path.rstrip("/") + "/" + urllib.parse.quote(name)
        return urllib.parse.urlunsplit(parts._replace(scheme=parts.scheme.lower(), path=path))


def parse_mirror(text: str) -> Mirror:
    """The mirror that ``text`` names: a folder, a ``file://`` URL or an http(s) URL.

    Raises ``ValueError`` saying what is wrong with it, in words that never repeat the
    URL's secret parts: a URL that cannot work is refused here, before any download,
    rather than retried as if the network had failed.
    """
    scheme = text.partition(":")[0].lower()
    if scheme == "file":
        try:
            return Mirror(text, Path(urllib.request.url2pathname(urllib.parse.urlsplit(text).path)))
        except ValueError:
            raise ValueError("not a valid file:// URL") from None
    if scheme not in ("http", "https"):
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", text):
            raise ValueError(f"unknown scheme {scheme!r}")
        return Mirror(text, Path(text).expanduser())
    if any(char.isspace() or not char.isprintable() for char in text):
        raise ValueError("a URL cannot hold spaces or control characters (write a space as %20)")
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        # urllib's own words may quote the host part, user part included.
        raise ValueError("its host part cannot be read (check an IPv6 address's [ ])") from None
    if "@" in parts.path + parts.query + parts.fragment:
        # An unencoded /, ? or # in a password ends the host part early: the user name
        # would be taken for the host, and the password's tail sent to it.
        raise ValueError(
            "an @ after the host: write @ and / in a user name or password as %40 and %2F"
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("the port must be a number from 1 to 65535")
    if not parts.hostname:
        raise ValueError("no host name after the //")
    return Mirror(text)


@dataclass(frozen=True)
class Settings:
    """What the environment says about getting the data: read once, by the stage's
    ``main`` (``from_environ``), and passed down, so that nothing below reads
    ``os.environ``.

    ``mirror`` (``MNIST_MIRROR``) is tried first, then, if ``public_mirrors``, the data
    set's own; each data set's downloads are kept in its folder of ``cache_root``; one
    file's download may take ``download_seconds``, retries included.
    """

    mirror: Mirror | None
    cache_root: Path
    public_mirrors: bool = True
    download_seconds: float = DOWNLOAD_SECONDS

    def mirrors(self, dataset: Dataset) -> tuple[Mirror, ...]:
        """The mirrors to try for ``dataset``'s files, in order."""
        public = dataset.mirrors if self.public_mirrors else ()
        first = (self.mirror,) if self.mirror else ()
        return first + tuple(parse_mirror(url) for url in public)

    def cache_dir(self, dataset: Dataset) -> Path:
        """The folder that holds ``dataset``'s downloads, named after it: two data sets
        with the same file names never evict each other."""
        return self.cache_root / dataset.name

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "Settings":
        """The settings in ``environ`` (``os.environ`` at the entry point), checked.
        Raises one ``UserError`` with a line for each problem."""
        problems = []
        mirror = None
        if "MNIST_CHECKSUMS" in environ:
            problems.append(
                "MNIST_CHECKSUMS is no longer read: write the checksums into data/mnist.sha256"
                " (which DVC tracks) instead, and unset MNIST_CHECKSUMS"
            )
        first = environ.get("MNIST_MIRROR", "").strip()
        if first:
            try:
                mirror = parse_mirror(first)
            except ValueError as exc:
                problems.append(
                    f"MNIST_MIRROR={redact(first)}: {exc}; set it to {ABOUT_MIRRORS}"
                    " that serves the four MNIST files"
                )
        public = environ.get("MNIST_PUBLIC_MIRRORS", "").strip()
        if public and public.lower() not in ON | OFF:
            problems.append(f"MNIST_PUBLIC_MIRRORS={public}: expected on or off")
        seconds_text = environ.get("MNIST_DOWNLOAD_SECONDS", "").strip()
        seconds = DOWNLOAD_SECONDS
        if seconds_text:
            try:
                seconds = float(seconds_text)
            except ValueError:
                seconds = math.nan
            if not seconds > 0:  # nan included
                problems.append(
                    f"MNIST_DOWNLOAD_SECONDS={seconds_text}: expected a positive number of seconds"
                )
        if problems:
            raise UserError("\n".join(problems))
        cache = environ.get("MNIST_CACHE")
        return cls(
            mirror=mirror,
            cache_root=Path(cache) if cache else user_cache_dir(environ, CACHE_NAME),
            public_mirrors=public.lower() not in OFF,
            download_seconds=seconds,
        )
