"""report.html in a real headless browser (Debian chromium + chromium-driver, driven by selenium).

Every image must decode to the size of the PNG written beside the report and the console must stay
free of errors. Screenshots of the whole page go to ``$PINNLOG_SCREENSHOTS`` when it is set.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM and Path(CHROMEDRIVER).exists()),
        reason="chromium or chromium-driver is not installed (apt-get install chromium chromium-driver)",
    ),
]

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1300,900",
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    return struct.unpack(">II", header[16:24])


@pytest.mark.parametrize("which", ["full_report", "compare_report"])
def test_every_image_decodes_and_the_console_has_no_error(browser, request, which):
    report = request.getfixturevalue(which)
    browser.get_log("browser")  # drop anything from before this page
    browser.get(report.html.as_uri())
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])"
    )
    figures = report.summary["figures"]
    assert len(images) == len(figures) > 0
    for (complete, width, height, alt), figure in zip(images, figures, strict=True):
        assert complete and width > 0, figure["name"]
        assert (width, height) == png_size(report.out_dir / figure["png"])
        assert alt == figure["title"]
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    assert browser.execute_script("return document.title").startswith("pinnlog ")
    folder = os.environ.get("PINNLOG_SCREENSHOTS")
    if folder:
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1300, min(int(height) + 100, 16000))
        Path(folder).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(folder) / f"{which}.png"))
        browser.set_window_size(1300, 900)
