"""The plots page of `dvc plots show` and `dvc plots diff` renders with no network.

The page (.dvc/plots/page.html, named by .dvc/config) loads Vega, Vega-Lite and Vega-Embed
from node_modules/, which `make setup` installs from package-lock.json. The browser tests
open it in headless Chromium with the network emulated off and every host name
unresolvable, and check what a reader would see: each chart drawn, each image loaded, no
error in the console, and nothing requested from off the machine.
"""

import csv
import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import pytest
from dvc.config import Config
from dvc_render import VegaRenderer, render_html

from pipeline import paths
from tests import chromium
from tests.project import dvc_stages

PAGE = paths.ROOT / ".dvc" / "plots" / "page.html"
PACKAGE = json.loads((paths.ROOT / "package.json").read_text())
LOCK = json.loads((paths.ROOT / "package-lock.json").read_text())
NODE_MODULES = paths.ROOT / "node_modules"
# The script each package's browser build is loaded from, relative to the page.
SCRIPTS = {name: f"../node_modules/{name}/build/{name}.min.js" for name in PACKAGE["dependencies"]}


def test_page_loads_exactly_the_pinned_packages():
    html = PAGE.read_text()
    assert set(re.findall(r'<script src="([^"]+)"', html)) == set(SCRIPTS.values())
    assert "{scripts}" not in html  # DVC's own script tags, from a CDN
    assert "{plot_divs}" in html
    # Exact versions, the same in package.json and in the lock, each with its hash.
    root = LOCK["packages"][""]
    assert root["dependencies"] == PACKAGE["dependencies"]
    for name, version in PACKAGE["dependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), name
        assert LOCK["packages"][f"node_modules/{name}"]["version"] == version
    assert all(
        p.get("integrity", "").startswith("sha512-") for k, p in LOCK["packages"].items() if k
    )


def test_pinned_majors_are_those_dvc_render_loads():
    # DVC's page names the versions its Vega-Lite specs are written for.
    cdn = dict(re.findall(r"/npm/([\w-]+)@(\d+)\.", VegaRenderer.SCRIPTS))
    assert cdn == {name: version.split(".")[0] for name, version in PACKAGE["dependencies"].items()}


def test_dvc_config_names_the_page():
    # the committed config, not the user's or the machine's
    config = Config(dvc_dir=str(paths.ROOT / ".dvc")).load_one("repo")
    # DVC reads a relative html_template from the .dvc folder
    assert (paths.ROOT / ".dvc" / config["plots"]["html_template"]).resolve() == PAGE


# In the browser


def not_installed(reason: str) -> None:
    """Skip a test whose tool is not installed, but fail it in CI, which installs it."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; .ci/run should have installed it")
    pytest.skip(reason)


@pytest.fixture
def chromium_executable() -> str:
    """Chromium's executable."""
    if chromium.EXECUTABLE is None:
        not_installed("no Chromium to open the plots page in: apt-get install chromium")
    return chromium.EXECUTABLE


@pytest.fixture
def vega_files() -> Path:
    """node_modules/, with the browser builds that the page loads, as `make setup` leaves it."""
    # as seen from where the page lands by default, dvc_plots/ at the root
    missing = [
        s for s in SCRIPTS.values() if not (paths.ROOT / "dvc_plots" / s).resolve().is_file()
    ]
    if missing and shutil.which("npm") is None:
        not_installed("no npm, with which `make setup` installs the plots page's Vega files")
    assert not missing, f"{missing} not installed: run `make setup` (npm ci)"
    return NODE_MODULES


VIEW_STATE = """(ids => ids.map(id => {
    const view = document.getElementById(id);
    const svg = view.querySelector("svg.marks");
    const all = selector => (svg ? [...svg.querySelectorAll(selector)] : []);
    return {
        id,
        marks: all("path, rect, line, text").length,
        text: svg ? svg.textContent : "",
        labels: all("g.mark-text.role-mark text").map(text => text.textContent),  // data labels
        x_ticks: all("g.role-axis[aria-label^='X-axis'] g.role-axis-label text")
            .map(text => text.textContent),
        dots: all("g.mark-symbol.role-mark path").map(path => path.getAttribute("transform")),
        error: view.classList.contains("plot-error") ? view.textContent : null,
    };
}))(%s)"""
IMAGES = "[...document.images].map(i => ({src: i.src, loaded: i.complete && i.naturalWidth > 0}))"


def open_page(executable: str, page: Path) -> tuple[list[dict], list[dict], chromium.PageLog]:
    """Open ``page`` offline until every Vega view has drawn or failed.

    Returns each view's state (``VIEW_STATE``), each image's, and what the page logged.
    """
    ids = re.findall(r"vegaEmbed\('#(\w+)'", page.read_text())
    with chromium.Chromium(executable) as browser:
        session = chromium.open_offline(browser, page.as_uri())
        settled = f"({VIEW_STATE}).every(v => v.marks || v.error !== null)" % json.dumps(ids)
        chromium.poll(browser, session, settled)
        views = chromium.evaluate(browser, session, VIEW_STATE % json.dumps(ids))
        images = chromium.evaluate(browser, session, IMAGES)
        log = chromium.page_log(browser, session)
    return views, images, log


def error_shares(predictions: Path) -> Counter:
    """The labels of the confusion matrix's cells: each error's share of its true class."""
    with predictions.open(newline="") as file:
        rows = [(row["actual"], row["predicted"]) for row in csv.DictReader(file)]
    per_class = Counter(actual for actual, _ in rows)
    errors = Counter((actual, predicted) for actual, predicted in rows if actual != predicted)
    return Counter(f"{n / per_class[actual]:.1%}" for (actual, _), n in errors.items())


def off_the_machine(requests: list[str]) -> list[str]:
    return [url for url in requests if urlparse(url).scheme not in ("file", "data")]


def plot_titles() -> list[str]:
    plots = dvc_stages()["train"]["plots"]
    return [next(iter(plot.values()))["title"] for plot in plots]


def assert_rendered(views: list[dict], images: list[dict], log: chromium.PageLog) -> None:
    assert [v for v in views if not v["marks"] or v["error"]] == []
    assert [i["src"] for i in images if not i["loaded"]] == []
    assert log.errors == []
    assert off_the_machine(log.requests) == []


def test_plots_show_renders_offline(chromium_executable, tiny_repo, vega_files):
    tiny_repo.dvc("repro")
    (tiny_repo.root / "node_modules").symlink_to(vega_files)
    tiny_repo.dvc("plots", "show")  # no flag: .dvc/config names the page

    views, images, log = open_page(chromium_executable, tiny_repo.root / "dvc_plots" / "index.html")

    assert_rendered(views, images, log)
    # the loss curve, the F1 of each digit and the errors, titled as dvc.yaml says
    assert [v["id"] for v in views] == [
        "outputs_loss_csv",
        "outputs_per_class_csv",
        "outputs_predictions_csv",
    ]
    for view, title in zip(views, plot_titles(), strict=True):
        assert title in view["text"]
    # one label per kind of error, as computed here from the predictions
    assert Counter(views[2]["labels"]) == error_shares(tiny_repo.root / "outputs/predictions.csv")
    assert len(images) == 3  # weights, loss and misclassified digits


def test_plots_diff_renders_both_revisions_offline(chromium_executable, tiny_repo, vega_files):
    tiny_repo.dvc("repro")
    tiny_repo.git("add", "-A")
    tiny_repo.git("commit", "-qm", "first run")
    tiny_repo.set_param("max_iter", "5")
    tiny_repo.dvc("repro")
    (tiny_repo.root / "node_modules").symlink_to(vega_files)
    tiny_repo.dvc("plots", "diff", "HEAD")

    views, images, log = open_page(chromium_executable, tiny_repo.root / "dvc_plots" / "index.html")

    assert_rendered(views, images, log)
    assert len(views) == 3
    for view in views:
        assert "HEAD" in view["text"] and "workspace" in view["text"]
    assert len(images) == 6


def test_page_without_vega_says_so_in_place_of_each_chart(chromium_executable, tmp_path):
    # A page written where ../node_modules is not: no Vega, and no network to fall back on.
    data = [{"step": str(i), "loss": str(1 / i), "rev": "workspace"} for i in range(1, 4)]
    renderers = [VegaRenderer(data, f"loss{i}.csv", x="step", y="loss") for i in (1, 2)]
    page = render_html(renderers, tmp_path / "report" / "index.html", html_template=str(PAGE))

    views, _, log = open_page(chromium_executable, Path(page))

    assert len(views) == 2
    for view in views:
        assert view["marks"] == 0
        assert "This chart needs Vega" in view["error"] and "make setup" in view["error"]
    assert any("This chart needs Vega" in error for error in log.errors)
    assert off_the_machine(log.requests) == []


def per_class_plot() -> dict:
    """The F1 chart's properties as dvc.yaml declares them (template, x, y, titles)."""
    [plot] = [
        p["outputs/per_class.csv"]
        for p in dvc_stages()["train"]["plots"]
        if "outputs/per_class.csv" in p
    ]
    return plot


def test_f1_chart_spans_the_scores_and_parts_two_revisions(
    chromium_executable, tmp_path, vega_files
):
    # Scores near 1, as MNIST's are, equal in both revisions but for digit 3, 0.01 apart.
    # On bars from 0 to 1 (Vega-Lite stacks bars from 0, whatever scale.zero says), the
    # two revisions looked the same: 0.01 was 3 of the chart's 300 pixels.
    f1 = {"workspace": [0.95 + digit / 1000 for digit in range(10)]}
    f1["HEAD"] = [score + 0.01 * (digit == 3) for digit, score in enumerate(f1["workspace"])]
    data = [
        {"digit": str(digit), "f1": str(score), "rev": rev}
        for rev, scores in f1.items()
        for digit, score in enumerate(scores)
    ]
    renderer = VegaRenderer(
        data, "outputs/per_class.csv", template_dir=str(PAGE.parent), **per_class_plot()
    )
    page = render_html([renderer], tmp_path / "dvc_plots" / "index.html", html_template=str(PAGE))
    (tmp_path / "node_modules").symlink_to(vega_files)

    [view], _, log = open_page(chromium_executable, Path(page))

    assert_rendered([view], [], log)
    ticks = [float(tick) for tick in view["x_ticks"]]
    assert 0.94 <= min(ticks) < max(ticks) <= 0.97  # the axis spans the scores, not 0 to 1
    # one dot per revision and digit; the revisions' dots apart for digit 3 only
    assert len(view["dots"]) == 20
    rows: dict[float, list[float]] = {}
    for dot in view["dots"]:
        x, y = map(float, re.fullmatch(r"translate\(([-\d.e]+),([-\d.e]+)\)", dot).groups())
        rows.setdefault(y, []).append(x)
    spreads = sorted(max(xs) - min(xs) for xs in rows.values())
    assert spreads[:-1] == [0] * 9
    assert spreads[-1] >= 100  # of the chart's 300 pixels
