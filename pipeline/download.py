"""HTTP downloads: streamed to a file, bounded in size and in time, retried with backoff.

Nothing here knows MNIST: ``mirrors.py`` says which URL, how large the file may be and
where it goes. A server can fail in every way a network can (a status, a dropped or
stalled connection, bytes that are not HTTP), and can also be hostile: a body larger than
the file can be is cut off at ``max_bytes``, and one that trickles in is given up after
the file's deadline, so that the next mirror is tried, as is one whose Content-Length is
not a number of bytes. A URL in any message goes through ``redact``: its user part and
query values are secrets.
"""

import contextlib
import gzip
import http.client
import logging
import re
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from pipeline.errors import one_line
from pipeline.secrets import redact

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 30  # for each read of the socket
RETRIES = 3
BACKOFF_SECONDS = 1.0
CHUNK_BYTES = 1 << 16

# A Content-Length is digits and nothing else (RFC 9110); int() would also take "-5",
# "+5" and "1_000". Eighteen digits are far beyond any file this module is asked for.
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")


def user_cache_dir(environ: Mapping[str, str], name: str) -> Path:
    """The folder ``name`` in the user's cache folder: ``$XDG_CACHE_HOME/name``, else
    ``~/.cache/name`` (the XDG Base Directory rule). ``environ`` is the process's
    environment, read by the caller at its entry point."""
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return Path(environ.get("XDG_CACHE_HOME") or home / ".cache") / name


class DownloadError(Exception):
    """This URL could not deliver the file; another mirror may."""


class DiskError(Exception):
    """Writing the downloaded bytes failed: the local disk's fault, not the server's."""

    def __init__(self, path: Path, error: OSError):
        super().__init__(f"{path}: {error.strerror or error}")
        self.path = path
        self.error = error


def _open(url: str, timeout: float):
    """Open ``url``, sending the user part of the URL as HTTP basic credentials."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        # An opener of its own, not urlopen's, which keeps the proxies of its first call:
        # each download goes through the proxies that proxy_for reads now.
        return urllib.request.build_opener().open(url, timeout=timeout)
    bare = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(
        None,
        bare,
        urllib.parse.unquote(parts.username),
        urllib.parse.unquote(parts.password or ""),
    )
    opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(passwords))
    return opener.open(bare, timeout=timeout)


class _Expired(Exception):
    """The download's deadline passed, whatever it was blocked in."""


# Beyond this a deadline is no deadline (setitimer refuses about 9.2e9 s; inf is allowed).
MAX_ALARM_SECONDS = 10**8


@contextlib.contextmanager
def _deadline(seconds: float):
    """Raise ``_Expired`` out of whatever blocks when ``seconds`` have passed: a connect,
    headers that come a byte at a time (each byte resets the socket's own timeout), a
    body that trickles. A timer signal, so it works in the main thread, where the stages
    download; elsewhere, or for a deadline too far off to be one, only the socket's
    timeout and the body's deadline check apply. The previous handler is back, and the
    timer off, however the block ends.
    """
    if threading.current_thread() is not threading.main_thread() or not (
        seconds < MAX_ALARM_SECONDS
    ):
        yield
        return
    armed = [True]

    def expired(signum, frame):
        if armed[0]:
            raise _Expired

    previous = signal.signal(signal.SIGALRM, expired)
    try:
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
        yield
    finally:
        try:
            armed[0] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, previous)


