"""Getting the four MNIST files: mirrors, cache, retries, verification and IDX checks.

Network tests talk to a threaded ``http.server`` that the tests start on 127.0.0.1;
``PUBLIC_MIRRORS`` is emptied (or pointed at that server) in every test, so nothing
here reaches the internet.
"""

import gzip
import io
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from stages import download, mnist, paths
from stages.errors import UserError
from tests.conftest import FILES, idx, write_mirror
from tests.local_http import Reply

pytestmark = pytest.mark.usefixtures("offline")

ROOT = Path(__file__).resolve().parent.parent
TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = FILES


def load_idx(checksums: Path, *mirrors: str) -> tuple[mnist.Split, mnist.Split]:
    """``mnist.load_idx`` from ``mirrors``, with the cache of the environment."""
    return mnist.load_idx(list(mirrors), mnist.default_cache_dir(), mnist.read_checksums(checksums))


def assert_same_arrays(splits: tuple[mnist.Split, mnist.Split], tiny) -> None:
    train, test = splits
    for array, expected in (
        (train.images, tiny.train_images),
        (train.labels, tiny.train_labels),
        (test.images, tiny.test_images),
        (test.labels, tiny.test_labels),
    ):
        assert array.dtype == np.uint8
        np.testing.assert_array_equal(array, expected)


def cache_listing() -> list[str]:
    """Every file in the cache folder, temporary ones included."""
    cache = mnist.default_cache_dir()
    return sorted(path.name for path in cache.iterdir()) if cache.exists() else []


