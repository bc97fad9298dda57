"""End to end, on tiny data: ``python -m sweep`` on a local Dask cluster and on a cluster
of separate worker folders sharing through a bare git repository and a DVC remote (a
folder, with TLS, and S3 served by moto on 127.0.0.1), with a worker killed and a
Ctrl-C; and a point that crashes, whose secrets Dask's logs must not show."""

import errno
import functools
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from pipeline import paths
from tests import project
from tests.conftest import Repo, repo_env
from tests.project import hermetic_env
from tests.test_sweep_connect import Certificates, write_certificates
from tests.test_workflows import OFFLINE, experiments, metrics, train_params

pytestmark = pytest.mark.slow

IDENTITY = ("sweep test", "sweep-test@example.invalid")
# Guards against a hung sweep or cluster, far above what the tiny sweeps take.
TIMEOUT_SECONDS = 240
wait_for = functools.partial(project.wait_for, timeout=TIMEOUT_SECONDS)


def make_home(path: Path, identity: tuple[str, str] | None) -> Path:
    """An empty HOME, with a git user when ``identity`` is given."""
    path.mkdir(parents=True)
    if identity:
        (path / ".gitconfig").write_text(
            f"[user]\n\tname = {identity[0]}\n\temail = {identity[1]}\n"
        )
    return path


def hermetic(env: dict[str, str], home: Path) -> dict[str, str]:
    """``env`` with ``home`` for HOME and no system git config: no identity but the test's."""
    return hermetic_env(home, env)


def sweep(repo: Repo, *args: str) -> subprocess.CompletedProcess:
    return repo.run(sys.executable, "-m", "sweep", *args, check=False)


def exp_refs(repo: Repo, git_dir: Path | None = None) -> list[str]:
    where = ["--git-dir", str(git_dir)] if git_dir else []
    return repo.git(*where, "for-each-ref", "--format=%(refname)", "refs/exps").split()


def clones(work_dir: Path) -> list[Path]:
    folder = work_dir / "clones"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def no_dvc_config_but_the_projects(tmp_path: Path) -> dict[str, str]:
    """The environment that keeps the machine's DVC config (system and global) away."""
    return {
        "DVC_GLOBAL_CONFIG_DIR": str(tmp_path / "dvc-global"),
        "DVC_SYSTEM_CONFIG_DIR": str(tmp_path / "dvc-system"),
    }


def forget_remotes(repo: Repo) -> None:
    """Remove the DVC remotes that the copied project holds (the README's Sharing steps
    commit one, named `storage`, maybe with `--local` settings): the tests add their own."""
    from dvc.repo import Repo as DvcRepo

    with DvcRepo(str(repo.root)) as dvc_repo:
        for level in ("repo", "local"):
            with dvc_repo.config.edit(level) as config:
                config.get("remote", {}).clear()
                config.get("core", {}).pop("remote", None)
    if repo.git("status", "--porcelain"):
        repo.git("commit", "-qam", "no DVC remote")


@pytest.fixture
def project(tiny_repo, tmp_path) -> Repo:
    """The tiny project, offline, with a hermetic HOME that has a git user, and no DVC
    remote or DVC config of the machine's."""
    env = tiny_repo.env | OFFLINE | no_dvc_config_but_the_projects(tmp_path)
    tiny_repo.env = hermetic(env, make_home(tmp_path / "home", IDENTITY))
    forget_remotes(tiny_repo)
    return tiny_repo


