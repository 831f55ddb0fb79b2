"""The HTML report is one self-contained page: opened from disk in a real headless Chromium, every figure
must decode to an image of the PNG's size. A page with a corrupted image must fail the same check."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import cv2
import pandas as pd
import pytest
import yaml
from matplotlib.figure import Figure

from analysis.reports import eda
from analysis.reports.report import Report

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (`apt-get install chromium`; .ci/run installs it before `make test`)",
)

# Appended to a copy of the page: once everything has loaded, record each <img>'s decode state on <body>.
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images).map(i => [i.getAttribute("data-file"), i.complete, i.naturalWidth,
                                                     i.naturalHeight]);
  document.body.setAttribute("data-probe", JSON.stringify(imgs));
  const root = document.documentElement;
  document.body.setAttribute("data-width", JSON.stringify([root.scrollWidth, root.clientWidth]));
});
</script>"""


def probe_page(page: Path) -> tuple[list[list], list[int]]:
    """Open ``page`` (a file:// URL) in headless Chromium; after the load event, ``[file, complete,
    naturalWidth, naturalHeight]`` for each ``<img>``, and the page's ``[scrollWidth, clientWidth]``."""
    probe = page.with_name(page.stem + "_probe.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--window-size=1200,900", f"--user-data-dir={profile}", "--dump-dom", probe.resolve().as_uri(),
        ]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    found = {k: re.search(rf'data-{k}="([^"]*)"', out.stdout) for k in ("probe", "width")}
    assert all(found.values()), f"no probe result from Chromium (exit {out.returncode}): {out.stderr[-2000:]}"
    images, width = (json.loads(m.group(1).replace("&quot;", '"')) for m in found.values())
    return images, width


def rendered_images(page: Path) -> list[list]:
    """``[file, complete, naturalWidth, naturalHeight]`` for each ``<img>`` of ``page`` in Chromium."""
    return probe_page(page)[0]


@pytest.fixture(scope="module")
def eda_report(tmp_path_factory, sample_dir: Path) -> dict[str, Path]:
    """The EDA report of the real sample (CSVs + 12 DICOMs): six figures."""
    return eda.run_eda(sample_dir, tmp_path_factory.mktemp("eda"), progress=False)


def test_page_is_self_contained(eda_report: dict[str, Path]) -> None:
    html = eda_report["html"].read_text()
    figures = [p for k, p in eda_report.items() if k not in {"markdown", "html"}]
    assert html.count('src="data:image/png;base64,') == len(figures) == 6
    # Nothing to fetch: no external scripts, styles or images.
    assert not re.search(r'(src|href)="(?!data:)', html)
    assert "<link" not in html and "<script" not in html
    # Each embedded image is exactly the PNG written beside it.
    for path in figures:
        data = re.search(rf'base64,([^"]+)" alt="[^"]*" data-file="{path.name}"', html).group(1)
        assert base64.b64decode(data) == path.read_bytes()


@needs_chromium
def test_figures_render_in_chromium(eda_report: dict[str, Path]) -> None:
    images = rendered_images(eda_report["html"])
    figures = {p.name: p for k, p in eda_report.items() if k not in {"markdown", "html"}}
    assert sorted(i[0] for i in images) == sorted(figures)
    for name, complete, width, height in images:
        png = cv2.imread(str(figures[name]), cv2.IMREAD_UNCHANGED)
        assert complete and (height, width) == png.shape[:2], f"{name} did not render: {width}x{height}"


def write_run(run: Path, lr0: float, maps: list[float]) -> None:
    """A finished run folder as Ultralytics 8.4 writes it (args.yaml + results.csv), without weights."""
    run.mkdir(parents=True)
    args = {"task": "detect", "model": "yolo11n.yaml", "epochs": len(maps), "patience": 100,
            "optimizer": "SGD", "lr0": lr0, "imgsz": 64}  # fmt: skip
    (run / "args.yaml").write_text(yaml.safe_dump(args, sort_keys=False))
    rows = [{"epoch": e + 1, "time": 2.0 * (e + 1), "train/box_loss": 2 - m, "train/cls_loss": 3 - m,
             "train/dfl_loss": 1.5 - m, "metrics/precision(B)": m, "metrics/recall(B)": m,
             "metrics/mAP50(B)": 1.5 * m, "metrics/mAP50-95(B)": m, "val/box_loss": 2.2 - m,
             "val/cls_loss": 3.1 - m, "val/dfl_loss": 1.6 - m} for e, m in enumerate(maps)]  # fmt: skip
    pd.DataFrame(rows).to_csv(run / "results.csv", index=False)