# How a mirror can spoil a file (``good`` is its gzip bytes), and what the code then says.
def _truncated(good: bytes) -> bytes:
    return good[: len(good) // 2]


def _not_gzip(good: bytes) -> bytes:
    return b"<html>Moved to a new home</html>"


def _other_content(good: bytes) -> bytes:
    content = bytearray(gzip.decompress(good))
    content[-1] ^= 0xFF
    return gzip.compress(bytes(content), mtime=0)


SPOILS = {
    "truncated": (_truncated, r"truncated gzip \(the file ends before the gzip stream does\)"),
    "not-gzip": (_not_gzip, r"not a valid gzip file \(Not a gzipped file \(b'<h'\)\)"),
    "checksum": (
        _other_content,
        r"checksum mismatch: expected sha256 [0-9a-f]{64} of the decompressed content,"
        r" got [0-9a-f]{64}",
    ),
}
SPOILED = [pytest.param(spoil, reason, id=name) for name, (spoil, reason) in SPOILS.items()]


# --- the list of mirrors, the cache folder and the checksums ----------------------------


def public_mirrors(monkeypatch, *urls: str) -> None:
    """Make ``urls`` the public mirrors, and switch them on."""
    monkeypatch.setattr(mnist, "PUBLIC_MIRRORS", urls)
    monkeypatch.setenv("MNIST_PUBLIC_MIRRORS", "on")


def test_mnist_mirror_comes_before_the_public_mirrors(monkeypatch):
    public_mirrors(monkeypatch, "https://a.example/", "https://b.example/")
    assert mnist.mirrors_from_env() == ["https://a.example/", "https://b.example/"]
    monkeypatch.setenv("MNIST_MIRROR", " /data/mnist ")
    assert mnist.mirrors_from_env() == ["/data/mnist", "https://a.example/", "https://b.example/"]


@pytest.mark.parametrize("value", ["off", "OFF", "0", "no", "false"])
def test_public_mirrors_have_an_off_switch(monkeypatch, value):
    public_mirrors(monkeypatch, "https://a.example/")
    monkeypatch.setenv("MNIST_PUBLIC_MIRRORS", value)
    assert mnist.mirrors_from_env() == []
    monkeypatch.setenv("MNIST_MIRROR", "/data/mnist")
    assert mnist.mirrors_from_env() == ["/data/mnist"]


def test_no_mirror_at_all_says_so(mnist_env, monkeypatch):
    monkeypatch.delenv("MNIST_MIRROR")
    with pytest.raises(
        UserError,
        match=r"^no mirror to get train-images-idx3-ubyte.gz from: MNIST_PUBLIC_MIRRORS is off",
    ):
        load_idx(mnist_env.checksums, *mnist.mirrors_from_env())


def test_cache_folder_comes_from_mnist_cache_else_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert mnist.default_cache_dir() == tmp_path / "xdg" / "mnist-mlp"
    monkeypatch.setenv("MNIST_CACHE", str(tmp_path / "mine"))
    assert mnist.default_cache_dir() == tmp_path / "mine"


def test_checksums_file_in_sha256sum_format(tmp_path):
    sums = tmp_path / "SHA256SUMS"
    sums.write_text("# Fashion-MNIST\n" + "".join(f"{'AB' * 32} *{name}\n" for name in FILES))
    assert mnist.read_checksums(sums) == {name: "ab" * 32 for name in FILES}


def test_committed_checksums_are_the_shared_mirrors_published_ones():
    published = ROOT.parent / "shared" / "mnist" / "SHA256SUMS-decompressed"
    if not published.exists():
        pytest.skip(f"no {published}")
    assert mnist.read_checksums(paths.PROJECT.checksums) == mnist.read_checksums(published)


def test_checksums_file_that_misses_a_file(tmp_path):
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{'0' * 64}  {TRAIN_IMAGES}\n")
    missing = f"{TRAIN_LABELS}, {TEST_IMAGES}, {TEST_LABELS}"
    with pytest.raises(UserError) as caught:
        mnist.read_checksums(sums)
    assert str(caught.value) == f"{sums} has no checksum for {missing}"


def test_checksums_file_that_does_not_exist(tmp_path):
    with pytest.raises(UserError, match=r"nowhere: cannot read the data set's checksums \(No such"):
        mnist.read_checksums(tmp_path / "nowhere")


def test_the_retired_checksums_variable_is_refused_not_ignored(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_CHECKSUMS", str(tmp_path / "SHA256SUMS"))
    with pytest.raises(UserError, match=r"^MNIST_CHECKSUMS is no longer read: write the checksums"):
        mnist.read_checksums(paths.PROJECT.checksums)


# --- a folder mirror -------------------------------------------------------------------


def test_folder_mirror_gives_the_arrays_of_its_files(mnist_env):
    splits = load_idx(mnist_env.checksums, *mnist.mirrors_from_env())
    assert_same_arrays(splits, mnist_env)
    assert [split.images.shape for split in splits] == [(60, 28, 28), (20, 28, 28)]
    assert cache_listing() == []  # a local folder is read in place, not copied


def test_missing_mirror_folder(mnist_env, monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_MIRROR", str(tmp_path / "nowhere"))
    with pytest.raises(UserError) as caught:
        load_idx(mnist_env.checksums, *mnist.mirrors_from_env())
    assert str(caught.value) == (
        f"could not get a verified {TRAIN_IMAGES} from any mirror:\n"
        f"  {tmp_path / 'nowhere'}: no such folder\n"
        "Set MNIST_MIRROR to a folder or URL that serves the four MNIST files and run again."
    )


def test_file_missing_on_a_folder_mirror(mnist_env):
    (mnist_env.folder / TEST_LABELS).unlink()
    folder = re.escape(str(mnist_env.folder))
    expected = f"{TEST_LABELS} from any mirror:\n  {folder}: file not found\n"
    with pytest.raises(UserError, match=expected):
        load_idx(mnist_env.checksums, str(mnist_env.folder))


@pytest.mark.parametrize(("spoil", "reason"), SPOILED)
def test_spoiled_file_on_a_folder_mirror(mnist_env, spoil, reason):
    path = mnist_env.folder / TRAIN_LABELS
    path.write_bytes(spoil(path.read_bytes()))
    folder = re.escape(str(mnist_env.folder))
    with pytest.raises(UserError, match=f"{TRAIN_LABELS} from any mirror:\n  {folder}: {reason}\n"):
        load_idx(mnist_env.checksums, str(mnist_env.folder))


def _with(name: str, content: bytes):
    return lambda contents: {**contents, name: content}


def _label_at(index: int, value: int):
    def change(contents):
        labels = np.frombuffer(contents[TRAIN_LABELS], np.uint8, offset=8).copy()
        labels[index] = value
        return {**contents, TRAIN_LABELS: idx(labels)}

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            lambda c: {**c, TRAIN_IMAGES: b"\0\0\x09\x03" + c[TRAIN_IMAGES][4:]},
            rf"^{TRAIN_IMAGES}: not an IDX file of unsigned bytes \(magic number 00000903,"
            r" expected 000008xx\)$",
            id="magic-number",
        ),
        pytest.param(
            _with(TRAIN_IMAGES, b""),
            rf"^{TRAIN_IMAGES}: not an IDX file of unsigned bytes \(magic number missing,",
            id="empty",
        ),
        pytest.param(
            _with(TRAIN_IMAGES, b"\0\0\x08\x03\0\0\0\x3c"),
            rf"^{TRAIN_IMAGES}: IDX header cut short \(8 bytes, expected 16\)$",
            id="header-cut-short",
        ),
        pytest.param(
            lambda c: {**c, TRAIN_IMAGES: c[TRAIN_IMAGES][:-1]},
            rf"^{TRAIN_IMAGES}: IDX header says shape \(60, 28, 28\) \(47040 bytes of data\),"
            r" but the file holds 47039$",
            id="data-cut-short",
        ),
        pytest.param(
            _with(TEST_IMAGES, idx(np.zeros((20, 28, 27), np.uint8))),
            rf"^{TEST_IMAGES}: expected images of shape \(n, 28, 28\), got \(20, 28, 27\)$",
            id="image-size",
        ),
        pytest.param(
            _with(TEST_LABELS, idx(np.zeros((20, 1), np.uint8))),
            rf"^{TEST_LABELS}: expected a vector of labels, got shape \(20, 1\)$",
            id="labels-not-a-vector",
        ),
        pytest.param(
            _label_at(7, 12),
            rf"^{TRAIN_LABELS}: label 12 at index 7 is outside 0-9$",
            id="label-12",
        ),
        pytest.param(
            _label_at(59, 255),
            rf"^{TRAIN_LABELS}: label 255 at index 59 is outside 0-9$",
            id="label-255",
        ),
        pytest.param(
            _with(TEST_LABELS, idx(np.zeros(19, np.uint8))),
            rf"^{TEST_IMAGES} holds 20 images but {TEST_LABELS} 19 labels$",
            id="counts-disagree",
        ),
    ],
)
def test_verified_files_that_are_not_mnist(tiny_mirror, monkeypatch, tmp_path, change, message):
    # The checksums match the bad content, as with a mistaken data/mnist.sha256: the IDX
    # checks are what stands between such files and the training stage.
    arrays = (
        tiny_mirror.train_images,
        tiny_mirror.train_labels,
        tiny_mirror.test_images,
        tiny_mirror.test_labels,
    )
    contents = change({name: idx(array) for name, array in zip(FILES, arrays, strict=True)})
    sums = write_mirror(tmp_path / "bad", contents)
    monkeypatch.setenv("MNIST_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError, match=message):
        load_idx(sums, str(tmp_path / "bad"))


def test_parse_idx_inverts_idx_bytes():
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert mnist.idx_bytes(array) == idx(array)
    np.testing.assert_array_equal(mnist.parse_idx(idx(array), "x"), array)


# --- an HTTP mirror ---------------------------------------------------------------------


@pytest.mark.network
def test_http_mirror_downloads_verifies_and_caches(mnist_env, server, caplog):
    caplog.set_level(logging.INFO, logger="stages")
    url = server.serve_folder("mnist", mnist_env.folder)
    assert_same_arrays(load_idx(mnist_env.checksums, url), mnist_env)
    assert server.requests == [f"/mnist/{name}" for name in FILES]
    assert cache_listing() == sorted(FILES)  # and no temporary file left over
    cache = mnist.default_cache_dir()
    for name in FILES:
        assert (cache / name).read_bytes() == (mnist_env.folder / name).read_bytes()
    size = (mnist_env.folder / TRAIN_IMAGES).stat().st_size
    assert f"downloading {url}{TRAIN_IMAGES} ({size} bytes)" in caplog.messages


@pytest.mark.network
def test_rerun_only_verifies_the_cache(mnist_env, server):
    url = server.serve_folder("mnist", mnist_env.folder)
    load_idx(mnist_env.checksums, url)
    server.routes.clear()
    server.requests.clear()
    assert_same_arrays(load_idx(mnist_env.checksums, url), mnist_env)
    assert server.requests == []


@pytest.mark.network
def test_unusable_cache_file_is_downloaded_again(mnist_env, server, caplog):
    url = server.serve_folder("mnist", mnist_env.folder)
    load_idx(mnist_env.checksums, url)
    cached = mnist.default_cache_dir() / TEST_IMAGES
    cached.write_bytes(b"garbage")
    server.requests.clear()
    assert_same_arrays(load_idx(mnist_env.checksums, url), mnist_env)
    assert server.requests == [f"/mnist/{TEST_IMAGES}"]
    assert cached.read_bytes() == (mnist_env.folder / TEST_IMAGES).read_bytes()
    assert f"cached {cached} is unusable (not a valid gzip file" in caplog.text


@pytest.mark.network
def test_cache_folder_that_cannot_be_created(mnist_env, server, monkeypatch, tmp_path):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("MNIST_CACHE", str(tmp_path / "a-file" / "cache"))
    with pytest.raises(UserError) as caught:
        load_idx(mnist_env.checksums, server.serve_folder("mnist", mnist_env.folder))
    assert str(caught.value) == (
        f"cannot write to the download cache {tmp_path / 'a-file' / 'cache'} (Not a directory);"
        " set MNIST_CACHE to a writable folder"
    )
    assert server.requests == []


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.network
@pytest.mark.parametrize("on_terminal", [True, False], ids=["terminal", "pipe"])
def test_progress_bar_on_a_terminal_log_line_otherwise(
    mnist_env, server, monkeypatch, caplog, on_terminal
):
    caplog.set_level(logging.INFO, logger="stages")
    stderr = _Terminal() if on_terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    load_idx(mnist_env.checksums, server.serve_folder("mnist", mnist_env.folder))
    bars = [line for line in stderr.getvalue().split("\r") if "100%" in line]
    logged = [message for message in caplog.messages if message.startswith("downloading ")]
    if on_terminal:
        assert [bar.split(":")[0] for bar in bars] == list(FILES)
        assert logged == []
    else:
        assert bars == []
        assert len(logged) == 4


def _good(good: bytes) -> list[Reply]:
    return [Reply(body=good)]


@pytest.mark.network
@pytest.mark.parametrize(
    ("replies", "reason", "expected_waits"),
    [
        pytest.param(lambda good: [Reply(status=404)], "HTTP 404 Not Found", [], id="404"),
        pytest.param(lambda good: [Reply(status=403)], "HTTP 403 Forbidden", [], id="403"),
        pytest.param(
            lambda good: [Reply(status=500)],
            r"HTTP 500 Internal Server Error \(after 4 attempts\)",
            [1.0, 2.0, 4.0],
            id="500",
        ),
        pytest.param(
            lambda good: [Reply(body=good[:100], length=len(good))],
            r"connection closed after 100 of \d+ bytes \(after 4 attempts\)",
            [1.0, 2.0, 4.0],
            id="connection-cut",
        ),
        pytest.param(
            lambda good: [Reply(raw=b"SSH-2.0-OpenSSH_9.6\r\n")],
            r"invalid HTTP response \(BadStatusLine: SSH-2.0-OpenSSH_9.6\) \(after 4 attempts\)",
            [1.0, 2.0, 4.0],
            id="not-http",
        ),
        *(
            pytest.param(
                lambda good, spoil=spoil: [Reply(body=spoil(good))], reason, [], id=f"served-{name}"
            )
            for name, (spoil, reason) in SPOILS.items()
        ),
    ],
)
def test_http_mirror_failures(mnist_env, server, waits, replies, reason, expected_waits):
    url = server.serve_folder("mnist", mnist_env.folder)
    good = (mnist_env.folder / TRAIN_IMAGES).read_bytes()
    server.serve("mnist", TRAIN_IMAGES, *replies(good))
    expected = f"^could not get a verified {TRAIN_IMAGES} from any mirror:\n  {re.escape(url)}: "
    with pytest.raises(UserError, match=expected + reason + "\n"):
        load_idx(mnist_env.checksums, url)
    assert waits == expected_waits
    assert server.requests == [f"/mnist/{TRAIN_IMAGES}"] * (len(expected_waits) + 1)
    assert cache_listing() == []  # the failed download left no file, temporary or not


@pytest.mark.network
def test_connection_refused(mnist_env, refused_url, waits):
    expected = rf"\n  {re.escape(refused_url)}: Connection refused \(after 4 attempts\)\n"
    with pytest.raises(UserError, match=expected):
        load_idx(mnist_env.checksums, refused_url)
    assert waits == [1.0, 2.0, 4.0]


def test_unknown_host_is_not_retried(mnist_env, waits, monkeypatch):
    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)  # no lookup leaves the machine
    url = "https://mirror.example.invalid/mnist/"
    expected = rf"\n  {re.escape(url)}: cannot resolve the host \(Name or service not known\)\n"
    with pytest.raises(UserError, match=expected):
        load_idx(mnist_env.checksums, url)
    assert waits == []


