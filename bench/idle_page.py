"""What an open page that nobody uses asks of the server, per minute of real time (issue 28).

    python bench/idle_page.py [--minutes 1]

Starts `python app.py` (preview engine) on a free port of 127.0.0.1, opens the page in Debian's
Chromium (Playwright), waits until the page has loaded, then counts for `--minutes` of idle time
every request the page sends to the server: queue events (`/gradio_api/queue/join`) and any
other HTTP request. Twice: with no images in "Your images", then after one generation (its
countdown running in the browser). Before issue 28 the history's countdown was a 5 s server
timer: 12 queue events per idle page per minute. Goal: 0.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from local_app import free_port, preview_app_env, serving, stop_app  # bench/ is on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
START_TIMEOUT_S = 900  # a loaded 2-core machine loads the preview engine slowly
CHROMIUM = "/usr/bin/chromium"


def idle_requests(page, seen: list[str], minutes: float) -> tuple[int, int]:
    """(queue events, all requests) the page sends while idle for `minutes`; `seen` is the
    list the page's request listener appends each URL to."""
    seen.clear()
    page.wait_for_timeout(minutes * 60_000)
    joins = sum("/gradio_api/queue/join" in url for url in seen)
    return joins, len(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    minutes = parser.parse_args().minutes

    from playwright.sync_api import expect, sync_playwright

    from tests.browser.helpers import IDLE_JS, generate, history_thumbnails

    folder = Path(tempfile.mkdtemp(prefix="idle-page-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with (folder / "server.log").open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "app.py"],
            cwd=ROOT,
            env=preview_app_env(folder, port),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not serving(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the app did not start: see {folder / 'server.log'}")
            time.sleep(0.5)
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            seen: list[str] = []
            page.on("request", lambda request: seen.append(request.url))
            page.goto(url)
            page.wait_for_function(IDLE_JS, timeout=120_000)
            page.wait_for_timeout(2_000)  # the load's own events settle
            empty = idle_requests(page, seen, minutes)
            generate(page)
            expect(history_thumbnails(page)).to_have_count(1, timeout=120_000)
            page.wait_for_function(IDLE_JS, timeout=120_000)
            page.wait_for_timeout(2_000)
            with_image = idle_requests(page, seen, minutes)
            browser.close()
    finally:
        stop_app(process)
    for name, (joins, requests) in (("no images", empty), ("one image", with_image)):
        print(
            f"idle page, {name}: {joins / minutes:.1f} queue events/min, "
            f"{requests / minutes:.1f} requests/min ({minutes:g} min)"
        )


if __name__ == "__main__":
    main()