def test_local_sweep_reports_failed_points_and_a_second_sweep_reuses_the_run_cache(project):
    repo = project
    # A fresh clone: no data, no outputs. The first point on the host fetches the data for all.
    # test_size 1000 passes the params' check, but the tiny data has 80 digits: those
    # points fail as they train.
    first = sweep(
        repo,
        *["-S", "train.max_iter=3,4", "-S", "split.test_size=null,1000"],
        *["--workers", "2", "--name", "a"],
    )
    assert first.returncode == 1, first.stderr
    log = first.stderr
    assert re.search(
        r"(?m)^error: a-2 \(train\.max_iter=3 split\.test_size=1000\): params\.yaml's split"
        r" \(train_size = 60, test_size = 1000\) cannot split the 80 digits of data/images.npy:"
        r" scikit-learn's train_test_split says: test_size=1000 should be",
        log,
    ), log
    assert "a-4 (train.max_iter=4 split.test_size=1000): params.yaml's split (train_s" in log
    assert "2 of 4 points in `dvc exp show`; 2 failed" in log
    # The data stage ran once for the host, not once a point.
    assert len(re.findall(r"ran fetch_and_scale", log)) == 1, log
    assert "Traceback" not in log

    header, *rows = first.stdout.splitlines()
    assert header.split() == [
        "experiment",
        "train.max_iter",
        "split.test_size",
        "train_accuracy",
        "test_accuracy",
        "final_loss",
        "iterations",
    ]
    assert [row.split()[:3] for row in rows] == [["a-1", "3", "-"], ["a-3", "4", "-"]]

    shown = experiments(repo)
    assert set(shown) == {"a-1", "a-3"}
    assert [train_params(shown[n])["max_iter"] for n in ("a-1", "a-3")] == [3, 4]
    assert [metrics(shown[n])["iterations"] for n in ("a-1", "a-3")] == [3, 4]
    assert all(0 <= metrics(shown[n])["test_accuracy"] <= 1 for n in shown)
    assert clones(repo.root / ".dvc/tmp/sweep") == []
    assert repo.git("status", "--porcelain") == ""

    repo.dvc("exp", "apply", "a-3")
    assert "max_iter: 4" in (repo.root / "params.yaml").read_text()
    applied = json.loads((repo.root / "outputs/metrics.json").read_text())
    assert applied == metrics(shown["a-3"])
    repo.git("checkout", "params.yaml", "dvc.lock")

    again = sweep(repo, "-S", "train.max_iter=3,4", "--workers", "8", "--name", "b")
    assert again.returncode == 0, again.stderr
    assert "on 2 local workers: b-1 to b-2" in again.stderr  # one a point, not 8
    assert re.search(r"b-1: done on \S+, ran no stage", again.stderr), again.stderr
    assert re.search(r"b-2: done on \S+, ran no stage", again.stderr), again.stderr
    shown = experiments(repo)
    assert metrics(shown["b-1"]) == metrics(shown["a-1"])
    assert metrics(shown["b-2"]) == metrics(shown["a-3"])

    # The same name again: b-1 has the same params (nothing runs twice), b-2 other ones.
    same = sweep(repo, "-S", "train.max_iter=3,5", "--workers", "2", "--name", "b")
    assert same.returncode == 1, same.stderr
    assert re.search(r"b-1: exists on \S+, ran no stage", same.stderr)
    assert "b-2 (train.max_iter=5): experiment b-2 already exists at" in same.stderr
    assert len([ref for ref in exp_refs(repo) if ref.endswith(("/b-1", "/b-2"))]) == 2
    assert train_params(experiments(repo)["b-2"])["max_iter"] == 4


SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
TOKEN = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"


@contextmanager
def served(folder: Path) -> str:
    """An HTTP server of ``folder`` on 127.0.0.1 (git's "dumb" protocol: clone, no push)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def port_busy(port: int):
    """Hold ``port`` on 127.0.0.1, unless something else holds it already."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen()
    except OSError as exc:
        assert exc.errno == errno.EADDRINUSE
    try:
        yield
    finally:
        sock.close()