@pytest.mark.network
def test_timeout(mnist_env, server, waits, monkeypatch):
    monkeypatch.setattr(download, "TIMEOUT_SECONDS", 0.2)
    url = server.serve_folder("mnist", mnist_env.folder)
    server.serve("mnist", TRAIN_IMAGES, Reply(body=b"x" * 100, stall=True))
    expected = rf"\n  {re.escape(url)}: timed out after 0\.2 s \(after 4 attempts\)\n"
    with pytest.raises(UserError, match=expected):
        load_idx(mnist_env.checksums, url)
    assert waits == [1.0, 2.0, 4.0]
    assert cache_listing() == []


@pytest.mark.network
def test_server_errors_are_retried_until_the_file_comes(mnist_env, server, waits, caplog):
    url = server.serve_folder("mnist", mnist_env.folder)
    good = (mnist_env.folder / TRAIN_IMAGES).read_bytes()
    server.serve("mnist", TRAIN_IMAGES, Reply(status=503), Reply(status=500), Reply(body=good))
    assert_same_arrays(load_idx(mnist_env.checksums, url), mnist_env)
    assert waits == [1.0, 2.0]
    assert server.requests[:3] == [f"/mnist/{TRAIN_IMAGES}"] * 3
    assert [message for message in caplog.messages if "retrying" in message] == [
        f"{url}{TRAIN_IMAGES}: HTTP 503 Service Unavailable; retrying in 1 s",
        f"{url}{TRAIN_IMAGES}: HTTP 500 Internal Server Error; retrying in 2 s",
    ]


