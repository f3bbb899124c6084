"""Regenerate the README's images with the app itself (tiny preset, so it runs offline on a CPU):
`.venv/bin/python -m docs.make_images` from the repository root, with Debian's chromium installed.

- docs/pose-modes.png: /dwpose in each of the seven draw modes on the standing preset, labelled.
- docs/screenshot.png, docs/screenshot-phone.png: the page at 1440×900 and 390×844 after the standing preset,
  Full pose and Generate.
- docs/editor.png: the pose editor after dragging the right wrist up.
- docs/sweep.png: the sweep section after a 3×2 sweep (guidance scale × scheduler).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file
from PIL import Image, ImageDraw, ImageFont
from playwright.sync_api import sync_playwright

from pipelines.pose import DrawMode
from tests.app_helpers import CHROMIUM, CHROMIUM_ARGS, REPO, running_app
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


def _page(browser, url: str, viewport: dict, **options):
    page = browser.new_page(viewport=viewport, **options)
    page.set_default_timeout(120_000)
    page.goto(url)
    page.click("#preset-standing")
    page.wait_for_function("document.querySelector('#pose-info').innerText.includes('1 person')")
    page.get_by_label("Full pose", exact=True).check()
    page.wait_for_function("document.querySelector('#pose-conditioning').innerText.includes('full pose')")
    return page


def _generate(page, samples: str) -> None:
    page.locator("#steps input[type=number]").fill("8")
    page.locator("#steps input[type=number]").press("Enter")
    page.locator("#samples input[type=number]").fill(samples)
    page.locator("#samples input[type=number]").press("Enter")
    page.click("#generate")
    page.wait_for_function("document.querySelector('#status').innerText.startsWith('✅')")
    page.wait_for_timeout(1000)


def page_screenshots(url: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        desktop = _page(browser, url, {"width": 1440, "height": 900})
        _generate(desktop, "2")
        desktop.mouse.move(0, 0)
        desktop.evaluate("window.scrollTo(0, 0)")
        desktop.screenshot(path=str(DOCS / "screenshot.png"))

        phone = _page(browser, url, {"width": 390, "height": 844}, has_touch=True, is_mobile=True)
        _generate(phone, "1")
        phone.locator("#prompt").scroll_into_view_if_needed()
        phone.evaluate(
            "window.scrollBy(0, document.querySelector('#prompt').getBoundingClientRect().top - 8)"
        )
        phone.screenshot(path=str(DOCS / "screenshot-phone.png"))

        desktop.click("#editor button")
        desktop.wait_for_selector('#pose-editor circle[data-part="body"][data-index="4"]')
        wrist = desktop.locator('#pose-editor [data-person="0"][data-part="body"][data-index="4"]')
        wrist.scroll_into_view_if_needed()
        box = wrist.bounding_box()
        start = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        desktop.mouse.move(*start)
        desktop.mouse.down()
        desktop.mouse.move(start[0] + 40, start[1] - 230, steps=8)
        desktop.mouse.up()
        desktop.wait_for_function("document.querySelector('#pose-info').innerText.includes('Edited')")
        desktop.wait_for_timeout(800)
        desktop.locator("#editor").screenshot(path=str(DOCS / "editor.png"))

        desktop.click("#sweep button")
        x_values = desktop.locator("#sweep-x-values textarea")
        x_values.wait_for()
        x_values.fill("3, 7.5, 12")
        x_values.press("Tab")
        desktop.locator("#sweep-y-axis input").click()
        desktop.get_by_role("option", name="Scheduler").click()
        desktop.locator("#sweep-y-values textarea").fill("Euler a, DDIM")
        desktop.locator("#sweep-y-values textarea").press("Tab")
        desktop.click("#sweep-run")
        desktop.wait_for_function("document.querySelector('#sweep-status').innerText.startsWith('✅')")
        desktop.wait_for_timeout(1000)
        desktop.locator("#sweep").screenshot(path=str(DOCS / "sweep.png"))
        browser.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch, running_app(Path(scratch)) as url:
        pose_modes(url).save(DOCS / "pose-modes.png")
        page_screenshots(url)


if __name__ == "__main__":
    main()