@pytest.mark.network
def test_a_crashing_point_leaks_no_secret_and_a_busy_dashboard_port_says_nothing(project, tmp_path):
    repo = project
    # The workers clone from a git URL with a token, through a server that cannot take a
    # push: each attempt of the point trains, then crashes as it pushes. That is when Dask
    # logs the task, its arguments included, once an attempt.
    served_folder = tmp_path / "served"
    origin = served_folder / "origin.git"
    repo.git("init", "-q", "--bare", str(origin))
    repo.git("push", "-q", str(origin), "HEAD")
    repo.git("--git-dir", str(origin), "update-server-info")
    repo.env |= {"AWS_SECRET_ACCESS_KEY": SECRET, "no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}
    with served(served_folder) as host, port_busy(8787):
        url = f"http://sweeper:{TOKEN}@{host}/origin.git"
        run = sweep(
            repo,
            *["-S", "train.max_iter=3", "--workers", "1", "--name", "s"],
            *["--git-url", url, "--env", "AWS_SECRET_ACCESS_KEY"],
        )
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "Compute Failed" in run.stderr  # Dask's log of the task: captured here
    assert SECRET not in output and TOKEN not in output
    assert "Secret('***')" in run.stderr
    assert (
        "error: s-1 (train.max_iter=3): s-1: exit code 2: `dvc exp push` failed on " in run.stderr
    )
    assert f"http://***@{host}/origin.git" in run.stderr
    # Port 8787 was taken: the dashboard is elsewhere, and that is all that is said.
    assert re.search(r"(?m)^Dask dashboard: http://127\.0\.0\.1:(?!8787)\d+/status$", run.stderr)
    assert "UserWarning" not in run.stderr and "already in use" not in run.stderr


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def training(pid: int) -> list[psutil.Process]:
    """The train stages running below process ``pid``."""
    found = []
    for process in descendants(pid):
        try:
            if process.cmdline()[-3:] == ["-m", "stages", "train"]:
                found.append(process)
        except psutil.NoSuchProcess:
            pass
    return found


def test_ctrl_c_stops_the_cluster_and_leaves_no_process_clone_or_ref(project):
    repo = project
    # Two points that would train for ever: both are mid-training when Ctrl-C comes.
    forever = (
        "-S train.random_state=1,2 -S train.max_iter=100000000 -S train.n_iter_no_change=100000000"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "sweep", *forever.split(), "--workers", "2", "--name", "c"],
        cwd=repo.root,
        env=repo.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(lambda: len(training(process.pid)) == 2, "both points to train")
        started = descendants(process.pid)
        os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole foreground group
        _, err = process.communicate(timeout=TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 128 + signal.SIGINT, err
    assert "stopping the sweep" in err and "stopped 2 running point(s)" in err, err
    # Every process it started ends; multiprocessing's resource tracker only once it sees
    # the client gone, so: wait for them, a little.
    _, alive = psutil.wait_procs(started, timeout=30)
    assert alive == [], alive
    assert clones(repo.root / ".dvc/tmp/sweep") == []
    assert exp_refs(repo) == []
    assert "Traceback" not in err


@dataclass
class Cluster:
    address: str
    workers: dict[str, subprocess.Popen]  # the `dask worker` (nanny) processes by name
    homes: dict[str, Path]


@contextmanager
def dask_cluster(
    tmp_path: Path, env: dict[str, str], names=("a", "b"), tls: Certificates | None = None
):
    """``dask scheduler`` and one ``dask worker`` per name, each worker in a folder (and
    HOME) of its own with no git user; with ``tls``, as the README's recipe starts them."""
    dask = str(Path(sys.executable).parent / "dask")
    scheduler_file = tmp_path / "scheduler.json"
    logs = tmp_path / "cluster-logs"
    logs.mkdir()
    processes = []

    def start(
        name: str, args: list[str], cwd: Path, process_env: dict[str, str]
    ) -> subprocess.Popen:
        with open(logs / f"{name}.log", "w") as log:
            process = subprocess.Popen(
                args, cwd=cwd, env=process_env, stdout=log, stderr=subprocess.STDOUT
            )
        processes.append(process)
        return process

    # Both unpickle the sweep's tasks: both import it, from this checkout.
    env = env | {"PYTHONPATH": str(paths.ROOT)}
    tls_options = tls.options() if tls else []
    try:
        scheduler = ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
        scheduler += [*(["--protocol", "tls"] if tls else []), *tls_options]
        scheduler += ["--scheduler-file"]
        start("scheduler", [dask, *scheduler, str(scheduler_file)], tmp_path, env)
        address = wait_for(
            lambda: (
                scheduler_file.is_file()
                and json.loads(scheduler_file.read_text() or "{}").get("address")
            ),
            "the scheduler",
            timeout=60,
        )
        homes, workers = {}, {}
        for name in names:
            homes[name] = make_home(tmp_path / f"worker-{name}", identity=None)
            worker_env = hermetic(env, homes[name])
            worker = ["worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--name", name]
            worker += ["--no-dashboard", *tls_options]
            local = ["--local-directory", str(homes[name] / "dask")]
            workers[name] = start(name, [dask, *worker, *local], homes[name], worker_env)
        from distributed import Client
        from distributed.security import Security

        security = None
        if tls:
            security = Security(
                tls_ca_file=str(tls.ca_file),
                tls_client_cert=str(tls.cert),
                tls_client_key=str(tls.key),
                require_encryption=True,
            )
        with Client(address, timeout=60, security=security) as client:
            client.wait_for_workers(len(names), timeout=60)
        yield Cluster(address, workers, homes)
    finally:
        # Workers first: a worker whose scheduler is gone waits for it before it closes.
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def moto_s3():
    """An S3 endpoint on 127.0.0.1 (moto's server, as dvc-s3's own tests use) with a bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket="sweeps")
    yield endpoint
    server.stop()


S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # the requests to 127.0.0.1 must not go through a proxy of the machine's
    "no_proxy": "127.0.0.1,localhost",
    "NO_PROXY": "127.0.0.1,localhost",
}


@pytest.mark.network
@pytest.mark.parametrize("remote", ["folder", "s3"])
def test_workers_elsewhere_share_through_a_bare_origin_and_the_dvc_remote(
    project, tmp_path, remote, request
):
    client = project
    origin = tmp_path / "origin.git"
    client.git("init", "-q", "--bare", str(origin))
    client.git("remote", "add", "origin", str(origin))
    extra = {}
    if remote == "folder":
        client.dvc("remote", "add", "--default", "storage", str(tmp_path / "dvc-storage"))
    else:
        endpoint = request.getfixturevalue("moto_s3")
        client.dvc("remote", "add", "--default", "storage", "s3://sweeps/mnist-mlp")
        client.dvc("remote", "modify", "storage", "endpointurl", endpoint)
        extra = S3_CREDENTIALS
    client.env |= extra
    client.dvc("repro", "fetch_and_scale")  # the data: the workers have no other way to it
    client.git("add", "-A")
    client.git("commit", "-qm", "first run, and where its data is stored")
    client.git("push", "-q", "origin", "HEAD")
    client.dvc("push")

    # The workers reach the data through the DVC remote only: no mirror, no download cache.
    worker_env = repo_env(MNIST_MIRROR=str(tmp_path / "no-mirror"), **OFFLINE) | extra
    worker_env |= no_dvc_config_but_the_projects(tmp_path)
    # The folder remote's cluster: the README's recipe, with TLS, and two points, one of
    # them on the worker that gets killed. With S3: plain tcp:// on 127.0.0.1, one point.
    kill = remote == "folder"
    tls = write_certificates(tmp_path / "tls") if remote == "folder" else None
    values = "3,4" if kill else "4"
    command = [sys.executable, "-m", "sweep", "-S", f"train.max_iter={values}"]
    command += ["--git-url", str(origin), "--name", "r"]
    with dask_cluster(tmp_path, worker_env, tls=tls) as cluster:
        assert cluster.address.startswith("tls://" if tls else "tcp://")
        process = subprocess.Popen(
            [*command, "--scheduler", cluster.address, *(tls.options() if tls else [])],
            cwd=client.root,
            env=client.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        killed = []
        if kill:
            # SIGKILL the worker process (under its nanny) of the first point seen training.
            def worker_training():
                if process.poll() is not None:
                    raise AssertionError(f"the sweep ended first:\n{process.stderr.read()}")
                for name, nanny in cluster.workers.items():
                    for stage in training(nanny.pid):
                        return name, stage
                return None

            name, stage = wait_for(worker_training, "a point to train")
            worker = next(
                p for p in [stage, *stage.parents()] if p.ppid() == cluster.workers[name].pid
            )
            killed = [worker, *worker.children(recursive=True)]
            worker.kill()
        out, err = process.communicate(timeout=TIMEOUT_SECONDS)
        assert process.returncode == 0, err
        assert "not encrypted" not in err  # 127.0.0.1 is this machine
        _, alive = psutil.wait_procs(killed, timeout=30)
        assert alive == [], alive  # the killed worker's point stopped with it
        if tls:
            # The same sweep again, TLS from Dask's own configuration this time: every
            # point is there already, with the same params.
            config = {
                "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(tls.ca_file),
                "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(tls.cert),
                "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(tls.key),
            }
            again = subprocess.run(
                [*command, "--scheduler", cluster.address],
                cwd=client.root,
                env=client.env | config,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_SECONDS,
            )
            assert again.returncode == 0, again.stderr
            assert re.search(r"r-1: exists on \S+, ran no stage", again.stderr), again.stderr
            assert re.search(r"r-2: exists on \S+, ran no stage", again.stderr), again.stderr

    names = [f"r-{i}" for i in range(1, len(values.split(",")) + 1)]
    assert [row.split()[0] for row in out.splitlines()[1:]] == names
    shown = experiments(client)
    assert set(shown) == set(names)
    assert [metrics(shown[n])["iterations"] for n in names] == [int(v) for v in values.split(",")]
    # Each point once, in the client and in the origin the workers pushed to.
    assert sorted(ref.rsplit("/", 1)[1] for ref in exp_refs(client)) == names
    assert sorted(ref.rsplit("/", 1)[1] for ref in exp_refs(client, origin)) == names
    # The workers had no git user: the experiments are committed as the client's.
    assert client.git(
        "log", "-1", "--format=%an <%ae>", exp_refs(client)[0]
    ).strip() == "{} <{}>".format(*IDENTITY)
    for home in cluster.homes.values():
        assert clones(home / ".cache/mnist-mlp-sweep") == []

    # The outputs came through the DVC remote: apply needs them in the client's cache.
    client.dvc("exp", "apply", names[-1])
    assert json.loads((client.root / "outputs/metrics.json").read_text())["iterations"] == 4
