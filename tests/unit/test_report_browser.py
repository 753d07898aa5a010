"""The report in a real headless Chromium: loads without console errors, every image decodes, tables fit.

Chromium runs on the fixture studies' pages at 1400 px wide: (1) ``--dump-dom`` on a copy of the
page with a small checking script appended (its Content-Security-Policy widened just enough to run
it), which opens every ``<details>`` and writes into the DOM whether every ``<img>`` decoded
(``naturalWidth > 0``), any error or CSP violation fired, the page height, how wide the page
scrolls and, per table, whether it is wider than its box and whether that box scrolls; (2)
``--screenshot`` of the page itself, whose Chromium log must hold no console message (the page has
no script, so any console line is a failed load or a policy violation). The screenshots (the whole
page, and the first screen at 1400×900 and at 400 px wide) go to ``ci-artifacts/`` (not committed),
with ``tables-*.json``: how many tables scroll inside their box (the goal is none).

Without Chromium the test is skipped, unless ``POSE_STUDY_REQUIRE_BROWSER=1`` (CI), where it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.results_tree import shared_lifter_study, shared_study

ARTIFACTS = Path(__file__).resolve().parents[2] / "ci-artifacts"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0")
WIDTH = 1400
FIRST_SCREEN = (1400, 900)
NARROW = (400, 900)
CHECK = """
<pre id="browser-check"></pre>
<script>
  const problems = [];
  addEventListener("error", e => problems.push("error: " + (e.message || (e.target && e.target.src || "?")
                                                           .slice(0, 80))), true);
  addEventListener("securitypolicyviolation",
                   e => problems.push("csp: " + e.violatedDirective + " " + e.blockedURI));
  addEventListener("load", () => {
    const images = Array.from(document.images);
    const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
    const height = document.documentElement.scrollHeight;
    document.querySelectorAll("details").forEach(d => { d.open = true; });
    const tables = Array.from(document.querySelectorAll("table")).map(t => {
      const box = t.parentElement;
      return {id: t.id, width: t.scrollWidth, box: box.clientWidth, right: box.getBoundingClientRect().right,
              scrolls: t.scrollWidth > box.clientWidth + 1, box_scrolls: getComputedStyle(box).overflowX === "auto"};
    });
    document.getElementById("browser-check").textContent = JSON.stringify({
      images: images.length, broken: broken, problems: problems, height: height,
      page_width: document.documentElement.scrollWidth, viewport: innerWidth, tables: tables});
  });
</script>
"""


def find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


@pytest.fixture(scope="module")
def browser() -> str:
    path = find_browser()
    if path is None:
        reason = f"no headless browser found (looked for {', '.join(BROWSERS)} on PATH)"
        if os.environ.get("POSE_STUDY_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " but POSE_STUDY_REQUIRE_BROWSER=1")
        pytest.skip(reason + "; install chromium, or set POSE_STUDY_REQUIRE_BROWSER=1 to make this a failure")
    return path


@pytest.fixture(scope="module")
def page() -> Path:
    return shared_study().report


def run_browser(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]


def check_in_browser(browser: str, page: Path, tmp: Path) -> dict:
    """Load a copy of ``page`` at 1400 px wide with the checking script; returns what the script found."""
    html = page.read_text(encoding="utf-8")
    html = html.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';", 1)
    copy = tmp / "checked.html"
    copy.write_text(html.replace("</body>", CHECK + "</body>", 1), encoding="utf-8")
    done = run_browser(browser, tmp / "profile-check", "--virtual-time-budget=10000", f"--window-size={WIDTH},900",
                       "--dump-dom", copy.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', done.stdout, re.DOTALL)
    assert found and found.group(1), "the checking script did not run:\n" + done.stderr[-2000:]
    assert not console_lines(done.stderr), console_lines(done.stderr)
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_page_loads_cleanly_and_is_screenshotted(browser, page, tmp_path):
    result = check_in_browser(browser, page, tmp_path)
    assert result["images"] == 7 and result["broken"] == [] and result["problems"] == []
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    done = run_browser(browser, tmp_path / "profile-shot", f"--window-size={WIDTH},{result['height'] + 40}",
                       f"--screenshot={shot}", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert not console_lines(done.stderr), console_lines(done.stderr)
    assert shot.is_file() and shot.stat().st_size > 50_000
    from PIL import Image

    with Image.open(shot) as image:
        assert image.width == WIDTH and image.height > 3000


def screenshot(browser: str, page: Path, tmp: Path, name: str, size: tuple[int, int]) -> Path:
    """A screenshot of the top of ``page`` in a window of ``size``, into ``ci-artifacts/``."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / name
    shot.unlink(missing_ok=True)
    done = run_browser(browser, tmp / f"profile-{name}", f"--window-size={size[0]},{size[1]}",
                       f"--screenshot={shot}", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert not console_lines(done.stderr), console_lines(done.stderr)
    return shot


@pytest.mark.parametrize("which", ["two_arms", "every_arm"])
def test_tables_fit_1400_px_and_the_first_screen_is_shot(browser, which, tmp_path):
    """No table runs past the page outside a scrolling box at 1400 px; how many scroll is written out."""
    page = (shared_study() if which == "two_arms" else shared_lifter_study()).report
    result = check_in_browser(browser, page, tmp_path)
    assert result["viewport"] == WIDTH and result["page_width"] <= WIDTH, "the page scrolls sideways at 1400 px"
    tables = result["tables"]
    assert len(tables) >= 8
    for table in tables:
        assert table["right"] <= WIDTH, table  # every table's box lies within the page
        assert table["box_scrolls"] or not table["scrolls"], table  # a wider table scrolls inside its own box
    scrolling = [t["id"] for t in tables if t["scrolls"]]
    ARTIFACTS.mkdir(exist_ok=True)
    widths = {t["id"]: [t["width"], t["box"]] for t in tables}
    (ARTIFACTS / f"tables-{which}.json").write_text(json.dumps({"tables": len(tables), "scrolling": scrolling,
                                                                "width_and_box_px": widths}, indent=1))
    print(f"{which}: {len(scrolling)} of {len(tables)} tables scroll inside their box at {WIDTH} px: {scrolling}")
    assert scrolling == [], scrolling  # the goal, met by the fixture studies
    from PIL import Image

    for name, size in ((f"first-screen-{which}-1400x900.png", FIRST_SCREEN),
                       (f"first-screen-{which}-400.png", NARROW)):
        with Image.open(screenshot(browser, page, tmp_path, name, size)) as image:
            assert image.size == size