def proxy_for(url: str) -> str | None:
    """The proxy that urllib sends ``url`` through (``http_proxy``, ``https_proxy``, minus
    ``no_proxy``), if any: a message about the connection then names it."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


def proxy_shown(proxy: str) -> str:
    """A proxy's address for a message: scheme, host and port, never a user part, however
    it is written (urllib takes ``user:password@host:port`` without a scheme too)."""
    parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{one_line(parts.hostname or '?', 80)}{port}"


def _proxy_variable(url: str) -> str:
    return f"{urllib.parse.urlsplit(url).scheme}_proxy"


def _announced_length(header: str | None) -> int | None:
    """The body's size that a ``Content-Length`` header announces; None if it announces none.

    A header that is not a number of bytes marks a server that cannot be trusted with the
    file: ``DownloadError``, so that the next mirror is tried.
    """
    text = (header or "").strip()
    if not text:
        return None
    if not _CONTENT_LENGTH.fullmatch(text):
        raise DownloadError(
            f"the server sent an invalid Content-Length {text[:40]!r}, not a number of bytes"
        )
    return int(text) or None


def _stream_to(url: str, dest: Path, *, max_bytes: int, deadline: float) -> None:
    """Download ``url`` into ``dest``, with a progress bar on a terminal."""
    # The bar shows the file's name alone: the query and fragment may hold secrets.
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    with _open(url, TIMEOUT_SECONDS) as response:
        encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding not in ("identity", *GZIP_ENCODINGS):
            # Not asked for (no Accept-Encoding is sent), and not the file's own bytes.
            raise DownloadError(
                f"the server sent the file with Content-Encoding: {one_line(encoding, 40)},"
                " which this download does not decode (it asks for the file as it is)"
            )
        total = _announced_length(response.headers.get("Content-Length"))
        if total is not None and total > max_bytes:
            raise DownloadError(
                f"the server announces {total} bytes, more than the {max_bytes} this file can be"
            )
        if sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name)
        else:
            log.info("downloading %s (%s bytes)", redact(url), total or "unknown")
            bar = None
        try:
            out = dest.open("wb", buffering=0)  # a full disk fails the write, not a later flush
        except OSError as exc:
            raise DiskError(dest, exc) from None
        received = 0
        try:
            with out:
                # read1 returns what one read of the socket brings, so that a server that
                # trickles a byte at a time still meets the deadline check.
                while chunk := response.read1(CHUNK_BYTES):
                    received += len(chunk)
                    if received > max_bytes:
                        raise DownloadError(f"more than the {max_bytes} bytes this file can be")
                    if time.monotonic() > deadline:
                        raise DownloadError(
                            f"gave up after {received} bytes: the download's time limit"
                            " (MNIST_DOWNLOAD_SECONDS) ran out"
                        )
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        raise DiskError(dest, exc) from None
                    if bar is not None:
                        bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
        if total is not None and received != total:
            # http.client ends a short body without an error; a dropped connection is a
            # network error like any other, so it is retried.
            raise ConnectionError(f"connection closed after {received} of {total} bytes")
    if encoding in GZIP_ENCODINGS:
        _undo_transit_gzip(url, dest, max_bytes)


# What a server may say of a body that it gzipped, which this module undoes.
GZIP_ENCODINGS = ("gzip", "x-gzip")
GZIP_MAGIC = b"\x1f\x8b"


def _undo_transit_gzip(url: str, dest: Path, max_bytes: int) -> None:
    """Decode a body that the server gzipped on the way (``Content-Encoding: gzip``).

    Servers also send that header with a ``.gz`` file's own bytes (Apache's
    ``AddEncoding x-gzip .gz``): for a ``.gz`` URL whose body does not decode to gzip
    again, the body is the file, and stays as it is.
    """
    with dest.open("rb") as f:
        if f.read(2) != GZIP_MAGIC:
            return  # not gzip at all: the header was wrong, and the bytes are the file's
    undecodable = "the server's gzip Content-Encoding does not decode"
    try:
        with gzip.open(dest, "rb") as inner:
            head = inner.read(2)
    except (OSError, EOFError) as exc:
        raise DownloadError(f"{undecodable} ({exc})") from None
    if urllib.parse.urlsplit(url).path.endswith(".gz") and head != GZIP_MAGIC:
        return
    try:
        with gzip.open(dest, "rb") as inner:
            content = inner.read(max_bytes + 1)  # the file itself: at most max_bytes
    except (OSError, EOFError) as exc:
        raise DownloadError(f"{undecodable} ({exc})") from None
    if len(content) > max_bytes:
        raise DownloadError(f"decodes to more than the {max_bytes} bytes this file can be")
    try:
        dest.write_bytes(content)
    except OSError as exc:
        raise DiskError(dest, exc) from None


def download(url: str, dest: Path, *, max_bytes: int, seconds: float) -> None:
    """Download ``url`` into ``dest``: at most ``max_bytes``, in at most ``seconds`` in all.

    Network errors and HTTP 5xx are retried with backoff; everything else, and running
    out of time, raises ``DownloadError`` at once. A ``DiskError`` is never retried.
    """
    deadline = time.monotonic() + seconds
    for attempt in range(RETRIES + 1):
        try:
            with _deadline(deadline - time.monotonic()):
                _stream_to(url, dest, max_bytes=max_bytes, deadline=deadline)
            return
        except _Expired:
            raise DownloadError(
                f"the download's time limit (MNIST_DOWNLOAD_SECONDS, {seconds:g} s) ran out"
                " before the server had sent the file"
            ) from None
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code} {one_line(exc.reason)}"
            if exc.code < 500:
                raise DownloadError(reason) from None
        except (urllib.error.URLError, OSError) as exc:
            inner = getattr(exc, "reason", exc)
            if isinstance(inner, socket.gaierror):
                # An unknown host (or no network at all) does not heal in seconds:
                # waiting would only delay the next mirror.
                raise DownloadError(f"cannot resolve the host ({inner.strerror})") from None
            if isinstance(inner, (socket.timeout, TimeoutError)):
                reason = f"timed out after {TIMEOUT_SECONDS} s"
            else:
                reason = one_line(getattr(inner, "strerror", None) or inner)
            if proxy := proxy_for(url):
                shown = proxy_shown(proxy)
                reason += f" (through the proxy {shown}, which {_proxy_variable(url)} names)"
        except http.client.HTTPException as exc:
            # Not HTTP, or a reply that breaks off (a wrong port, a proxy in the way).
            reason = f"invalid HTTP response ({type(exc).__name__}: {one_line(str(exc).strip())})"
        if attempt == RETRIES:
            raise DownloadError(f"{reason} (after {RETRIES + 1} attempts)")
        wait = BACKOFF_SECONDS * 2**attempt
        if time.monotonic() + wait > deadline:
            raise DownloadError(
                f"{reason}; the download's time limit (MNIST_DOWNLOAD_SECONDS, {seconds:g} s)"
                " leaves no time to retry"
            )
        log.warning("%s: %s; retrying in %.0f s", redact(url), reason, wait)
        time.sleep(wait)
