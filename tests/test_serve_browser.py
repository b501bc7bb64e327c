"""`deeppose serve` used as a person would: the real command started, its page opened in headless Chromium (Debian's
`chromium` and `chromium-driver`, driven by Selenium), a real LSP photo picked and another dropped, and the joints
shown on the page checked against the API's answer for the same file. Screenshots go to
$DEEPPOSE_ARTIFACTS (default reports/test-artifacts)."""

from __future__ import annotations

import base64
import colorsys
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("DEEPPOSE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DEEPPOSE_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("DEEPPOSE_ARTIFACTS", Path(__file__).resolve().parents[1] / "reports" /
                                "test-artifacts"))


def _need(ok: bool, what: str) -> None:
    """Skip with a reason when the browser is missing; under CI=true (where .ci/run installs it) fail."""
    if not ok:
        message = f"{what} (install Debian's chromium and chromium-driver; see the README)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """`deeppose serve` with the shipped model on a free loopback port; its address."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = ARTIFACTS / "serve.log"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "deeppose", "serve", "--port", str(port), "--threads", "1"],
                                   stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"deeppose serve exited with {process.returncode}: {log.read_text()}"
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the server did not start within 120 s: {log.read_text()}"
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        process.wait(20)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (the dev extra) drives the browser")
    from selenium.webdriver.chrome.service import Service

    _need(Path(CHROMIUM).is_file() or shutil.which(CHROMIUM) is not None, f"no Chromium at {CHROMIUM}")
    _need(Path(CHROMEDRIVER).is_file() or shutil.which(CHROMEDRIVER) is not None, f"no ChromeDriver at {CHROMEDRIVER}")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1200,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _open(browser: Any, url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url + "/")
    WebDriverWait(browser, 30).until(lambda d: d.find_element("id", "status").get_attribute("data-state") != "idle")
    assert browser.find_element("id", "status").get_attribute("data-state") == "ready", \
        browser.find_element("id", "status").text


def _wait_for_answer(browser: Any) -> str:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 60).until(
        lambda d: d.find_element("id", "status").get_attribute("data-state") in ("done", "error"))
    return browser.find_element("id", "status").get_attribute("data-state")


def _page_joints(browser: Any, person: int = 0) -> list[dict[str, Any]]:
    rows = browser.find_elements("css selector", f"#person-{person} tbody tr")
    return [{"name": r.get_attribute("data-name"), "x": float(r.get_attribute("data-x")),
             "y": float(r.get_attribute("data-y")), "confidence": float(r.get_attribute("data-confidence"))}
            for r in rows]


def _api(url: str, photo: Path) -> dict[str, Any]:
    answer = httpx.post(url + "/v1/pose", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")}, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _confidence_rgb(c: float) -> np.ndarray:
    """The page's joint colour: hsl(round(120 c), 80 %, 42 %)."""
    return np.array(colorsys.hls_to_rgb(round(120 * c) / 360, 0.42, 0.8)) * 255


def _check_drawing(browser: Any, answer: dict[str, Any]) -> int:
    """The canvas holds the photo with each person's joints' discs in their confidence colours (people drawn in
    order); returns the discs checked (those no later disc covers)."""
    data = browser.execute_script("return document.getElementById('canvas').toDataURL('image/png');")
    canvas = cv2.cvtColor(cv2.imdecode(np.frombuffer(base64.b64decode(data.split(",")[1]), np.uint8),
                                       cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(float)
    scale = float(browser.find_element("id", "canvas").get_attribute("data-scale"))
    assert canvas.shape[:2] == (round(answer["height"] * scale), round(answer["width"] * scale))
    t = max(2.0, min(answer["width"], answer["height"]) / 110)
    drawn = [j for person in answer["people"] for j in person["joints"]]
    joints = np.array([[j["x"], j["y"]] for j in drawn])
    checked = 0
    for k, joint in enumerate(drawn):
        later = np.linalg.norm(joints[k + 1:] - joints[k], axis=1)
        if (later < 1.4 * t * 1.2).any():
            continue  # another disc is drawn over this one
        x, y = (joints[k] * scale).round().astype(int)
        if not (0 <= x < canvas.shape[1] and 0 <= y < canvas.shape[0]):
            continue
        assert np.abs(canvas[y, x] - _confidence_rgb(joint["confidence"])).max() < 16, (joint, canvas[y, x])
        checked += 1
    return checked


def test_a_photo_picked_in_the_page_shows_the_apis_joints(server, browser, lsp_root):
    photo = lsp_root / "images" / "im1003.jpg"
    _open(browser, server)
    browser.find_element("id", "file").send_keys(str(photo.resolve()))
    state = _wait_for_answer(browser)
    browser.save_screenshot(str(ARTIFACTS / "serve_page.png"))
    assert state == "done", browser.find_element("id", "status").text
    api = _api(server, photo)
    assert _page_joints(browser) == api["joints"] == api["people"][0]["joints"]  # the very numbers, joint by joint
    for k, person in enumerate(api["people"]):  # a table per person
        assert _page_joints(browser, k) == person["joints"]
    assert not browser.find_elements("id", f"person-{len(api['people'])}")
    assert _check_drawing(browser, api) >= 8
    n = len(api["people"])
    assert f"{n} {'person' if n == 1 else 'people'} found" in browser.find_element("id", "summary").text


def test_a_dropped_photo_and_a_dropped_broken_file(server, browser, lsp_root):
    """The drop zone: a broken JPEG shows the server's one-line error; a real photo then shows its joints."""
    photo = lsp_root / "images" / "im1500.jpg"
    drop = """
        const [name, b64] = arguments;
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
        document.getElementById("drop").dispatchEvent(new DragEvent("drop", { dataTransfer: transfer,
                                                                            bubbles: true, cancelable: true }));
    """
    _open(browser, server)
    browser.execute_script(drop, "broken.jpg", base64.b64encode(b"\xff\xd8\xff not a jpeg").decode())
    assert _wait_for_answer(browser) == "error"
    message = browser.find_element("id", "status").text
    browser.save_screenshot(str(ARTIFACTS / "serve_page_error.png"))
    assert "broken.jpg: corrupt or unsupported image" in message, message
    browser.execute_script(drop, photo.name, base64.b64encode(photo.read_bytes()).decode())
    assert _wait_for_answer(browser) == "done", browser.find_element("id", "status").text
    assert _page_joints(browser) == _api(server, photo)["joints"]


def test_a_team_photo_shows_a_table_and_a_colour_per_person(server, browser, shared_data):
    """Several people: one table each, in the API's order, each headed in its own colour."""
    photo = shared_data / "multi" / "images" / "coco_000000196141.jpg"
    _open(browser, server)
    browser.find_element("id", "file").send_keys(str(photo.resolve()))
    assert _wait_for_answer(browser) == "done", browser.find_element("id", "status").text
    browser.save_screenshot(str(ARTIFACTS / "serve_page_team.png"))
    api = _api(server, photo)
    n = len(api["people"])
    assert n >= 2 and f"{n} people found" in browser.find_element("id", "summary").text
    for k, person in enumerate(api["people"]):
        assert _page_joints(browser, k) == person["joints"]
    swatches = [e.value_of_css_property("background-color")
                for e in browser.find_elements("css selector", "#people h2 .swatch")]
    assert len(swatches) == n and len(set(swatches)) == n
