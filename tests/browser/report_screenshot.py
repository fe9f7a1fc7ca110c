"""Screenshot a demo incident's report.html in a real browser and check it is not blank.

    python tests/browser/report_screenshot.py                  # runs `collector demo` for a real bundle
    python tests/browser/report_screenshot.py --bundle DIR     # an existing bundle folder
    python tests/browser/report_screenshot.py --synthetic      # the unit tests' capture (no lab)

Writes report.html and report.png (default into ./report-screenshot/) and exits 0 only
when the screenshot is the page: the right size, mostly white but with enough drawn
pixels, and the invalid-SPI red and the timeline's lane grey both present (the SVG was
drawn, not just the text). Needs Chromium: Debian `apt-get install -y chromium`
(or set $CHROMIUM to the binary). Everything stays on this machine: the page has no
external reference and Chromium is started with networking to the outside unused.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

WIDTH, HEIGHT = 1280, 2400
RED = (0xC6, 0x28, 0x28)  # invalid-SPI dots (report_html._KIND_COLOUR)
LANE_GREY = (0xBD, 0xBD, 0xBD)  # lane lines


def chromium() -> str:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    sys.exit("no Chromium found: apt-get install -y chromium (or set CHROMIUM)")


def demo_bundle(work: Path) -> Path:
    out = work / "bundles"
    env = {**os.environ, "COLLECTOR_STATE": str(work / "state")}  # never the user's known_hosts
    done = subprocess.run([sys.executable, "-m", "collector", "demo", "--out", str(out)], capture_output=True,
                          text=True, timeout=300, cwd=work, env=env)
    if done.returncode != 0:
        sys.exit(f"collector demo failed: {done.stderr.strip()[-500:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def synthetic_html() -> str:
    sys.path.insert(0, str(REPO / "tests" / "unit"))
    from test_report_html import result_with_offsets  # the unit tests' capture

    from collector.diagnose.report_html import render_capture_html

    return render_capture_html(result_with_offsets())


def screenshot(browser: str, page: Path, png: Path) -> None:
    profile = tempfile.mkdtemp(prefix="collector-chromium-")
    try:
        done = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             "--disable-extensions", "--disable-background-networking", f"--user-data-dir={profile}",
             f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={png}", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if done.returncode != 0 or not png.is_file():
        sys.exit(f"chromium failed ({done.returncode}): {done.stderr.strip()[-500:]}")


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit, non-interlaced PNG."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {colour}, interlace {interlace})")
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + a) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + b) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line) if bpp == 3 else bytes(v for k, v in enumerate(line) if k % 4 != 3))
        prev = line
    return width, height, rows


def check(png: Path) -> list[str]:
    width, height, rows = read_png(png)
    problems = []
    if (width, height) != (WIDTH, HEIGHT):
        problems.append(f"size {width}x{height}, expected {WIDTH}x{HEIGHT}")
    total = drawn = red = grey = 0
    for row in rows:
        for k in range(0, len(row), 3):
            pixel = (row[k], row[k + 1], row[k + 2])
            total += 1
            if pixel != (255, 255, 255):
                drawn += 1
            if all(abs(p - q) <= 12 for p, q in zip(pixel, RED)):
                red += 1
            elif pixel == LANE_GREY:
                grey += 1
    share = drawn / total
    print(f"{png}: {width}x{height}, {share:.1%} of pixels drawn, {red} invalid-SPI red, {grey} lane grey")
    if share < 0.01:
        problems.append(f"blank: only {share:.2%} of the pixels are not white")
    if red < 20:
        problems.append("no invalid-SPI marks drawn (the timeline SVG did not render)")
    if grey < 200:
        problems.append("no timeline lanes drawn")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = ap.add_mutually_exclusive_group()
    source.add_argument("--bundle", type=Path, help="An incident bundle folder.")
    source.add_argument("--synthetic", action="store_true", help="The unit tests' capture; no lab needed.")
    ap.add_argument("--out", type=Path, default=Path("report-screenshot"))
    args = ap.parse_args()
    browser = chromium()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.synthetic:
        html = synthetic_html()
    else:
        from collector.diagnose.report_html import render_bundle_html

        bundle = args.bundle or demo_bundle(Path(tempfile.mkdtemp(prefix="collector-demo-")))
        print(f"bundle: {bundle}")
        html = render_bundle_html(bundle)
    page = args.out / "report.html"
    page.write_text(html, encoding="utf-8")
    png = args.out / "report.png"
    screenshot(browser, page, png)
    problems = check(png)
    for problem in problems:
        print(f"FAILED: {problem}")
    print("screenshot: " + ("OK" if not problems else "NOT OK") + f" ({png})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
