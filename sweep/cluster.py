"""The Dask cluster of a sweep: a ``LocalCluster`` started here, or a scheduler's, checked.

``--scheduler`` is checked before anything starts: ``tcp://`` or ``tls://`` (a bare
``HOST:PORT`` is ``tcp://``), the TLS files readable, and then the scheduler reached
within ``--connect-timeout`` seconds. A closed port, a server that never answers, one
that speaks another protocol or a TLS mismatch each give one line, not a traceback or a
hang. TLS takes the cluster's CA, and this client's certificate and key, from the
command line (``--tls-ca-file``, ``--tls-cert``, ``--tls-key``, as ``dask scheduler``
and ``dask worker`` name them) or from Dask's own configuration
(``distributed.comm.tls.ca-file``, ``distributed.comm.tls.client.cert`` and ``.key``).
"""

import asyncio
import ipaddress
import logging
import signal
import socket
import ssl
import urllib.parse
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from pipeline.errors import UserError, one_line
from pipeline.secrets import redact

log = logging.getLogger(__name__)

SCHEMES = ("tcp", "tls")
DEFAULT_PORT = 8786
DEFAULT_CONNECT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class TlsFiles:
    """The TLS files given on the command line; ``None`` leaves one to Dask's configuration."""

    ca_file: str | None = None
    cert: str | None = None
    key: str | None = None

    def given(self) -> list[str]:
        options = ("--tls-ca-file", "--tls-cert", "--tls-key")
        return [option for option, value in zip(options, self.values(), strict=True) if value]

    def values(self) -> tuple[str | None, str | None, str | None]:
        return self.ca_file, self.cert, self.key


@dataclass(frozen=True)
class Scheduler:
    """A scheduler to connect to: its address, its TLS settings (a ``distributed``
    ``Security``, or ``None`` for ``tcp://``) and how long to try."""

    address: str
    security: object | None
    timeout: float

    @property
    def encrypted(self) -> bool:
        return self.security is not None

    @property
    def local(self) -> bool:
        """Whether the scheduler is on this machine's loopback interface."""
        return is_loopback(host_port(self.address)[0])


def host_port(address: str) -> tuple[str, int]:
    """The host and port of ``scheme://HOST[:PORT]``; a UserError for anything else."""
    parts = urllib.parse.urlsplit(address)
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:  # not a number, or out of range
        port = None
    if not parts.hostname or port is None or parts.username is not None or parts.path.strip("/"):
        raise UserError(
            f"--scheduler {redact(address)}: expected tcp://HOST:PORT or tls://HOST:PORT"
        )
    return parts.hostname, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def scheduler(address: str, tls: TlsFiles, timeout: float, cwd: Path) -> Scheduler:
    """Check ``--scheduler`` and the TLS options, without connecting: a ``Scheduler``."""
    if "://" not in address:
        address = f"tcp://{address}"
    scheme = address.partition("://")[0]
    if scheme not in SCHEMES:
        raise UserError(
            f"--scheduler {redact(address)}: unknown scheme {scheme!r}; expected"
            " tcp://HOST:PORT, or tls://HOST:PORT for a cluster that uses TLS"
        )
    host_port(address)
    if not timeout > 0:
        raise UserError(f"--connect-timeout {timeout}: expected a positive number of seconds")
    if scheme == "tcp":
        if tls.given():
            raise UserError(
                f"{', '.join(tls.given())} given, but --scheduler is tcp://: give its tls://"
                " address"
            )
        return Scheduler(address, None, timeout)
    return Scheduler(address, security(tls, cwd), timeout)


def security(tls: TlsFiles, cwd: Path):
    """A client ``Security`` for TLS: the command line's files over Dask's configuration."""
    from distributed.security import Security

    given = {}
    for field, option, value in zip(
        ("tls_ca_file", "tls_client_cert", "tls_client_key"),
        ("--tls-ca-file", "--tls-cert", "--tls-key"),
        tls.values(),
        strict=True,
    ):
        if value:
            path = cwd / Path(value).expanduser()
            if not path.is_file():
                found = "a folder" if path.is_dir() else "no such file"
                relative = "" if Path(value).is_absolute() else f", relative to {cwd}"
                raise UserError(f"{option} {value}: {found}{relative}")
            given[field] = str(path)
    found = Security(require_encryption=True, **given)
    if not (found.tls_ca_file and found.tls_client_cert):
        raise UserError(
            "a tls:// scheduler needs the cluster's CA and a client certificate: give"
            " --tls-ca-file and --tls-cert (and --tls-key, unless the certificate file"
            " holds the key), or set distributed.comm.tls.ca-file and"
            " distributed.comm.tls.client.cert in Dask's configuration"
        )
    try:
        found.get_connection_args("client")
    except (OSError, ssl.SSLError) as exc:
        raise UserError(
            f"cannot load the TLS files (CA {found.tls_ca_file}, certificate"
            f" {found.tls_client_cert}, key {found.tls_client_key or 'in the certificate'}):"
            f" {exc.strerror or exc}"
        ) from None
    return found


