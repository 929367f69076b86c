"""The HTML report: self-contained, escaped, and really rendered by headless Chromium.

Chromium (Debian's ``chromium``; ``.ci/run`` installs it) takes a phone-sized
screenshot, which must not be blank, and dumps the DOM, which must hold the
figures. The PNG is decoded here with zlib (no imaging library needed).
"""

from __future__ import annotations

import random
import struct
import subprocess
import zlib
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.test_audience import write_store
from tests.test_history_aggregates import Simulation, random_events
from tracker import audience, report
from tracker.periods import Grain
from tracker.store import StoreReader

CHROMIUM = "/usr/bin/chromium"
NOW = datetime(2024, 11, 8, 21, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
HOSTILE = "<script>alert('x')</script>&amp;"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A report over 40 days of events: sources and languages include hostile text."""
    tmp = tmp_path_factory.mktemp("report")
    sim = Simulation(BERLIN)
    random_events(sim, date(2024, 9, 25), 45, seed=21, users=400)
    rng = random.Random(4)
    for record in sim.users.values():
        record["source"] = rng.choice([None, None, "ads", "channel_post", HOSTILE])
        record["language_code"] = rng.choice(["en", "en", "de", "fa", HOSTILE, None])
    store = write_store(sim, tmp / "users.json")
    html = report.render(StoreReader(store), days=30, now=NOW, tz=BERLIN)
    path = tmp / "report.html"
    path.write_text(html)
    return path, html


def test_self_contained_and_escaped(page: tuple[Path, str]) -> None:
    _, html = page
    assert "http" not in html and "<script" not in html and "@import" not in html and "url(" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;amp;" in html
    assert html.count("<svg") >= 3 and "name='viewport'" in html


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp / 'chromium-profile'}",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=True)


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the unfiltered rows of an 8-bit RGB/RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0
    bpp = 3 if colour == 2 else 4
    raw, stride, rows = zlib.decompress(idat), width * bpp, []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, up_left = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, [bytes(r[i : i + 3]) for r in rows for i in range(0, stride, bpp)]  # type: ignore[misc]


@pytest.mark.slow
def test_renders_in_headless_chromium(page: tuple[Path, str], tmp_path: Path) -> None:
    path, _ = page
    shot = tmp_path / "report.png"
    chromium(
        f"--screenshot={shot}", "--window-size=412,2600", "--hide-scrollbars", path.as_uri(), tmp=tmp_path
    )
    width, height, pixels = png_pixels(shot.read_bytes())
    assert (width, height) == (412, 2600)
    colours = set(pixels)
    assert len(colours) > 50  # text, three charts and a heatmap, not a blank page
    assert bytes((0x2F, 0x6F, 0xDE)) in colours and bytes((0xF0, 0x8C, 0x2E)) in colours  # the bars drew
    dom = chromium("--dump-dom", path.as_uri(), tmp=tmp_path).stdout
    source = StoreReader(path.parent / "users.json")
    total = len(source.columns(["id"])["id"])
    assert f"Users<b>{total:,}</b>" in dom
    cohorts = audience.retention(source, Grain.WEEK, 12, NOW, BERLIN).cohorts
    assert f"{cohorts[-2].cohort.isoformat()} ({cohorts[-2].users:,})" in dom
    assert dom.count("<svg") >= 3 and "alert(" in dom and "<script>alert" not in dom
