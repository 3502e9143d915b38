"""The web page in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by Playwright.

A uvicorn server runs in a thread on a free localhost port; the page uploads the astronaut image and shows the
verdict and Grad-CAM evidence, then a short video and its P(fake) timeline. Skips when Chromium or Playwright
is missing.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_serve import make_video, settings_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--headless=new",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    # CI sets FAKESCOPE_REQUIRE_BROWSER=1: there a missing Chromium fails the test instead of skipping it
    pytest.mark.skipif(
        not CHROMIUM.is_file() and os.environ.get("FAKESCOPE_REQUIRE_BROWSER") != "1",
        reason="/usr/bin/chromium is missing (apt-get install chromium)",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service under uvicorn in a background thread; yields its base URL."""
    import torch
    import uvicorn

    from fakescope.models import create_detector, save_checkpoint
    from fakescope.serve import create_app

    d = tmp_path_factory.mktemp("browser")
    torch.manual_seed(0)
    ckpt = save_checkpoint(create_detector("meso4"), d / "meso4.safetensors")
    app = create_app(settings_for(d / "data", ckpt, explain=True))
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def page(server: str):
    from playwright import sync_api

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page()
            errors: list[str] = []
            pg.on("pageerror", lambda exc: errors.append(str(exc)))
            pg.goto(server + "/")
            yield pg
            assert errors == [], f"JavaScript errors on the page: {errors}"
        finally:
            browser.close()


def test_upload_image_shows_verdict(page, tmp_path: Path, astronaut: np.ndarray) -> None:
    img = tmp_path / "astronaut.jpg"
    Image.fromarray(astronaut).save(img)
    page.wait_for_function("document.getElementById('limits').textContent.includes('MB')")
    page.set_input_files("#file", str(img))
    page.wait_for_selector("#result:not([hidden])", timeout=120_000)
    verdict = page.text_content("#verdict")
    assert verdict in ("fake", "real")
    prob = float(page.text_content("#fake-prob"))
    assert 0.0 <= prob <= 1.0
    assert "1 face(s)" in page.text_content("#details")
    # the Grad-CAM overlay is shown and actually loaded
    page.wait_for_function(
        "[...document.querySelectorAll('#heatmaps img')].some(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.is_visible("#heatmaps-box")
    assert not page.is_visible("#timeline-box")  # no timeline for a still image
    assert not page.is_visible("#error")


def test_upload_video_shows_timeline(page, tmp_path: Path, astronaut: np.ndarray) -> None:
    video = make_video(tmp_path / "clip.mp4", astronaut)
    page.set_input_files("#file", str(video))
    page.wait_for_selector("#timeline svg polyline", timeout=120_000)
    assert page.text_content("#verdict") in ("fake", "real")
    lines = page.locator("#timeline svg polyline")  # one line per tracked face
    points = [p for i in range(lines.count()) for p in lines.nth(i).get_attribute("points").split()]
    assert len(points) >= 3  # one point per sampled frame with a face
    assert page.locator("#timeline svg circle").count() == len(points)


def test_unsupported_file_shows_error(page, tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    assert "415" in page.text_content("#error")
    assert "not a supported image or video" in page.text_content("#error")
    assert page.is_hidden("#result")
