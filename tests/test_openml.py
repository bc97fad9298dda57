"""``data.source: openml``: fetch_openml("mnist_784") against a fake OpenML on 127.0.0.1.

scikit-learn builds its OpenML URLs from the constants ``_SEARCH_NAME``, ``_DATA_INFO``,
``_DATA_FEATURES`` and ``_DATA_QUALITIES`` of ``sklearn.datasets._openml``, and takes the
ARFF file's URL from the data set's description; the tests point all of them at a
``LocalServer`` that serves a tiny ``mnist_784`` built from the tiny IDX mirror.
"""

import dataclasses
import gzip
import hashlib
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import _openml

from pipeline import datasets, download, openml
from pipeline.errors import UserError
from pipeline.mirrors import fetch
from pipeline.settings import Settings
from tests.conftest import FILES, N_TRAIN
from tests.local_http import LocalServer, Reply

# scikit-learn warns as it retries; the tests assert what comes out in the end.
pytestmark = [
    pytest.mark.usefixtures("offline"),
    pytest.mark.filterwarnings(
        "ignore:A network error occurred:UserWarning", "ignore:Invalid cache:RuntimeWarning"
    ),
]

DATA_ID = 554
SEARCH = "/api/v1/json/data/list/data_name/mnist_784/limit/2/data_version/1"
INFO = f"/api/v1/json/data/{DATA_ID}"
FEATURES = f"/api/v1/json/data/features/{DATA_ID}"
QUALITIES = f"/api/v1/json/data/qualities/{DATA_ID}"
ARFF = "/data/v1/download/52667/mnist_784.arff"


def arff_text(pixels: np.ndarray, labels: list[str], classes: str = "0,1,2,3,4,5,6,7,8,9") -> bytes:
    """mnist_784's ARFF layout: 784 numeric pixel columns, then the nominal class."""
    header = ["@RELATION mnist_784", ""]
    header += [f"@ATTRIBUTE pixel{i} NUMERIC" for i in range(1, 785)]
    header += [f"@ATTRIBUTE class {{{classes}}}", "", "@DATA"]
    rows = [
        ",".join([*map(str, row), label])
        for row, label in zip(pixels.tolist(), labels, strict=True)
    ]
    return ("\n".join(header + rows) + "\n").encode()


def openml_routes(base: str, arff: bytes, n_rows: int) -> dict[str, bytes]:
    """The five responses that fetch_openml("mnist_784", version=1) asks for."""
    features = [
        {
            "index": str(i),
            "name": f"pixel{i + 1}",
            "data_type": "numeric",
            "is_target": "false",
            "is_ignore": "false",
            "is_row_identifier": "false",
            "number_of_missing_values": "0",
        }
        for i in range(784)
    ]
    features.append(
        {
            "index": "784",
            "name": "class",
            "data_type": "nominal",
            "nominal_value": [str(digit) for digit in range(10)],
            "is_target": "true",
            "is_ignore": "false",
            "is_row_identifier": "false",
            "number_of_missing_values": "0",
        }
    )
    description = {
        "id": str(DATA_ID),
        "name": "mnist_784",
        "version": "1",
        "description": "A tiny stand-in for MNIST",
        "format": "ARFF",
        "url": base.rstrip("/") + ARFF,
        "file_id": "52667",
        "default_target_attribute": "class",
        "status": "active",
        "md5_checksum": hashlib.md5(arff).hexdigest(),
    }
    found = {"did": DATA_ID, "name": "mnist_784", "version": 1, "status": "active"}
    quality = {"name": "NumberOfInstances", "value": f"{n_rows}.0"}
    responses = {
        SEARCH: {"data": {"dataset": [found]}},
        INFO: {"data_set_description": description},
        FEATURES: {"data_features": {"feature": features}},
        QUALITIES: {"data_qualities": {"quality": [quality]}},
    }
    return {path: json.dumps(body).encode() for path, body in responses.items()} | {ARFF: arff}


def mnist_784(tiny) -> tuple[np.ndarray, list[str]]:
    """The tiny mirror's digits as OpenML holds MNIST: training rows first, flat pixels."""
    images = np.concatenate([tiny.train_images, tiny.test_images])
    labels = np.concatenate([tiny.train_labels, tiny.test_labels])
    return images.reshape(len(images), 784), [str(label) for label in labels]


def publish(server: LocalServer, pixels: np.ndarray, labels: list[str], **arff) -> None:
    """Serve ``pixels`` and ``labels`` as the fake OpenML's mnist_784."""
    base = f"http://127.0.0.1:{server.server_port}/"
    for path, body in openml_routes(base, arff_text(pixels, labels, **arff), len(pixels)).items():
        server.routes[path] = [Reply(body=body)]


def point_sklearn_at(monkeypatch, base: str) -> None:
    """Make fetch_openml ask ``base`` instead of https://www.openml.org/."""
    for name, path in (
        ("_SEARCH_NAME", "api/v1/json/data/list/data_name/{}/limit/2"),
        ("_DATA_INFO", "api/v1/json/data/{}"),
        ("_DATA_FEATURES", "api/v1/json/data/features/{}"),
        ("_DATA_QUALITIES", "api/v1/json/data/qualities/{}"),
    ):
        monkeypatch.setattr(_openml, name, base + path)