@pytest.mark.network
@pytest.mark.parametrize(("spoil", "reason"), SPOILED)
def test_spoiled_download_is_deleted_and_the_next_mirror_tried(
    mnist_env, server, waits, caplog, spoil, reason
):
    bad = server.serve_folder("bad", mnist_env.folder)
    good_bytes = (mnist_env.folder / TRAIN_IMAGES).read_bytes()
    server.serve("bad", TRAIN_IMAGES, Reply(body=spoil(good_bytes)))
    good = server.serve_folder("good", mnist_env.folder)
    assert_same_arrays(load_idx(mnist_env.checksums, bad, good), mnist_env)
    assert server.requests[:2] == [f"/bad/{TRAIN_IMAGES}", f"/good/{TRAIN_IMAGES}"]
    assert waits == []
    assert (mnist.default_cache_dir() / TRAIN_IMAGES).read_bytes() == good_bytes
    assert cache_listing() == sorted(FILES)
    warnings = [message for message in caplog.messages if message.startswith(TRAIN_IMAGES)]
    assert len(warnings) == 1
    assert re.fullmatch(f"{TRAIN_IMAGES} from {re.escape(bad)}: {reason}", warnings[0])


@pytest.mark.network
def test_mirrors_are_tried_in_order(mnist_env, server, monkeypatch):
    first = server.url("first")  # serves nothing: every file is a 404
    second = server.serve_folder("second", mnist_env.folder)
    third = server.serve_folder("third", mnist_env.folder)
    monkeypatch.setenv("MNIST_MIRROR", first)
    public_mirrors(monkeypatch, second, third)
    assert_same_arrays(load_idx(mnist_env.checksums, *mnist.mirrors_from_env()), mnist_env)
    tried = [path for name in FILES for path in (f"/first/{name}", f"/second/{name}")]
    assert server.requests == tried


