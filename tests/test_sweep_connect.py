"""``--scheduler``: checked before anything starts, reached within a bounded time, one line
for each way it can fail, and TLS with a CA, a certificate and a key that the test makes
as a user would (files), given on the command line or through Dask's configuration."""

import datetime
import http.server
import ipaddress
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import dask
import pytest

from pipeline.errors import UserError
from sweep import cluster
from sweep.cluster import TlsFiles

pytestmark = pytest.mark.network

TIMEOUT = 1.0  # seconds: every server here is on 127.0.0.1


@dataclass(frozen=True)
class Certificates:
    """A CA, and a certificate and key that it signed for 127.0.0.1, as PEM files; and
    another CA, that signed nothing of this cluster's."""

    ca_file: Path
    cert: Path
    key: Path
    other_ca_file: Path

    def options(self) -> list[str]:
        return ["--tls-ca-file", str(self.ca_file), "--tls-cert", str(self.cert)] + [
            "--tls-key",
            str(self.key),
        ]


def write_certificates(folder: Path) -> Certificates:
    """What ``openssl req -x509`` and ``openssl x509 -req -CA`` make, with ``cryptography``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def build(subject, issuer, public_key, signing_key, ca: bool):
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            usage = dict(key_cert_sign=True, crl_sign=True, digital_signature=False)
        else:
            usage = dict(key_cert_sign=False, crl_sign=False, digital_signature=True)
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        builder = builder.add_extension(
            x509.KeyUsage(
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
                **usage,
            ),
            critical=True,
        )
        return builder.sign(signing_key, hashes.SHA256())

    def pem(certificate) -> bytes:
        return certificate.public_bytes(serialization.Encoding.PEM)

    ca_key, other_key, key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = build("sweep test CA", "sweep test CA", ca_key.public_key(), ca_key, ca=True)
    other = build("another CA", "another CA", other_key.public_key(), other_key, ca=True)
    cert = build("sweep test cluster", "sweep test CA", key.public_key(), ca_key, ca=False)
    found = Certificates(
        folder / "ca.pem", folder / "cert.pem", folder / "key.pem", folder / "other-ca.pem"
    )
    found.ca_file.write_bytes(pem(ca))
    found.other_ca_file.write_bytes(pem(other))
    found.cert.write_bytes(pem(cert))
    found.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    found.key.chmod(0o600)
    return found


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Certificates:
    return write_certificates(tmp_path_factory.mktemp("tls"))


def scheduler_in_process(protocol: str, certificates: Certificates | None = None):
    """A Dask scheduler in this process, with no worker: cheap, and enough to connect to."""
    from distributed import LocalCluster
    from distributed.security import Security

    security = None
    if certificates:
        security = Security(
            tls_ca_file=str(certificates.ca_file),
            tls_scheduler_cert=str(certificates.cert),
            tls_scheduler_key=str(certificates.key),
            tls_client_cert=str(certificates.cert),
            tls_client_key=str(certificates.key),
            require_encryption=True,
        )
    return LocalCluster(
        n_workers=0,
        processes=False,
        protocol=protocol,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        security=security,
    )


@pytest.fixture(scope="module")
def tls_scheduler(certificates):
    with scheduler_in_process("tls", certificates) as local:
        yield local.scheduler_address


@pytest.fixture(scope="module")
def tcp_scheduler():
    with scheduler_in_process("tcp") as local:
        yield local.scheduler_address


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_server():
    """A TCP server that accepts every connection and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def accept():
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for connection in accepted:
        connection.close()


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    server.RequestHandlerClass.log_message = lambda *args: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


NO_TLS_FILES = TlsFiles()


def reach(address: str, tls: TlsFiles = NO_TLS_FILES, cwd: Path = Path("/")) -> None:
    cluster.probe(cluster.scheduler(address, tls, TIMEOUT, cwd))


def one_line_error(address: str, tls: TlsFiles = NO_TLS_FILES, cwd: Path = Path("/")) -> str:
    with pytest.raises(UserError) as raised:
        reach(address, tls, cwd)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_a_closed_port_is_one_line_at_once(closed_port):
    assert one_line_error(f"tcp://127.0.0.1:{closed_port}") == (
        f"--scheduler tcp://127.0.0.1:{closed_port}: cannot connect (Connection refused): is"
        " the Dask scheduler running, on that port?"
    )


def test_a_server_that_never_answers_is_one_line_after_the_timeout(silent_server):
    assert one_line_error(f"127.0.0.1:{silent_server}") == (
        f"--scheduler tcp://127.0.0.1:{silent_server}: no Dask scheduler answered within 1 s"
        f" (is {silent_server} the scheduler's port, not its dashboard's?); --connect-timeout"
        " to wait longer"
    )


