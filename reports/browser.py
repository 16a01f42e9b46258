"""Open a report in a real headless Chromium: collect console errors and network requests, save a screenshot.

The report promises to be self-contained (no network, no script errors); this checks it the way a reader
would see it. Uses Playwright's Python driver with the system Chromium (Debian package ``chromium``), so
no browser download is needed. Usage:

    python -m reports.browser runs/gee/report.html --screenshot docs/report.png
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Chromium's own background services try the network at start-up; on a closed machine that only adds
# noise and delays, so they are switched off (the page itself is what is being checked).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class BrowserUnavailable(RuntimeError):
    """No Chromium or no Playwright driver on this machine: callers skip with this message."""


@dataclass
class PageCheck:
    title: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    svg_count: int = 0
    section_ids: list[str] = field(default_factory=list)


def chromium_path() -> str:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        found = candidate and shutil.which(candidate)
        if found:
            return found
    raise BrowserUnavailable("no Chromium found (install the Debian package 'chromium', or set $CHROMIUM)")


def check_report(
    html: Path, screenshot: Path | None = None, width: int = 1200, height: int | None = None
) -> PageCheck:
    """Load ``html`` in headless Chromium; screenshot the whole page, or the top ``height`` pixels."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BrowserUnavailable(
            "the 'playwright' Python package is not installed (pip install playwright)"
        ) from None
    executable = chromium_path()
    html = Path(html).resolve()
    url = html.as_uri()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height or 900})
            result = PageCheck(title="")
            page.on("console", lambda m: result.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: result.page_errors.append(str(e)))
            page.on("request", lambda r: result.external_requests.append(r.url) if r.url != url else None)
            page.goto(url, wait_until="load")
            result.title = page.title()
            result.svg_count = page.locator("svg.chart").count()
            result.section_ids = page.eval_on_selector_all("section", "els => els.map(e => e.id)")
            if screenshot is not None:
                screenshot = Path(screenshot)
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=height is None)
        finally:
            browser.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument(
        "--height", type=int, help="screenshot only the top HEIGHT pixels (default: whole page)"
    )
    args = parser.parse_args(argv)
    try:
        result = check_report(args.html, args.screenshot, height=args.height)
    except BrowserUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"title: {result.title}")
    print(f"charts: {result.svg_count}; sections: {', '.join(result.section_ids)}")
    print(
        f"console errors: {len(result.console_errors)}; page errors: {len(result.page_errors)}; "
        f"requests beyond the file: {len(result.external_requests)}"
    )
    for line in result.console_errors + result.page_errors + result.external_requests:
        print(f"  {line}")
    return 1 if (result.console_errors or result.page_errors or result.external_requests) else 0


if __name__ == "__main__":
    sys.exit(main())
