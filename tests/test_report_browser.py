"""The HTML report in a real browser: headless Chromium renders report.html and explorer.html.

Needs Debian's ``chromium`` package (``apt-get install -y chromium``); skipped with that hint when
no Chromium binary is on PATH. Set ``CHUNKEVAL_SCREENSHOTS=DIR`` to keep the screenshots.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from chunkeval.report import write_report
from test_report_explorer import _dataset, _table

pytestmark = pytest.mark.slow

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
HIT, MISS, NOISE = (155, 229, 155), (255, 179, 179), (255, 233, 168)  # the explorer's highlight colours


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
               f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)


def _screenshot(tmp_path: Path, page: Path, name: str, size: tuple[int, int]) -> np.ndarray:
    from matplotlib.image import imread

    png = tmp_path / f"{name}.png"
    _chromium(tmp_path, f"--screenshot={png}", f"--window-size={size[0]},{size[1]}", page.as_uri())
    keep = os.environ.get("CHUNKEVAL_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(keep) / png.name)
    assert png.read_bytes().startswith(b"\x89PNG")
    pixels = np.asarray(imread(png))
    assert pixels.shape[:2] == (size[1], size[0])
    rgb = np.round(pixels[..., :3] * 255).astype(np.int64)
    return rgb


def _has_colour(rgb: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int(np.count_nonzero(np.all(rgb == np.array(colour), axis=-1)))


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH: apt-get update && apt-get install -y chromium")
def test_report_and_explorer_render_in_chromium(tmp_path: Path) -> None:
    paths = write_report(_table(), tmp_path / "report", dataset=_dataset(), n_resamples=200, n_permutations=200,
                         show_progress=False)
    report = _screenshot(tmp_path, paths["html"], "report", (1280, 1600))
    # Not blank: the table, text and embedded plots give many colours and a mostly light page.
    colours = {tuple(c) for c in report.reshape(-1, 3)[::7].tolist()}
    assert len(colours) > 50
    assert 0.5 < float(np.mean(report.sum(axis=-1) > 600)) < 0.995

    explorer = _screenshot(tmp_path, paths["explorer"], "explorer", (1280, 1200))
    # The script ran: hits, misses and noise are painted in their colours (legend and text).
    for colour in (HIT, MISS, NOISE):
        assert _has_colour(explorer, colour) > 2000
    dom = _chromium(tmp_path, "--dump-dom", paths["explorer"].as_uri()).stdout
    # The first question (q1) with configurations X and Y: X hits part of the reference, misses the
    # rest and drags in noise; Y hits it exactly and retrieves a line of corpus b elsewhere.
    assert dom.count('<option value="') == 3 + 2 + 2
    # Counts include the legend's one span of each kind.
    assert dom.count('<span class="hit">') == 1 + 2 and dom.count('<span class="miss">') == 1 + 1
    assert dom.count('<span class="noise">') == 1 + 1 and dom.count('<span class="rank">') == 2
    assert "recall 0.769 · precision 0.233 · IoU 0.233 · characters: 20 hit, 6 missed, 60 noise" in dom
    assert "b, characters 0–40" in dom
