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

import numpy as np
import pytest
from dvc.config import Config
from dvc_render import ImageRenderer, VegaRenderer, render_html
from dvc_render.base import Renderer
from dvc_render.html import HTML
from matplotlib import image as mpimg

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
# Each image of the plots (not the enlarged view's, empty until a click), with the plot and
# the revision it is labelled with.
IMAGES = """[...document.images].filter(image => !image.closest("dialog")).map(image => ({
    src: image.src,
    loaded: image.complete && image.naturalWidth > 0,
    plot: image.closest(".image-plot")?.querySelector(".plot-name").textContent.trim(),
    revision: image.closest(".revision")?.querySelector(".revision-name").textContent.trim(),
}))"""


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


def train_plots() -> dict[str, dict]:
    """The charts of train's outputs as dvc.yaml declares them: by path, their properties
    (template, x, y, titles)."""
    return dict(next(iter(plot.items())) for plot in dvc_stages()["train"]["plots"])


def view_id(name: str) -> str:
    """The id of a plot's place on the page (dvc_render's, from its name)."""
    return Renderer.remove_special_chars(name)


def dvc_listing(repo, *command: str) -> tuple[list[str], list[tuple[str, str]]]:
    """What `dvc plots show` or `diff` (``command``) lists with --json: the ids of its
    charts' places on the page, and its images as (path, revision) pairs."""
    output = repo.dvc("plots", *command, "--json", "-o", str(repo.root.parent / "listing"))
    listing = json.loads(output.stdout)["data"]
    charts = [view_id(name) for name, plots in listing.items() if plots[0]["type"] == "vega"]
    images = [
        (name, plot["revisions"][0])
        for name, plots in listing.items()
        for plot in plots
        if plot["type"] == "image"
    ]
    return charts, images


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
    # every chart and image that DVC lists, each image labelled with its revision
    charts, listed_images = dvc_listing(tiny_repo, "show")
    assert sorted(v["id"] for v in views) == sorted(charts)
    assert sorted((i["plot"], i["revision"]) for i in images) == sorted(listed_images)
    # the loss curve, the F1 of each digit and the errors, titled as dvc.yaml says
    by_id = {view["id"]: view for view in views}
    for path, properties in train_plots().items():
        assert properties["title"] in by_id[view_id(path)]["text"]
    # one label per kind of error, as computed here from the predictions
    confusion = by_id["outputs_predictions_csv"]
    assert Counter(confusion["labels"]) == error_shares(tiny_repo.root / "outputs/predictions.csv")
    # weights, loss and misclassified digits at least
    assert {"outputs/weights.png", "outputs/loss.png", "outputs/misclassified.png"} <= {
        i["plot"] for i in images
    }


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
    charts, listed_images = dvc_listing(tiny_repo, "diff", "HEAD")
    assert sorted(v["id"] for v in views) == sorted(charts)
    assert set(map(view_id, train_plots())) <= set(charts)
    for view in views:
        assert "HEAD" in view["text"] and "workspace" in view["text"]
    assert sorted((i["plot"], i["revision"]) for i in images) == sorted(listed_images)
    assert {revision for _, revision in listed_images} == {"HEAD", "workspace"}


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
    properties = train_plots()["outputs/per_class.csv"]
    renderer = VegaRenderer(
        data, "outputs/per_class.csv", template_dir=str(PAGE.parent), **properties
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


# Image plots of several revisions, as `dvc plots diff A B C` writes them: the page, built
# here with dvc_render's own renderers, and PNGs of the pipeline's sizes.

REVISIONS = ["main", "HEAD~1", "exp-3f2a1", "workspace"]
WINDOW = (1400, 900)
# The pipeline's images (stages/visualize.py), (width, height) in pixels; the first
# layer's filters of each kept epoch are grids like weights.png: outputs/filters/EPOCH.png.
IMAGE_SIZES = {
    "outputs/weights.png": (640, 640),
    "outputs/loss.png": (640, 480),
    "outputs/misclassified.png": (640, 640),
    "outputs/units.png": (640, 2000),
    "outputs/filmstrip.png": (1200, 260),
}
FILTER_SIZE = (640, 640)


@pytest.fixture
def project_root(tmp_path, vega_files) -> Path:
    """A folder with node_modules/, as the project's root, where a page is written."""
    (tmp_path / "node_modules").symlink_to(vega_files)
    return tmp_path


def filters(epochs) -> list[str]:
    return [f"outputs/filters/{epoch}.png" for epoch in epochs]


def every_image(epochs=range(11)) -> list[str]:
    return [*IMAGE_SIZES, *filters(epochs)]


def confusion_matrices(revisions: list[str]) -> VegaRenderer:
    """dvc.yaml's confusion matrix of ``revisions``, side by side: the widest chart."""
    digits = [str(digit) for digit in range(10)]
    data = [
        {"actual": actual, "predicted": predicted, "rev": revision}
        for revision in revisions
        for actual in digits
        for predicted in digits
    ]
    properties = train_plots()["outputs/predictions.csv"]
    return VegaRenderer(
        data, "outputs/predictions.csv", template_dir=str(PAGE.parent), **properties
    )


def static_name(revision: str, path: str) -> str:
    """Where DVC copies a revision's image, beside the page (dvc.render.converter.image)."""
    return "static/" + f"{revision}_{path}".replace("/", "_")


def image_page(
    folder: Path,
    images: dict[str, list[str]],
    *,
    charts: tuple[VegaRenderer, ...] = (),
    in_name_order: bool = False,
) -> Path:
    """The page of `dvc plots diff` for ``images``: each revision's image paths, in the
    revisions' order, and ``charts`` above them. Each image is a gray PNG of its size, a
    shade per revision.

    ``in_name_order`` writes the images in the order of their names (0, 1, 10, 2), not
    in render_html's, which puts the images of one folder in numeric order.
    """
    page = folder / "dvc_plots" / "index.html"
    (page.parent / "static").mkdir(parents=True)
    datapoints: dict[str, list[dict]] = {}
    for shade, (revision, image_paths) in enumerate(images.items()):
        for path in image_paths:
            src = page.parent / static_name(revision, path)
            width, height = IMAGE_SIZES.get(path, FILTER_SIZE)
            mpimg.imsave(src, np.full((height, width), shade), cmap="gray", vmin=0, vmax=4)
            datapoints.setdefault(path, []).append({"rev": revision, "src": str(src)})
    renderers = [ImageRenderer(points, path) for path, points in datapoints.items()]
    if not in_name_order:
        return Path(render_html([*charts, *renderers], page, html_template=str(PAGE)))
    document = HTML(PAGE.read_text())
    for renderer in [*charts, *sorted(renderers, key=lambda r: r.name)]:
        document.with_element(renderer.generate_html(html_path=page))
    page.write_text(document.embed())
    return page


# What a reader sees of the images: each shown thumbnail (not those of a hidden epoch),
# with its revision's label and its box in the window.
THUMBNAILS = """[...document.querySelectorAll("img.thumbnail")]
    .filter(image => image.offsetParent !== null)
    .map(image => {
        const box = image.getBoundingClientRect();
        return {
            src: image.getAttribute("src"),
            revision: image.closest(".revision").querySelector("p").textContent.trim(),
            left: box.left, right: box.right, top: box.top, bottom: box.bottom,
            width: box.width, height: box.height,
            loaded: image.complete && image.naturalWidth > 0,
        };
    })"""
# The page's width, the window's without its vertical scroll bar and with it, and the
# right edge of the chart's box.
WIDTHS = """({
    page: document.documentElement.scrollWidth,
    visible: document.documentElement.clientWidth,
    window: window.innerWidth,
    chart: document.querySelector(".vega-embed").getBoundingClientRect().right,
})"""
ENLARGED = """(() => {
    const dialog = document.querySelector("dialog");
    const image = dialog && dialog.querySelector("img");
    return dialog && {
        open: dialog.open,
        src: image.getAttribute("src"),
        width: image.getBoundingClientRect().width,
        height: image.getBoundingClientRect().height,
        natural: [image.naturalWidth, image.naturalHeight],
        caption: dialog.textContent,
    };
})()"""


# Scrolls a thumbnail into the window's middle, where a click reaches it; its box.
SCROLL_TO = """(src => {
    const image = [...document.querySelectorAll("img.thumbnail")]
        .find(image => image.getAttribute("src") === src);
    image.scrollIntoView({block: "center"});
    const box = image.getBoundingClientRect();
    return {src, x: box.left + box.width / 2, y: box.top + box.height / 2, width: box.width};
})(%s)"""


def scroll_to(browser, session, revision: str, path: str) -> dict:
    """The thumbnail of ``revision``'s ``path``, scrolled into view: its middle and width."""
    return chromium.evaluate(browser, session, SCROLL_TO % json.dumps(static_name(revision, path)))


def test_four_revisions_fit_a_1400_px_window(chromium_executable, project_root):
    # DVC's page puts each image's revisions on one line at full size: the third of
    # three revisions was cut off in such a window, behind a sideways scroll. The
    # confusion matrices of four revisions side by side are wider than the window too.
    images = {revision: every_image() for revision in REVISIONS}
    chart = confusion_matrices(REVISIONS)
    page = image_page(project_root, images, charts=(chart,))

    with chromium.Chromium(chromium_executable) as browser:
        session = chromium.open_offline(browser, page.as_uri(), viewport=WINDOW)
        chromium.poll(browser, session, "!!document.querySelector('svg.marks')")
        widths = chromium.evaluate(browser, session, WIDTHS)
        thumbnails = chromium.evaluate(browser, session, THUMBNAILS)
        log = chromium.page_log(browser, session)

    assert widths["window"] == WINDOW[0]
    assert widths["page"] <= widths["visible"]  # no sideways scroll
    assert widths["chart"] <= widths["visible"]  # the chart scrolls in its own box
    # every revision of each image, and of one epoch's filters, labelled and loaded
    assert len(thumbnails) == len(REVISIONS) * (len(IMAGE_SIZES) + 1)
    for thumbnail in thumbnails:
        assert thumbnail["src"].startswith(f"static/{thumbnail['revision']}_")
        assert thumbnail["loaded"], thumbnail
        assert 0 <= thumbnail["left"] < thumbnail["right"] <= widths["visible"], thumbnail
        assert max(thumbnail["width"], thumbnail["height"]) >= 250, thumbnail  # not a speck
    assert Counter(t["revision"] for t in thumbnails) == dict.fromkeys(REVISIONS, 6)
    assert log.errors == []
    assert off_the_machine(log.requests) == []


@pytest.mark.parametrize("close", ["Escape", "click"])
def test_a_click_enlarges_a_thumbnail_and_escape_or_a_click_closes_it(
    chromium_executable, project_root, close
):
    page = image_page(project_root, {revision: every_image() for revision in REVISIONS})

    with chromium.Chromium(chromium_executable) as browser:
        session = chromium.open_offline(browser, page.as_uri(), viewport=WINDOW)
        thumbnail = scroll_to(browser, session, "HEAD~1", "outputs/weights.png")
        chromium.click(browser, session, thumbnail["x"], thumbnail["y"])
        enlarged = chromium.evaluate(browser, session, ENLARGED)
        if close == "Escape":
            chromium.press(browser, session, "Escape")
        else:
            chromium.click(browser, session, WINDOW[0] / 2, WINDOW[1] / 2)
        closed = chromium.evaluate(browser, session, ENLARGED)
        log = chromium.page_log(browser, session)

    assert enlarged["open"]
    assert enlarged["src"] == thumbnail["src"]
    # at its own size, twice the thumbnail's, which fits in the window
    assert [enlarged["width"], enlarged["height"]] == enlarged["natural"] == [640, 640]
    assert enlarged["width"] > thumbnail["width"]
    assert "HEAD~1" in enlarged["caption"] and "outputs/weights.png" in enlarged["caption"]
    assert not closed["open"]
    assert log.errors == []


def test_arrow_keys_flip_the_enlarged_image_between_revisions(chromium_executable, project_root):
    page = image_page(project_root, {revision: every_image() for revision in REVISIONS})

    with chromium.Chromium(chromium_executable) as browser:
        session = chromium.open_offline(browser, page.as_uri(), viewport=WINDOW)
        units = scroll_to(browser, session, "HEAD~1", "outputs/units.png")
        chromium.click(browser, session, units["x"], units["y"])
        shown = [chromium.evaluate(browser, session, ENLARGED)]
        for key in ("ArrowRight", "ArrowRight", "ArrowRight", "ArrowLeft"):
            chromium.press(browser, session, key)
            shown.append(chromium.evaluate(browser, session, ENLARGED))

    # from HEAD~1 on, round from the last revision to the first and back
    order = ["HEAD~1", "exp-3f2a1", "workspace", "main", "workspace"]
    assert [s["src"] for s in shown] == [static_name(r, "outputs/units.png") for r in order]
    assert all(s["open"] for s in shown)
    # units.png, taller than the window, at its own width: the dialog scrolls
    assert {(s["width"], s["height"]) for s in shown} == {(640, 2000)}


# The epoch slider's state: its positions, its label, and the images it shows.
SLIDER = """(() => {
    const sliders = [...document.querySelectorAll(".epoch-slider input[type=range]")];
    return sliders.map(slider => ({
        min: Number(slider.min), max: Number(slider.max), value: Number(slider.value),
        label: slider.closest(".epoch-slider").querySelector("output").textContent,
        shown: [...slider.closest(".epoch-slider").querySelectorAll(".revision")]
            .filter(revision => revision.offsetParent !== null)
            .map(revision => [
                revision.querySelector("p").textContent.trim(),
                revision.querySelector("img")?.getAttribute("src") ?? null,
            ]),
    }));
})()"""
MOVE_SLIDER = """(() => {
    const slider = document.querySelector(".epoch-slider input[type=range]");
    slider.value = %d;
    slider.dispatchEvent(new Event("input"));
})()"""


def slide_through(browser, session, positions: int) -> list[dict]:
    """The slider's state at each of its positions, from the first."""
    states = []
    for position in range(positions):
        chromium.evaluate(browser, session, MOVE_SLIDER % position)
        [state] = chromium.evaluate(browser, session, SLIDER)
        assert state["value"] == position
        states.append(state)
    return states


@pytest.mark.parametrize(
    ("epochs", "in_name_order"),
    [(range(11), False), (range(11), True), ([*range(0, 200, 16), 200], False)],
    ids=["0-10", "0-10 in name order", "0-200 by 16"],
)
def test_epoch_slider_steps_through_the_filters_of_every_revision(
    chromium_executable, project_root, epochs, in_name_order
):
    images = {revision: ["outputs/weights.png", *filters(epochs)] for revision in REVISIONS}
    page = image_page(project_root, images, in_name_order=in_name_order)

    with chromium.Chromium(chromium_executable) as browser:
        session = chromium.open_offline(browser, page.as_uri(), viewport=WINDOW)
        [opened] = chromium.evaluate(browser, session, SLIDER)
        states = slide_through(browser, session, opened["max"] + 1)
        thumbnails = chromium.evaluate(browser, session, THUMBNAILS)
        log = chromium.page_log(browser, session)

    # one position per epoch; it opens on the last, the trained filters
    assert (opened["min"], opened["max"]) == (0, len(epochs) - 1)
    assert opened["label"] == f"epoch {epochs[-1]}"
    # in numeric order, each position shows that epoch of every revision, and only it
    assert [state["label"] for state in states] == [f"epoch {epoch}" for epoch in epochs]
    for state, epoch in zip(states, epochs, strict=True):
        [path] = filters([epoch])
        assert state["shown"] == [[r, static_name(r, path)] for r in REVISIONS]
    # at the last position: the slider's filters and weights.png, each of every revision
    assert sorted(t["src"] for t in thumbnails) == sorted(
        static_name(r, path) for r in REVISIONS for path in images[r][:1] + filters([epochs[-1]])
    )
    assert log.errors == []


def test_epoch_slider_keeps_a_revision_in_its_column_where_it_has_no_such_epoch(
    chromium_executable, project_root
):
    # `max_iter: 10 -> 20`: main's filters stop at epoch 10, the workspace's at 20.
    images = {"main": filters(range(11)), "workspace": filters(range(21))}
    page = image_page(project_root, images)

    with chromium.Chromium(chromium_executable) as browser:
        session = chromium.open_offline(browser, page.as_uri(), viewport=WINDOW)
        states = slide_through(browser, session, 21)

    for epoch, state in enumerate(states):
        [path] = filters([epoch])
        main = static_name("main", path) if epoch <= 10 else None
        assert state["shown"] == [["main", main], ["workspace", static_name("workspace", path)]]


# The line chart of several revisions (.dvc/plots/linear_revisions.json)

LINES = """(() => {
    const svg = document.querySelector("svg.marks");
    if (!svg) return null;
    const all = selector => [...svg.querySelectorAll(selector)];
    return {
        lines: all("g.mark-line.role-mark path").map(path => ({
            d: path.getAttribute("d"),
            dash: path.getAttribute("stroke-dasharray"),
            stroke: path.getAttribute("stroke"),
        })),
        points: all("g.mark-symbol.role-mark path").map(path => ({
            at: path.getAttribute("transform"),
            shape: path.getAttribute("d"),
            stroke: path.getAttribute("stroke"),
        })),
        legend: all("g.role-legend-label text").map(text => text.textContent),
        symbols: all("g.role-legend-symbol path").map(path => ({
            shape: path.getAttribute("d"),
            stroke: path.getAttribute("stroke"),
        })),
    };
})()"""


def draw_loss(executable: str, root: Path, losses: dict[str, list[float]]) -> dict:
    """Each revision's ``losses`` (one per iteration from 1) drawn with linear_revisions,
    on a page written in ``root``, which holds node_modules/: the chart's ``LINES``."""
    data = [
        {"iteration": str(iteration), "loss": str(loss), "rev": revision}
        for revision, values in losses.items()
        for iteration, loss in enumerate(values, start=1)
    ]
    renderer = VegaRenderer(
        data,
        "outputs/loss.csv",
        template="linear_revisions",
        template_dir=str(PAGE.parent),
        x="iteration",
        y="loss",
        title="Training loss",
    )
    page = render_html([renderer], root / "dvc_plots" / "index.html", html_template=str(PAGE))
    with chromium.Chromium(executable) as browser:
        session = chromium.open_offline(browser, Path(page).as_uri())
        chromium.poll(browser, session, "!!document.querySelector('g.mark-line path, .plot-error')")
        chart = chromium.evaluate(browser, session, LINES)
        log = chromium.page_log(browser, session)
    assert log.errors == []
    assert off_the_machine(log.requests) == []
    assert chart is not None
    return chart


def test_line_template_tells_apart_revisions_whose_curves_coincide(
    chromium_executable, project_root
):
    # With DVC's `linear`, two revisions of the same loss were one curve: the last
    # drawn hid the other, whose colour was then nowhere on the chart.
    loss = [2.3 / iteration for iteration in range(1, 13)]
    chart = draw_loss(chromium_executable, project_root, {"HEAD": loss, "workspace": loss})

    # the same curve twice, each with its own dashes and colour
    assert len(chart["lines"]) == 2
    first, second = chart["lines"]
    assert first["d"] == second["d"]
    assert first["dash"] != second["dash"]
    assert first["stroke"] != second["stroke"]
    # a marker of each revision at each point, of two shapes, in the lines' colours
    by_point: dict[str, set[str]] = {}
    for point in chart["points"]:
        by_point.setdefault(point["at"], set()).add(point["shape"])
    assert len(by_point) == len(loss)
    assert {len(shapes) for shapes in by_point.values()} == {2}
    assert {point["stroke"] for point in chart["points"]} == {first["stroke"], second["stroke"]}
    # one legend, an entry per revision with its line's colour and its marker
    assert chart["legend"] == ["HEAD", "workspace"]
    assert [symbol["stroke"] for symbol in chart["symbols"]] == [first["stroke"], second["stroke"]]
    assert len({symbol["shape"] for symbol in chart["symbols"]}) == 2


def test_line_template_marks_about_15_points_of_a_long_curve(chromium_executable, project_root):
    # a marker at each of 200 iterations would bury the line and its dashes
    losses = {revision: [2.3 / i for i in range(1, 201)] for revision in ("HEAD", "workspace")}
    chart = draw_loss(chromium_executable, project_root, losses)

    assert len(chart["lines"]) == 2
    assert Counter(point["stroke"] for point in chart["points"]) == {
        line["stroke"]: 15 for line in chart["lines"]
    }