@pytest.fixture
def fake_openml(server, mnist_env, monkeypatch):
    """A ``LocalServer`` serving the tiny mirror's digits as mnist_784 version 1."""
    point_sklearn_at(monkeypatch, f"http://127.0.0.1:{server.server_port}/")
    publish(server, *mnist_784(mnist_env))
    # The tiny data set, as if it were on OpenML as mnist_784: it splits after its 60
    # training digits, as MNIST does after 60000.
    tiny = datasets.from_checksums(mnist_env.checksums)
    labels = dataclasses.replace(tiny.train_labels, content_bytes=8 + N_TRAIN)
    server.dataset = dataclasses.replace(tiny, openml=datasets.MNIST.openml, train_labels=labels)
    return server


def cache_root() -> Path:
    """The download cache that the environment names (the mnist_env fixture's)."""
    return Settings.from_environ(os.environ).cache_root


def load_openml(fake: LocalServer):
    return openml.load_openml(fake.dataset, cache_root())


@pytest.mark.network
def test_openml_gives_the_bytes_of_the_idx_files(fake_openml, mnist_env):
    from_openml = load_openml(fake_openml)
    from_idx = fetch(fake_openml.dataset, Settings.from_environ(os.environ))
    for openml_split, idx_split in zip(from_openml, from_idx, strict=True):
        for ours, theirs in (
            (openml_split.images, idx_split.images),
            (openml_split.labels, idx_split.labels),
        ):
            assert (ours.dtype, ours.shape) == (theirs.dtype, theirs.shape)
            assert ours.tobytes() == theirs.tobytes()
    assert [split.images.shape for split in from_openml] == [(60, 28, 28), (20, 28, 28)]
    assert fake_openml.requests == [SEARCH, INFO, FEATURES, QUALITIES, ARFF]
    assert socket.getdefaulttimeout() is None  # the timeout was set for the call only


def test_openml_serves_mnist_only(mnist_env, tmp_path):
    # The tiny data set is not MNIST: OpenML's mnist_784 cannot be it, and nothing is fetched.
    tiny = datasets.from_checksums(mnist_env.checksums)
    with pytest.raises(UserError) as caught:
        openml.load_openml(tiny, tmp_path / "cache")
    assert str(caught.value) == (
        "data.source: openml serves MNIST only, and data/mnist.sha256 names another data set:"
        " use data.source: idx with MNIST_MIRROR"
    )
    assert not (tmp_path / "cache").exists()


@pytest.mark.network
def test_rerun_reads_scikit_learns_cache(fake_openml, mnist_env):
    first = load_openml(fake_openml)
    fake_openml.routes.clear()
    fake_openml.requests.clear()
    second = load_openml(fake_openml)
    assert fake_openml.requests == []
    for before, after in zip(first, second, strict=True):
        np.testing.assert_array_equal(after.images, before.images)
        np.testing.assert_array_equal(after.labels, before.labels)


