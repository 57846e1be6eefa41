"""The web demo driven as a person would: ``python -m pytorch_grad_cam.demo``
on a free loopback port, a real headless Chromium (Debian's chromium and
chromedriver; ``.ci/run`` installs them), upload ``examples/chelsea.jpg``,
GradCAM, Explain; the overlay is shown and differs from the photo, a
screenshot is saved (to ``$DEMO_SCREENSHOT`` if set), an unknown class
gets its message, and the page asked nothing of any host but this one."""
from __future__ import annotations

import io
import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import numpy as np
import pytest
from demo_helpers import demo_server, free_port, photo_rgb
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
T = TypeVar("T")

pytest.importorskip("gradio")
webdriver = pytest.importorskip("selenium.webdriver")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(f"the browser test needs {CHROMIUM} and {CHROMEDRIVER} (Debian: apt-get install "
                "chromium chromium-driver; .ci/run installs them)", allow_module_level=True)

from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

pytestmark = pytest.mark.slow  # a server and a headless browser


def wait_for(what: str, condition: Callable[[], T | None], timeout: float) -> T:
    """Poll ``condition`` until it returns something true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def start_browser() -> Any:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1400,1000", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--disable-default-apps"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    except WebDriverException as error:
        pytest.skip(f"Chromium does not start here: {error.msg}")
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    return driver


def requested_urls(driver: Any) -> set[str]:
    """Every URL the page requested: Chrome's network log (also requests
    that failed or were blocked) and the page's resource timing entries."""
    urls = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            params = message["params"]
            urls.add(params["request"]["url"] if "request" in params else params["url"])
    urls.update(driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"))
    urls.add(driver.current_url)
    return urls


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """The (address, port) pairs the process listens on."""
    psutil = pytest.importorskip("psutil")
    connections = psutil.Process(pid).net_connections(kind="inet")
    return {(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN}


def shown_overlays(driver: Any) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#overlays img')].map(i => i.src)"
        ".filter(s => s.includes('/gradio_api/file='))")


def screenshot_path(tmp_path: Path) -> Path:
    chosen = os.environ.get("DEMO_SCREENSHOT")
    path = Path(chosen) if chosen else tmp_path / "demo.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def full_page_screenshot(driver: Any, path: Path) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(int(height) + 140, 1000), 4000))
    time.sleep(0.5)
    assert driver.save_screenshot(str(path)), f"could not save the screenshot to {path}"


def test_explain_a_photo_in_a_real_browser(tmp_path, chelsea_path):
    port = free_port()
    command = [sys.executable, "-m", "pytorch_grad_cam.demo", "--port", str(port),
               "--device", "cpu", "--quiet"]
    with demo_server(command, port, tmp_path / "server.log") as (url, server):
        listening = listening_addresses(server.pid)
        assert listening == {("127.0.0.1", port)}, f"the demo listens on {listening}"
        driver = start_browser()
        try:
            driver.get(url)
            upload = wait_for("the photo's upload field", lambda: driver.find_elements(
                By.CSS_SELECTOR, "#photo input[type=file]"), 60)[0]
            upload.send_keys(str(chelsea_path))
            wait_for("the uploaded photo", lambda: driver.find_elements(
                By.CSS_SELECTOR, "#photo img"), 30)

            gradcam = driver.find_element(By.CSS_SELECTOR, "#methods input[name='gradcam']")
            if not gradcam.is_selected():
                gradcam.click()
            assert gradcam.is_selected()
            others = [box.get_attribute("name") for box in driver.find_elements(
                By.CSS_SELECTOR, "#methods input[type=checkbox]") if box.is_selected()]
            assert others == ["gradcam"]

            driver.find_element(By.ID, "run").click()
            sources = wait_for("the overlay", lambda: shown_overlays(driver), 120)
            assert len(sources) == 1
            top5 = wait_for("the top-5 predictions", lambda: driver.find_element(
                By.ID, "top5").text.strip(), 30)
            assert "Egyptian cat (285)" in top5 and "tabby (281)" in top5
            status = driver.find_element(By.ID, "status").text
            assert "with GradCAM on" in " ".join(status.split())

            with urllib.request.urlopen(sources[0], timeout=30) as response:
                overlay = np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"))
            photo = photo_rgb(chelsea_path)
            assert overlay.shape == photo.shape  # the overlay is drawn on the photo itself
            difference = np.abs(overlay.astype(int) - photo.astype(int)).mean()
            assert difference > 20, f"the overlay hardly differs from the photo ({difference:.1f})"
            # the heat map's colours: strong red and blue channels where the photo has none
            assert overlay[..., 0].std() > 30 and overlay[..., 2].std() > 30

            shot = screenshot_path(tmp_path)
            full_page_screenshot(driver, shot)
            with Image.open(shot) as image:
                assert image.width >= 1000 and image.height >= 900

            # a person mistypes a class: the page says so and offers close matches
            box = driver.find_element(By.CSS_SELECTOR, "#class input")
            box.click()
            box.send_keys(Keys.CONTROL, "a")
            box.send_keys("tabby kat")
            box.send_keys(Keys.ENTER)
            driver.find_element(By.ID, "status").click()  # leave the box: the value is kept
            driver.find_element(By.ID, "run").click()
            toast = wait_for("the error message", lambda: " ".join(
                e.text for e in driver.find_elements(By.CSS_SELECTOR, "[data-testid=toast-body]")),
                60)
            assert "unknown class 'tabby kat'; close matches: tabby (281)" in toast
            assert "Traceback" not in driver.page_source

            foreign = sorted(u for u in requested_urls(driver)
                             if urlparse(u).scheme not in ("data", "blob", "about")
                             and urlparse(u).hostname not in LOOPBACK)
            assert foreign == [], f"the page made requests to other hosts: {foreign}"
        finally:
            driver.quit()
    assert shot.is_file()