def probe(target: Scheduler) -> None:
    """Reach the scheduler within its timeout and check that it is one: a UserError if not.

    A TCP connection first (and its TLS handshake), which fails at once on a closed port
    and says why TLS failed; then Dask's handshake and an ``identity`` call, bounded as a
    whole (Dask's own handshake waits for ever on a server that accepts and says nothing).
    The scheduler logs the first connection at INFO, as one that closed before Dask's
    handshake.
    """
    from distributed.comm import connect
    from distributed.comm.core import CommClosedError

    shown = redact(target.address)
    host, port = host_port(target.address)
    no_answer = UserError(
        f"--scheduler {shown}: no Dask scheduler answered within {target.timeout:g} s"
        f" (is {port} the scheduler's port, not its dashboard's?); --connect-timeout to"
        " wait longer"
    )
    try:
        with socket.create_connection((host, port), timeout=target.timeout) as sock:
            if target.security:
                context = target.security.get_connection_args("client")["ssl_context"]
                context.wrap_socket(sock).close()
    except socket.gaierror as exc:
        raise UserError(f"--scheduler {shown}: cannot resolve {host} ({exc.strerror})") from None
    except ssl.SSLError as exc:
        raise UserError(
            f"--scheduler {shown}: TLS failed ({exc.reason or exc}): check that it is the"
            " cluster's tls:// address, and that --tls-ca-file is the CA that signed the"
            " cluster's certificates"
        ) from None
    except TimeoutError:
        raise no_answer from None
    except OSError as exc:
        raise UserError(
            f"--scheduler {shown}: cannot connect ({exc.strerror or exc}): is the Dask"
            " scheduler running, on that port?"
        ) from None

    async def identity():
        args = target.security.get_connection_args("client") if target.security else {}
        comm = await connect(target.address, timeout=target.timeout, **args)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    try:
        reply = asyncio.run(asyncio.wait_for(identity(), target.timeout))
    except TimeoutError:
        raise no_answer from None
    except CommClosedError:
        hint = "" if target.encrypted else " (a tls:// scheduler, addressed as tcp://?)"
        raise UserError(
            f"--scheduler {shown}: the server closed the connection without answering as a"
            f" Dask scheduler{hint}"
        ) from None
    except OSError:  # Dask's own connect timed out: the same as no answer
        raise no_answer from None
    if not (isinstance(reply, dict) and reply.get("type") == "Scheduler"):
        raise no_answer


def warn_if_plain(target: Scheduler, secrets: list[str]) -> None:
    """One line for ``tcp://`` to another host; a UserError if ``secrets`` would cross it."""
    if target.encrypted or target.local:
        return
    if secrets:
        raise UserError(
            f"{' and '.join(secrets)} would cross the network unencrypted to"
            f" {redact(target.address)}: use the cluster's tls:// address (docs/sweeps.md)"
        )
    log.warning(
        "warning: %s is not encrypted: the tasks cross the network in the clear, and anyone"
        " who reaches the scheduler can run code on the workers; use tls:// (docs/sweeps.md)",
        redact(target.address),
    )


@contextmanager
def local_cluster(workers: int) -> Iterator:
    """A ``LocalCluster`` of ``workers`` single-threaded processes; on exit, closed, with
    every process that its workers started (the points' included) gone."""
    from distributed import LocalCluster

    # Ignored signals stay ignored across fork and exec: the workers leave a Ctrl-C in
    # this terminal to the client, which stops them in order (ignore_interrupts does the
    # same for a worker that its nanny restarts).
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with warnings.catch_warnings():
            # A busy 8787 is not the user's problem: the dashboard's link, printed next,
            # names the port it got instead.
            warnings.filterwarnings("ignore", r"Port \d+ is already in use", UserWarning)
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",  # this machine's workers only, and its dashboard for it
                dashboard_address="127.0.0.1:8787",
                silence_logs=logging.ERROR,
            )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        yield cluster
    finally:
        started = worker_processes(cluster)
        cluster.close()
        _, alive = psutil.wait_procs(started, timeout=STOP_TIMEOUT_SECONDS)
        for process in alive:
            log.warning("killing process %s (%s), still running", process.pid, process.name())
            process.kill()


def worker_processes(cluster) -> list:
    """The worker processes of ``cluster`` and all their descendants, now."""
    processes = []
    for nanny in cluster.workers.values():
        pid = getattr(nanny, "pid", None)
        try:
            worker = psutil.Process(pid)
            processes += [worker, *worker.children(recursive=True)]
        except (psutil.NoSuchProcess, ValueError, TypeError):
            pass
    return processes


def ignore_interrupts():
    """A worker plugin for the client's own ``LocalCluster``, whose workers share its
    terminal: they leave a Ctrl-C there to the client, which stops the sweep in order.
    (Defined here, not at the top: importing the sweep's modules loads no Dask.)"""
    from distributed import WorkerPlugin

    class IgnoreInterrupts(WorkerPlugin):
        def setup(self, worker) -> None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreInterrupts()


@contextmanager
def connect(workers: int, target: Scheduler | None) -> Iterator:
    """A Dask client: of a new ``LocalCluster`` of ``workers``, or of ``target`` (which
    ``probe`` found)."""
    from distributed import Client

    # Dask logs every worker and connection at INFO: only its warnings are for the user.
    logging.getLogger("distributed").setLevel(logging.WARNING)

    if target:
        with Client(target.address, security=target.security, timeout=target.timeout) as client:
            check_environment(client)
            yield client
        return
    with local_cluster(workers) as cluster, Client(cluster) as client:
        client.register_plugin(ignore_interrupts())
        yield client


def check_environment(client) -> None:
    """Fail with one message if the scheduler or a worker cannot import this package."""
    from sweep.worker import ready

    for where, call in (("scheduler", client.run_on_scheduler), ("workers", client.run)):
        try:
            call(ready)
        except (ImportError, AttributeError) as exc:
            raise UserError(
                f"the Dask {where} cannot run the sweep ({one_line(exc)}): start them from a"
                " checkout of the project with its environment and PYTHONPATH=<the checkout>"
                " (docs/sweeps.md)"
            ) from None
    if not client.scheduler_info()["workers"]:
        log.warning("warning: the cluster has no worker yet: the sweep waits for one")


def dashboard(client) -> str | None:
    """The address of Dask's dashboard, when the scheduler serves one."""
    if "dashboard" not in client.scheduler_info().get("services", {}):
        return None
    return client.dashboard_link