def test_an_http_server_is_one_line(http_server, certificates):
    message = one_line_error(f"tcp://127.0.0.1:{http_server}")
    assert message.startswith(f"--scheduler tcp://127.0.0.1:{http_server}: ")
    assert "Dask scheduler" in message
    files = TlsFiles(str(certificates.ca_file), str(certificates.cert), str(certificates.key))
    message = one_line_error(f"tls://127.0.0.1:{http_server}", files)
    assert message.startswith(f"--scheduler tls://127.0.0.1:{http_server}: TLS failed (")


@pytest.mark.parametrize(
    "address, message",
    [
        (
            "foo://h:1",
            "--scheduler foo://h:1: unknown scheme 'foo'; expected tcp://HOST:PORT, or"
            " tls://HOST:PORT for a cluster that uses TLS",
        ),
        ("tcp://h:99999", "--scheduler tcp://h:99999: expected tcp://HOST:PORT or tls://HOST:PORT"),
        (
            "tcp://u:pw@h:1",
            "--scheduler tcp://***@h:1: expected tcp://HOST:PORT or tls://HOST:PORT",
        ),
        ("tcp://", "--scheduler tcp://: expected tcp://HOST:PORT or tls://HOST:PORT"),
    ],
)
def test_an_address_that_is_not_a_schedulers_is_refused_before_connecting(address, message):
    with pytest.raises(UserError) as raised:
        cluster.scheduler(address, TlsFiles(), TIMEOUT, Path("/"))
    assert str(raised.value) == message


def test_a_scheduler_answers(tcp_scheduler):
    reach(tcp_scheduler)


def test_tls_with_the_files_on_the_command_line(tls_scheduler, certificates):
    relative = TlsFiles("ca.pem", "cert.pem", "key.pem")
    reach(tls_scheduler, relative, cwd=certificates.ca_file.parent)


def test_tls_with_dasks_configuration(tls_scheduler, certificates):
    with dask.config.set(
        {
            "distributed.comm.tls.ca-file": str(certificates.ca_file),
            "distributed.comm.tls.client.cert": str(certificates.cert),
            "distributed.comm.tls.client.key": str(certificates.key),
        }
    ):
        reach(tls_scheduler)
        # The command line wins over the configuration.
        other = TlsFiles(ca_file=str(certificates.other_ca_file))
        assert "TLS failed" in one_line_error(tls_scheduler, other)


def test_tls_mistakes_are_one_line(tls_scheduler, certificates, tmp_path):
    files = TlsFiles(str(certificates.ca_file), str(certificates.cert), str(certificates.key))
    other_ca = TlsFiles(str(certificates.other_ca_file), files.cert, files.key)
    assert one_line_error(tls_scheduler, other_ca) == (
        f"--scheduler {tls_scheduler}: TLS failed (CERTIFICATE_VERIFY_FAILED): check that it is"
        " the cluster's tls:// address, and that --tls-ca-file is the CA that signed the"
        " cluster's certificates"
    )
    plain = tls_scheduler.replace("tls://", "tcp://")
    assert one_line_error(plain) == (
        f"--scheduler {plain}: the server closed the connection without answering as a Dask"
        " scheduler (a tls:// scheduler, addressed as tcp://?)"
    )
    assert one_line_error(tls_scheduler).startswith(
        "a tls:// scheduler needs the cluster's CA and a client certificate: give --tls-ca-file"
    )
    assert one_line_error(tls_scheduler, TlsFiles("ca.pem", "cert.pem"), cwd=tmp_path) == (
        f"--tls-ca-file ca.pem: no such file, relative to {tmp_path}"
    )
    assert one_line_error(plain, files) == (
        "--tls-ca-file, --tls-cert, --tls-key given, but --scheduler is tcp://: give its tls://"
        " address"
    )
    (tmp_path / "empty.pem").write_text("")
    message = one_line_error(tls_scheduler, TlsFiles(files.ca_file, str(tmp_path / "empty.pem")))
    assert message.startswith("cannot load the TLS files (CA ")


def test_plain_tcp_to_another_host_gets_one_line_and_carries_no_secret(caplog):
    far = cluster.scheduler("tcp://10.1.2.3:8786", TlsFiles(), TIMEOUT, Path("/"))
    cluster.warn_if_plain(far, [])
    assert caplog.messages == [
        "warning: tcp://10.1.2.3:8786 is not encrypted: the tasks cross the network in the"
        " clear, and anyone who reaches the scheduler can run code on the workers; use tls://"
        " (docs/sweeps.md)"
    ]
    with pytest.raises(UserError, match="^--env values would cross the network unencrypted"):
        cluster.warn_if_plain(far, ["--env values"])
    caplog.clear()
    for near in ("tcp://127.0.0.1:8786", "tcp://localhost:1", "tcp://[::1]:8786"):
        cluster.warn_if_plain(cluster.scheduler(near, TlsFiles(), 1, Path("/")), ["--env values"])
    assert caplog.messages == []
