"""The page that ``convscale serve`` shows at ``/``, checked in a real headless browser: Chromium from the system's
packages (``apt-get install chromium``), driven by Playwright (``pip install playwright``; its own browser download
is not used). It starts a server for a deployed folder, opens the page, chooses an image in the file input as a
person would, waits for the top-5 table, checks it against ``POST /predict`` and saves a screenshot.

    python scripts/serve_page_check.py DEPLOYED_DIR IMAGE --out results/deploy/serve_page.png
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder")
    p.add_argument("image")
    p.add_argument("--out", default="results/deploy/serve_page.png")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "convscale.cli", "serve", args.folder, "--port", str(port)])
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        body = Path(args.image).read_bytes()
        request = urllib.request.Request(f"{url}/predict", data=body, headers={"content-type": "image/png"})
        want = [row["label"] for row in json.loads(urllib.request.urlopen(request, timeout=60).read())["top"]]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 800, "height": 760})
            page.goto(url)
            page.wait_for_function("document.getElementById('meta').textContent !== 'loading…'")
            page.set_input_files("#file", args.image)
            page.wait_for_selector("#top tr")
            shown = [row.inner_text().split("\t")[0].strip() for row in page.query_selector_all("#top tr")]
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out, full_page=True)
            meta = page.inner_text("#meta")
            browser.close()
        assert shown == want, (shown, want)
        print(f"the page shows {shown} for {args.image} (POST /predict: {want}); {meta}; screenshot {args.out}")
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
