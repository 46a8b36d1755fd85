"""The voice page in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.stand_ins.llm_server import OrpheusStandIn

# Screenshots land here for a person to look at (ignored by git).
ARTIFACTS = Path(__file__).resolve().parent.parent / ".artifacts"
TIMEOUT_MS = 30_000


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "the page tests need Debian's chromium: script/setup installs it"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable,
            # --no-sandbox: CI runs as root; autoplay: a headless run has no speakers to ask.
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        yield launched
        await launched.close()


async def open_page(browser: Browser, url: str) -> Page:
    page = await browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(url)
    return page


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)


async def test_choose_a_voice_type_and_hear_it_while_it_streams(
    browser: Browser, http_url: str, llm: OrpheusStandIn
) -> None:
    llm.behaviour.tokens_per_second = 400
    page = await open_page(browser, http_url)
    await page.wait_for_function("window.orpheus.voices === 8")
    assert await page.locator("#voice optgroup").get_attribute("label") == "English"
    await page.select_option("#voice", "leo")
    await page.fill("#text", "The washer is done.")
    await page.click("text=<laugh>")  # the tag goes in at the cursor, at the end
    await page.fill("#speed", "1")
    await page.click("#speak")
    await page.wait_for_function("window.orpheus.status === 'playing'")  # audio while streaming
    await page.wait_for_function("window.orpheus.status === 'done'")
    request = llm.requests[-1]
    assert (request.voice, request.text) == ("leo", "The washer is done. <laugh>")
    seconds = await page.evaluate("window.orpheus.decodedSeconds")
    assert seconds == pytest.approx(len(request.frames) * 2048 / 24000, abs=1e-3)
    assert await page.is_visible("#download")
    await screenshot(page, "page-spoken.png")


async def test_a_server_error_is_shown_on_the_page(browser: Browser, http_url: str) -> None:
    page = await open_page(browser, http_url)
    await page.wait_for_function("window.orpheus.voices > 0")
    await page.fill("#text", "   ")
    await page.click("#speak")
    await page.wait_for_function("window.orpheus.status === 'error'")
    assert "the text is empty" in await page.inner_text("#error")
    assert await page.is_visible("#error")
    await screenshot(page, "page-error.png")


async def test_the_page_asks_for_the_api_key_and_keeps_it(
    browser: Browser, make_settings, engine_factory, http_factory
) -> None:
    url = await http_factory(await engine_factory(make_settings(http_api_key="page-key")))
    page = await open_page(browser, url)
    await page.wait_for_selector("#key-box:not([hidden])")
    assert "API key" in await page.inner_text("#error")
    await page.fill("#api-key", "page-key")
    await page.click("#save-key")
    await page.wait_for_function("window.orpheus.voices === 8")
    await page.reload()  # the key is kept in the browser
    await page.wait_for_function("window.orpheus.voices === 8")
    await page.click("#speak")
    await page.wait_for_function("window.orpheus.status === 'done'")
    assert await page.evaluate("window.orpheus.decodedSeconds") > 0
