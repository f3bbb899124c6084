"""Regenerate the README's images with the app itself (tiny preset, so it runs offline on a CPU):
`.venv/bin/python -m docs.make_images` from the repository root, with Debian's chromium installed.

- docs/pose-modes.png: /dwpose in each of the seven draw modes on the standing preset, labelled.
- docs/screenshot.png: the page after uploading a preset and generating two samples.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file
from PIL import Image, ImageDraw, ImageFont
from playwright.sync_api import sync_playwright

from pipelines.pose import DrawMode
from tests.app_helpers import REPO, running_app
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS
from ui.pose_panel import DRAW_MODE_LABELS

DOCS = REPO / "docs"
POSE = REPO / "assets" / "poses" / "standing.json"
TILE_HEIGHT = 360
LABEL_HEIGHT = 36


def pose_modes(url: str) -> Image.Image:
    client = Client(url, verbose=False)
    font = ImageFont.load_default(size=22)
    tiles = []
    for mode in DrawMode:
        path, _ = client.predict(image=handle_file(str(POSE)), draw_mode=mode.value, api_name="/dwpose")
        with Image.open(path) as drawn:
            width = round(drawn.width * TILE_HEIGHT / drawn.height)
            tile = Image.new("RGB", (width, TILE_HEIGHT + LABEL_HEIGHT), "white")
            tile.paste(drawn.convert("RGB").resize((width, TILE_HEIGHT), Image.Resampling.LANCZOS), (0, 0))
        ImageDraw.Draw(tile).text((8, TILE_HEIGHT + 6), DRAW_MODE_LABELS[mode], fill="black", font=font)
        tiles.append(np.asarray(tile))
    gap = np.full((TILE_HEIGHT + LABEL_HEIGHT, 6, 3), 255, np.uint8)
    return Image.fromarray(np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1))


def page_screenshot(url: str, path: Path) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(url)
        page.set_input_files("#upload input[type=file]", str(POSE))
        page.wait_for_function("document.querySelector('#pose-info').innerText.includes('1 person')")
        page.get_by_label("Full pose", exact=True).check()
        page.fill("#prompt textarea", "a knight in silver armour in a castle courtyard, golden hour")
        for selector, value in (("#steps", "8"),):
            page.locator(f"{selector} input[type=number]").fill(value)
        page.locator("#samples input[type=number]").fill("2")
        page.locator("#samples input[type=number]").press("Enter")
        page.click("#generate")
        page.wait_for_function("document.querySelectorAll('#gallery .caption-label').length === 3")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(path), full_page=True)
        browser.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch, running_app(Path(scratch)) as url:
        pose_modes(url).save(DOCS / "pose-modes.png")
        page_screenshot(url, DOCS / "screenshot.png")


if __name__ == "__main__":
    main()