@needs_chromium
def test_compare_and_show_pages_render(tmp_path: Path) -> None:
    from analysis.reports.compare import run_compare
    from analysis.reports.show import run_show
    from convert.rsna import convert_rsna
    from convert.synth import generate
    from tests.test_show import handmade_run

    write_run(tmp_path / "runs" / "lr01", 0.01, [0.1, 0.2, 0.25])
    write_run(tmp_path / "runs" / "lr05", 0.05, [0.05, 0.1, 0.3])
    compared, _ = run_compare([tmp_path / "runs"], tmp_path / "cmp", progress=False)
    generate(tmp_path / "kaggle", patients=24, test_patients=0, seed=0, imgsz=256)
    convert_rsna(
        tmp_path / "kaggle", tmp_path / "ds", imgsz=64, workers=1, progress=False, echo=lambda *a: None
    )
    handmade_run(tmp_path / "ds", tmp_path / "run")
    shown, _ = run_show(tmp_path / "run", "train", worst=4, progress=False)
    for paths, n in ((compared, 4), (shown, 2)):
        images = rendered_images(paths["html"])
        assert len(images) == n
        for name, complete, width, height in images:
            png = cv2.imread(str(paths["html"].parent / name), cv2.IMREAD_UNCHANGED)
            assert complete and (height, width) == png.shape[:2], f"{name} did not render"


@needs_chromium
def test_broken_image_is_detected(tmp_path: Path) -> None:
    """The check above can fail: a page whose figure bytes are corrupted renders at 0 x 0."""
    report = Report("broken", tmp_path)
    fig = Figure(figsize=(3, 2))
    fig.subplots().plot([0, 1], [1, 0])
    good = report.figure(fig, "good", "a good figure")
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:40])  # truncated PNG: header only
    report.blocks.append(("figure", ("bad.png", "a truncated figure")))
    images = {i[0]: i[2:] for i in rendered_images(report.write()["html"])}
    assert images["good.png"][0] > 100 and images["bad.png"] == [0, 0]


def test_markdown_and_html_tables(tmp_path: Path) -> None:
    report = Report("Tables <&>", tmp_path)
    report.heading("Section")
    report.text("a < b & c")
    report.bullets(["one", "two"])
    report.table(
        pd.DataFrame({"name": ["x|y", "z"], "n": [1234, 5], "f": [0.5, float("nan")]}), caption="cap"
    )
    paths = report.write()
    md = paths["markdown"].read_text().splitlines()
    assert "| name | n | f |" in md and "| --- | ---: | ---: |" in md
    assert "| x\\|y | 1,234 | 0.5 |" in md and "| z | 5 |  |" in md
    assert "- one" in md and "## Section" in md
    html = paths["html"].read_text()
    assert "<title>Tables &lt;&amp;&gt;</title>" in html and "<p>a &lt; b &amp; c</p>" in html
    assert '<td>x|y</td><td class="num">1,234</td>' in html


def test_index_column_only_when_it_carries_information(tmp_path: Path) -> None:
    report = Report("Index", tmp_path)
    report.table(pd.DataFrame({"reason": ["none"], "rows": [0]}), index=True)  # 0..n-1: not shown
    named = pd.DataFrame({"n": [3, 4]}, index=pd.Index(["a", "b"], name="split"))
    report.table(named, index=True)
    report.table(pd.DataFrame({"mean": [1.5]}, index=["width"]), index=True)  # unnamed: empty header
    md = report.write()["markdown"].read_text().splitlines()
    assert "| reason | rows |" in md and "| index |" not in " ".join(md)
    assert "| split | n |" in md and "| a | 3 |" in md
    assert "|  | mean |" in md and "| width | 1.5 |" in md


@needs_chromium
def test_wide_table_scrolls_inside_the_page(tmp_path: Path) -> None:
    """A comparison table of many columns scrolls in its own box; the page itself keeps the window's width
    (before the fix a 24-column compare table made the whole report scroll sideways)."""
    report = Report("wide", tmp_path)
    report.table(pd.DataFrame({f"a long column name {i}": [123456.789] for i in range(40)}))
    _, (scroll_width, client_width) = probe_page(report.write()["html"])
    assert client_width > 500 and scroll_width <= client_width