def _gzip_cut_short(arff: bytes) -> list[Reply]:
    squeezed = gzip.compress(arff, mtime=0)
    return [Reply(body=squeezed[: len(squeezed) // 2], headers=(("Content-Encoding", "gzip"),))]


# No full stop: the runner may go on after it ("; DVC removed ..."), which gave ".;".
OFFLINE_HINT = r"(?<!\.); use data\.source: idx with MNIST_MIRROR for an offline copy$"


@pytest.mark.network
@pytest.mark.parametrize(
    ("path", "replies", "reason", "expected_waits"),
    [
        pytest.param(
            SEARCH,
            lambda body: [Reply(status=404)],
            "HTTPError: HTTP Error 404: Not Found",
            [1.0, 1.0, 1.0],
            id="404",
        ),
        pytest.param(
            ARFF,
            lambda body: [Reply(status=500)],
            "HTTPError: HTTP Error 500: Internal Server Error",
            [1.0, 1.0, 1.0],
            id="500",
        ),
        pytest.param(
            SEARCH,
            lambda body: [Reply(status=412)],
            "OpenMLError: Dataset mnist_784 with version 1 not found",
            [],
            id="412-not-found",
        ),
        pytest.param(
            INFO,
            lambda body: [Reply(body=b"<html>maintenance</html>")],
            r"JSONDecodeError: Expecting value: line 1 column 1 \(char 0\)",
            [],
            id="not-json",
        ),
        pytest.param(
            ARFF,
            lambda body: [Reply(body=body.replace(b"mnist_784", b"mnist_785", 1))],
            r"ValueError: The md5 checksum of the file downloaded from http://127\.0\.0\.1:\d+"
            rf"{ARFF} and cached at .+ does not match the expected checksum",
            [],
            id="md5-mismatch",
        ),
        pytest.param(
            ARFF,
            lambda body: [Reply(body=body[:1000], length=len(body))],
            "ValueError: The md5 checksum of the file downloaded from",
            [],
            id="connection-cut",
        ),
        pytest.param(
            ARFF,
            _gzip_cut_short,
            "EOFError: Compressed file ended before the end-of-stream marker was reached",
            [],
            id="gzip-cut-short",
        ),
        pytest.param(
            SEARCH,
            lambda body: [Reply(raw=b"SSH-2.0-OpenSSH_9.6\r\n")],
            "BadStatusLine: SSH-2.0-OpenSSH_9.6",
            [],
            id="not-http",
        ),
    ],
)
def test_openml_failures(fake_openml, waits, path, replies, reason, expected_waits):
    fake_openml.routes[path] = replies(fake_openml.routes[path][0].body)
    # After a 412 scikit-learn looks for a deactivated version too.
    fake_openml.routes[SEARCH + "/status/deactivated"] = fake_openml.routes[SEARCH]
    message = f"^could not fetch mnist_784 \\(version 1\\) from OpenML: {reason}.*{OFFLINE_HINT}"
    with pytest.raises(UserError, match=message):
        load_openml(fake_openml)
    # A second run meets whatever the first left in scikit-learn's cache, and says the same.
    with pytest.raises(UserError, match=message):
        load_openml(fake_openml)
    assert waits == expected_waits * 2
    assert socket.getdefaulttimeout() is None


@pytest.mark.network
def test_openml_connection_refused(fake_openml, refused_url, waits, monkeypatch):
    point_sklearn_at(monkeypatch, refused_url)
    reason = r"URLError: <urlopen error \[Errno 111\] Connection refused>"
    with pytest.raises(UserError, match=f"from OpenML: {reason}{OFFLINE_HINT}"):
        load_openml(fake_openml)
    assert waits == [1.0, 1.0, 1.0]


@pytest.mark.network
def test_openml_timeout(fake_openml, waits, monkeypatch):
    monkeypatch.setattr(download, "TIMEOUT_SECONDS", 0.2)
    fake_openml.routes[ARFF] = [Reply(body=b"x" * 100, stall=True)]
    with pytest.raises(UserError, match=f"from OpenML: TimeoutError: timed out{OFFLINE_HINT}"):
        load_openml(fake_openml)
    assert waits == []  # scikit-learn retries a stalled body once, without waiting
    assert socket.getdefaulttimeout() is None


def _change_pixel(pixels, labels):
    pixels = pixels.copy()
    pixels[70, 400] ^= 1
    return pixels, labels


def _swap_labels(pixels, labels):
    return pixels, [labels[1], labels[0], *labels[2:]]


@pytest.mark.network
@pytest.mark.parametrize(
    ("change", "differing"),
    [
        pytest.param(_change_pixel, FILES[2], id="a-test-pixel"),
        pytest.param(_swap_labels, FILES[1], id="two-training-labels"),
        pytest.param(lambda pixels, labels: (pixels[:-1], labels[:-1]), FILES[2], id="a-row-less"),
        pytest.param(lambda pixels, labels: (pixels[::-1], labels[::-1]), FILES[0], id="order"),
    ],
)
def test_openml_data_that_differs_from_the_idx_files(fake_openml, mnist_env, change, differing):
    publish(fake_openml, *change(*mnist_784(mnist_env)))
    expected = datasets.read_checksums(mnist_env.checksums)[differing]
    with pytest.raises(
        UserError,
        match=f"^the data differs from {differing}: expected sha256 {expected}"
        " of its IDX content, got [0-9a-f]{64}$",
    ):
        load_openml(fake_openml)


@pytest.mark.network
def test_openml_pixels_that_are_not_whole(fake_openml, mnist_env):
    pixels, labels = mnist_784(mnist_env)
    pixels = pixels.astype(np.float64)
    pixels[0, 5] += 0.5
    publish(fake_openml, pixels, labels)
    expected = "^OpenML mnist_784: expected whole pixel values in 784 columns$"
    with pytest.raises(UserError, match=expected):
        load_openml(fake_openml)


@pytest.mark.network
def test_openml_labels_that_are_not_digits(fake_openml, mnist_env):
    pixels, labels = mnist_784(mnist_env)
    publish(fake_openml, pixels, ["x", *labels[1:]])
    # The ARFF header declares the classes 0-9, so the parser itself refuses the "x".
    with pytest.raises(
        UserError, match=r"^could not fetch mnist_784 \(version 1\) from OpenML: BadNominalValue"
    ):
        load_openml(fake_openml)


@pytest.mark.network
def test_openml_classes_that_are_not_digits(fake_openml, mnist_env):
    pixels, labels = mnist_784(mnist_env)
    publish(fake_openml, pixels, ["x", *labels[1:]], classes="x,0,1,2,3,4,5,6,7,8,9")
    with pytest.raises(UserError, match=r"^OpenML mnist_784: expected digit labels, got \['0' '1'"):
        load_openml(fake_openml)
