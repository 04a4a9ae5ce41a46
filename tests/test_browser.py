"""The reports in a real headless browser (Debian's chromium and chromedriver, through selenium):
each page loads without console errors, every plotly figure has drawn, and nothing is wider
than a 1280-pixel window (wide tables scroll inside their own box). Screenshots are saved
under pytest's tmp_path (their paths are printed); with ``FACTORGYM_SCREENSHOTS=DIR`` the
demo's first screen and agents section are also written to DIR (how ``docs/`` gets them).

Without chromium/chromedriver the tests skip, except under ``CI=true`` where they fail:
``.ci/run`` installs both.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_demo import _tiny

from factorgym.app.demo import run_demo

WIDTH, HEIGHT = 1280, 900


def _find(*names: str) -> str | None:
    for n in names:
        p = shutil.which(n) or (f"/usr/bin/{n}" if Path(f"/usr/bin/{n}").is_file() else None)
        if p:
            return p
    return None


CHROMIUM = _find("chromium", "chromium-browser")
CHROMEDRIVER = _find("chromedriver")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        reason = f"headless browser checks need chromium and chromedriver (found {CHROMIUM}, {CHROMEDRIVER}); apt-get install chromium chromium-driver"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI: {reason}")
        pytest.skip(reason)
    os.environ.setdefault("SE_AVOID_STATS", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={WIDTH},{HEIGHT}",
                "--hide-scrollbars", "--no-first-run", "--disable-extensions"):  # fmt: skip
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the driver's path is given: selenium-manager never downloads anything
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_window_size(WIDTH, HEIGHT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    run_demo(_tiny(out))
    return out


_RENDERED = """
const plots = Array.from(document.querySelectorAll('div.plot'));
return plots.map(p => ({
  id: p.id,
  plotly: p.classList.contains('js-plotly-plot'),
  svg: p.querySelectorAll('svg.main-svg').length,
  traces: p.querySelectorAll('.trace, .point, path.box').length,
  width: p.getBoundingClientRect().width,
}));
"""

_OVERFLOW = """
const wide = [];
document.querySelectorAll('body *').forEach(e => {
  if (e.closest('.tablewrap') && !e.classList.contains('tablewrap')) return;  // inside a scrolling box
  const r = e.getBoundingClientRect();
  if (r.width > 0 && r.right > window.innerWidth + 1) wide.push(e.tagName + '#' + e.id + '.' + e.className);
});
return {scroll: document.documentElement.scrollWidth, inner: window.innerWidth, wide: wide.slice(0, 10),
        tables: Array.from(document.querySelectorAll('.tablewrap')).map(t => getComputedStyle(t).overflowX)};
"""


def _open(driver: Any, page: Path) -> list[dict[str, Any]]:
    """Load ``page``, wait until every figure is drawn; return the figures' state."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop what an earlier page logged
    driver.get(page.resolve().as_uri())
    WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.readyState") == "complete")
    WebDriverWait(driver, 60).until(lambda d: all(p["plotly"] and p["svg"] for p in d.execute_script(_RENDERED)))
    return driver.execute_script(_RENDERED)


def _check_page(driver: Any, page: Path, shots: Path, name: str) -> None:
    plots = _open(driver, page)
    assert plots, f"{page} has no figure"
    assert all(p["plotly"] and p["svg"] >= 1 and p["traces"] >= 1 for p in plots), plots
    assert all(0 < p["width"] <= WIDTH for p in plots), plots
    errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert errors == [], errors
    lay = driver.execute_script(_OVERFLOW)
    assert lay["scroll"] <= lay["inner"], lay
    assert lay["wide"] == [], lay
    assert set(lay["tables"]) <= {"auto", "scroll"}, lay  # a wide table scrolls inside its own box
    shot = shots / f"{name}.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_demo_report_renders_in_a_browser(browser: Any, demo_dir: Path, tmp_path: Path) -> None:
    page = demo_dir / "report.html"
    _check_page(browser, page, tmp_path, "demo_report")
    html = page.read_text(encoding="utf-8")
    assert html.count("<script>") == 2 and "src=\"http" not in html  # plotly.js once, nothing fetched
    # the agents section, scrolled to the top of the window
    anchor = browser.execute_script(
        "const h = Array.from(document.querySelectorAll('h2')).find(e => e.textContent.startsWith('Agents'));"
        "h.scrollIntoView(); return h.id;"
    )
    assert anchor
    agents = tmp_path / "demo_report_agents.png"
    browser.save_screenshot(str(agents))
    print(f"screenshot: {agents}")
    docs = os.environ.get("FACTORGYM_SCREENSHOTS")
    if docs:
        Path(docs).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / "demo_report.png", Path(docs) / "demo_report_top.png")
        shutil.copyfile(agents, Path(docs) / "demo_report_agents.png")


def test_backtest_report_renders_in_a_browser(browser: Any, demo_dir: Path, tmp_path: Path) -> None:
    # the demo's backtest stage is a tiny backtest: run_backtest wrote this page
    _check_page(browser, demo_dir / "backtest" / "report.html", tmp_path, "backtest_report")


def test_the_checks_catch_a_page_wider_than_the_window(browser: Any, tmp_path: Path) -> None:
    import pandas as pd

    from factorgym.report import Report, dot_figure

    rep = Report("wide").add_figure(dot_figure(pd.Series({"a": 0.85, "b": 0.95})))
    page = rep.write(tmp_path / "wide.html")
    page.write_text(page.read_text().replace("</body>", '<div style="width:3000px">x</div><script>undefinedFn()</script></body>'))
    _open(browser, page)
    lay = browser.execute_script(_OVERFLOW)
    assert lay["scroll"] > lay["inner"] and lay["wide"]
    assert any(e.get("level") == "SEVERE" for e in browser.get_log("browser"))
