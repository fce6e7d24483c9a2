"""The built documentation site in a real browser (`make docs-check`).

Serves `build/site` (from `mkdocs build --strict`) on loopback, has headless Chromium screenshot
the home page and one API page, and fails when a page is blank or broken: a screenshot that is
(almost) one colour, or a page without the site's title. Screenshots: build/docs-check/*.png.

    python bench/docs_check.py [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PAGES = {"home": "index.html", "api": "api/index.html"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    p.add_argument("--site", default=str(ROOT / "build" / "site"))
    p.add_argument("--out", default=str(ROOT / "build" / "docs-check"))
    args = p.parse_args(argv)
    site, out = Path(args.site), Path(args.out)
    if not (site / "index.html").is_file():
        print(f"error: {site} has no index.html: run mkdocs build --strict first", file=sys.stderr)
        return 2
    if not Path(args.chromium).exists():
        print(f"error: no Chromium at {args.chromium} (apt-get install chromium)", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    handler = functools.partial(Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    from PIL import Image
    bad = []
    try:
        for name, page in PAGES.items():
            png = out / f"{name}.png"
            with tempfile.TemporaryDirectory() as profile:
                subprocess.run([args.chromium, "--headless", "--no-sandbox", "--disable-gpu",
                                "--disable-quic", "--no-first-run",
                                "--disable-background-networking", "--disable-component-update",
                                "--disable-sync", f"--user-data-dir={profile}",
                                "--window-size=1280,900", f"--screenshot={png}",
                                f"{base}/{page}"], capture_output=True, timeout=120, check=False)
            html = (site / page).read_text(errors="replace")
            if not png.is_file():
                bad.append(f"{name}: no screenshot")
                continue
            img = np.asarray(Image.open(png).convert("L"), float)
            spread = float(img.std())
            print(f"{name}: {png} ({img.shape[1]}x{img.shape[0]}, pixel spread {spread:.1f})")
            if spread < 10:
                bad.append(f"{name}: the page is blank (pixel spread {spread:.1f})")
            if "jaxrl3m" not in html:
                bad.append(f"{name}: the page lacks the site's title")
    finally:
        httpd.shutdown()
    for b in bad:
        print(f"error: {b}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