@pytest.mark.network
def test_every_mirror_failing_lists_each_with_its_reason(
    mnist_env, server, refused_url, waits, monkeypatch, tmp_path
):
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("MNIST_MIRROR", str(missing))
    public_mirrors(monkeypatch, server.url("empty"), refused_url)
    with pytest.raises(UserError) as caught:
        load_idx(mnist_env.checksums, *mnist.mirrors_from_env())
    assert str(caught.value) == (
        f"could not get a verified {TRAIN_IMAGES} from any mirror:\n"
        f"  {missing}: no such folder\n"
        f"  {server.url('empty')}: HTTP 404 Not Found\n"
        f"  {refused_url}: Connection refused (after 4 attempts)\n"
        "Set MNIST_MIRROR to a folder or URL that serves the four MNIST files and run again."
    )
    assert waits == [1.0, 2.0, 4.0]


# --- the command line -------------------------------------------------------------------


@pytest.mark.network
def test_command_line_reports_one_error_and_writes_nothing(server, tmp_path):
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "stages", project / "stages", ignore=ignore)
    for name in ("params.yaml", "requirements.txt", "data/mnist.sha256"):
        (project / name).parent.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, project / name)
    mirror = server.url("mirror")  # serves nothing: every file is a 404
    env = {name: value for name, value in os.environ.items() if not name.startswith("MNIST_")}
    env |= {"MNIST_MIRROR": mirror, "MNIST_PUBLIC_MIRRORS": "off", "no_proxy": "127.0.0.1"}
    env["MNIST_CACHE"] = str(tmp_path / "cache")

    result = subprocess.run(
        [sys.executable, "-m", "stages", "fetch_and_scale"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: could not get a verified {TRAIN_IMAGES} from any mirror:"]
    assert f"\n  {mirror}: HTTP 404 Not Found\nSet MNIST_MIRROR" in result.stderr
    assert "Traceback" not in result.stderr
    assert [p.name for p in (project / "data").iterdir()] == ["mnist.sha256"]
    assert server.requests == [f"/mirror/{TRAIN_IMAGES}"]


# --- hostile mirrors, full disks and leftovers ------------------------------------------


@pytest.mark.network
@pytest.mark.parametrize("declared", [True, False], ids=["with-length", "no-length"])
def test_a_gzip_bomb_is_refused_at_the_size_an_mnist_file_has(mnist_env, server, declared):
    bomb = gzip.compress(b"\0" * 20_000_000, mtime=0)  # 20 KB that expand to 20 MB
    url = server.serve_folder("mnist", mnist_env.folder)
    server.serve("mnist", TRAIN_LABELS, Reply(body=bomb, no_length=not declared))
    cap = mnist.MAX_CONTENT_BYTES[TRAIN_LABELS]
    with pytest.raises(
        UserError, match=rf"\n  {re.escape(url)}: decompresses to more than the {cap} bytes"
    ):
        load_idx(mnist_env.checksums, url)
    assert cache_listing() == [TRAIN_IMAGES]


@pytest.mark.network
@pytest.mark.parametrize("declared", [True, False], ids=["announced", "unannounced"])
def test_a_body_larger_than_the_file_can_be_is_cut_off(mnist_env, server, monkeypatch, declared):
    monkeypatch.setitem(mnist.MAX_CONTENT_BYTES, TRAIN_IMAGES, 50_000)
    url = server.serve_folder("mnist", mnist_env.folder)
    server.serve("mnist", TRAIN_IMAGES, Reply(body=os.urandom(200_000), no_length=not declared))
    limit = 50_000 + 500 + 4096
    expected = (
        rf"the server announces 200000 bytes, more than the {limit} this file can be"
        if declared
        else rf"more than the {limit} bytes this file can be"
    )
    with pytest.raises(UserError, match=rf"\n  {re.escape(url)}: {expected}\n"):
        load_idx(mnist_env.checksums, url)
    assert cache_listing() == []


@pytest.mark.network
def test_a_trickling_server_is_given_up_at_the_deadline_and_the_next_mirror_used(
    mnist_env, server, monkeypatch, caplog
):
    monkeypatch.setenv("MNIST_DOWNLOAD_SECONDS", "1")
    slow = server.serve_folder("slow", mnist_env.folder)
    good = (mnist_env.folder / TRAIN_IMAGES).read_bytes()
    server.serve("slow", TRAIN_IMAGES, Reply(body=good, trickle=0.1))  # 10 bytes a second
    fast = server.serve_folder("fast", mnist_env.folder)
    assert_same_arrays(load_idx(mnist_env.checksums, slow, fast), mnist_env)
    [warning] = [m for m in caplog.messages if m.startswith(f"{TRAIN_IMAGES} from {slow}")]
    assert re.search(
        r": gave up after \d+ bytes: the download's time limit \(MNIST_DOWNLOAD_SECONDS\) ran out$",
        warning,
    )


@pytest.mark.parametrize("value", ["0", "-5", "soon", "nan"])
def test_a_bad_download_time_limit_is_one_message(monkeypatch, value):
    monkeypatch.setenv("MNIST_DOWNLOAD_SECONDS", value)
    with pytest.raises(
        UserError, match=rf"^MNIST_DOWNLOAD_SECONDS={value}: expected a positive number"
    ):
        mnist.download_seconds()


@pytest.mark.network
def test_a_full_disk_is_named_not_blamed_on_the_mirror(
    mnist_env, server, waits, monkeypatch, tmp_path
):
    # /dev/full answers every write with ENOSPC, as a full disk does.
    full = tmp_path / "full.tmp"
    full.symlink_to("/dev/full")
    monkeypatch.setattr("stages.artifacts.temp_beside", lambda target: full)
    url = server.serve_folder("mnist", mnist_env.folder)
    with pytest.raises(UserError) as caught:
        load_idx(mnist_env.checksums, url)
    cache = mnist.default_cache_dir()
    assert str(caught.value) == (
        f"the disk is full: cannot write the download cache {cache} (No space left on device);"
        " free some space, or set MNIST_CACHE to a folder on another disk"
    )
    assert waits == []  # not retried as if the network had failed
    assert server.requests == [f"/mnist/{TRAIN_IMAGES}"]


def test_a_folder_where_a_cached_file_belongs_is_one_message(mnist_env):
    (mnist.default_cache_dir() / TRAIN_IMAGES).mkdir(parents=True)
    with pytest.raises(
        UserError,
        match=r"^the download cache holds a folder .*train-images-idx3-ubyte.gz where a file"
        r" belongs: remove it$",
    ):
        load_idx(mnist_env.checksums, str(mnist_env.folder))


@pytest.mark.network
def test_stale_temporaries_of_killed_downloads_are_removed(mnist_env, server):
    cache = mnist.default_cache_dir()
    cache.mkdir(parents=True)
    stale, live = cache / f".{TRAIN_IMAGES}.dead.tmp", cache / f".{TRAIN_IMAGES}.live.tmp"
    stale.write_bytes(b"half a download")
    live.write_bytes(b"a download under way")
    day_ago = time.time() - 86400
    os.utime(stale, (day_ago, day_ago))
    load_idx(mnist_env.checksums, server.serve_folder("mnist", mnist_env.folder))
    assert not stale.exists()
    assert live.exists()  # younger than a download may take: perhaps another run's


@pytest.mark.network
def test_credentials_in_the_mirror_url_are_sent_but_never_shown(mnist_env, server, caplog):
    url = server.url("private").replace("http://", "http://reader:s3cret@")
    server.serve("private", TRAIN_IMAGES, Reply(status=401))
    with pytest.raises(UserError) as caught:
        load_idx(mnist_env.checksums, url)
    shown = url.replace("reader:s3cret@", "reader:***@")
    assert f"\n  {shown}: HTTP 401" in str(caught.value)
    assert "s3cret" not in str(caught.value) + caplog.text


@pytest.mark.network
def test_url_mirrors_whatever_their_scheme_case_and_query(mnist_env, server):
    for name in FILES:
        body = (mnist_env.folder / name).read_bytes()
        server.routes[f"/signed/{name}?token=abc"] = [Reply(body=body)]
    url = server.url("signed").replace("http://", "HTTP://") + "?token=abc"
    assert_same_arrays(load_idx(mnist_env.checksums, url), mnist_env)
    assert server.requests == [f"/signed/{name}?token=abc" for name in FILES]


def test_a_file_url_is_a_folder_mirror(mnist_env):
    url = mnist_env.folder.as_uri()
    assert url.startswith("file:///")
    assert_same_arrays(load_idx(mnist_env.checksums, url), mnist_env)
    assert cache_listing() == []
