"""The web page in a real headless browser: Debian's chromium driven by selenium,
against the server over HTTP on the fake models. Ask now and as of a date, open a
fact's timeline, forget a document and read the receipt, ask again.

``bash scripts/install-browser.sh`` installs chromium; without it the test is
skipped. ``KBASE_SCREENSHOTS=1`` also saves the screenshots into docs/img/
(``web-*.png``); else they go to the test's temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_server import ALICE, BOB, CEO, served

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="Debian's chromium is not installed: run `bash scripts/install-browser.sh` (root)",
)

PLANT = {
    "id": "leeds-plant",
    "title": "Acme opens a second plant",
    "url": "https://news.example.org/leeds-plant",
    "published": "2024-10-09",
    "text": "The second plant of Acme is Leeds.",
}


@pytest.fixture
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=DriverService(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Any]:
    folder = ROOT / "docs" / "img" if os.environ.get("KBASE_SCREENSHOTS") else tmp_path

    def shoot(driver: Any, name: str) -> None:
        driver.save_screenshot(str(folder / f"web-{name}.png"))

    yield shoot


def wait_for(driver: Any, css: str, text: str | None = None, timeout: float = 20) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout)
    if text is not None:
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))
    return wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)))


def ask(driver: Any, question: str, as_of: str = "") -> str:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.ID, "question")
    field.clear()
    field.send_keys(question)
    # A date input's typed form depends on the locale; its value does not.
    driver.execute_script(
        "arguments[0].value = arguments[1]", driver.find_element(By.ID, "as-of"), as_of
    )
    driver.execute_script("document.getElementById('answer').replaceChildren()")
    driver.find_element(By.ID, "ask-button").click()
    text: str = wait_for(driver, "#answer-text").text
    return text


def test_ask_open_a_timeline_forget_and_ask_again(tmp_path: Path, browser: Any, shots: Any) -> None:
    from selenium.webdriver.common.by import By

    with served(tmp_path / "kb") as (client, _service):
        assert client.post("/documents", json=[BOB, ALICE, PLANT]).status_code == 200
        base = str(client.base_url).rstrip("/")
        browser.get(f"{base}/")
        wait_for(browser, "#totals", "3 documents")

        # Ask now: the answer and its sources, linked to their documents.
        assert "Alice Chen" in ask(browser, CEO)
        sources = browser.find_elements(By.CSS_SELECTOR, "#sources li")
        assert ALICE["title"] in sources[0].text and "2024-05-02" in sources[0].text
        links = [a.get_attribute("href") for a in sources[0].find_elements(By.TAG_NAME, "a")]
        assert f"{base}/#/documents/alice" in links and ALICE["url"] in links
        shots(browser, "ask")

        # As of March 2024: Bob.
        assert "Bob Marsh" in ask(browser, CEO, as_of="2024-03-01")
        assert "As the knowledge base stood on 2024-03-01" in browser.page_source
        shots(browser, "ask-as-of")

        # Browse every fact version, open Bob's: its timeline.
        browser.get(f"{base}/#/facts?all=1")
        wait_for(browser, "#facts-table")
        shots(browser, "facts")
        bob = next(a for a in browser.find_elements(By.CSS_SELECTOR, "a.fact") if "Bob" in a.text)
        bob.click()
        timeline = wait_for(browser, "#timeline")
        versions = timeline.find_elements(By.CSS_SELECTOR, "li.version")
        assert len(versions) == 2
        assert "Bob Marsh" in versions[0].text and "rewritten by alice" in versions[0].text
        assert "2024-01-08" in versions[0].text and "2024-05-02" in versions[0].text
        assert "Alice Chen" in versions[1].text and "now" in versions[1].text
        shots(browser, "timeline")

        # Alice's document: its edits, then Forget, confirmed, and the receipt.
        versions[1].find_element(By.CSS_SELECTOR, "a.doc").click()
        wait_for(browser, "#edits-table")
        assert "rewritten" in browser.find_element(By.ID, "edits-table").text.lower()
        shots(browser, "document")
        browser.find_element(By.ID, "forget").click()
        browser.find_element(By.ID, "confirm-forget").click()
        receipt = wait_for(browser, "#receipt-card", "Forgot alice")
        assert "Facts restored\n1" in receipt.text
        assert "ok: the index and SQL agree" in receipt.text
        assert "No longer stored" in browser.find_element(By.ID, "stored").text
        wait_for(browser, "#totals", "2 documents")
        shots(browser, "forget")

        # Asked again: Bob, as if Alice's article had never been read.
        browser.get(f"{base}/#/")
        assert "Bob Marsh" in ask(browser, CEO)
        assert httpx.get(f"{base}/documents/alice").status_code == 404


def test_a_document_with_a_hostile_url_and_title_is_shown_as_text(
    tmp_path: Path, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    evil = {
        "id": "evil/<b>id</b>",
        "title": "<img src=x onerror=alert(1)>",
        "url": "javascript:alert(1)",
        "published": "2024-02-02",
        "text": "The mascot of Acme is a <script>alert(1)</script> robot.",
    }
    with served(tmp_path / "kb") as (client, _service):
        assert client.post("/documents", json=[evil]).status_code == 200
        base = str(client.base_url).rstrip("/")
        browser.get(f"{base}/#/documents")
        link = wait_for(browser, "#documents-table a.doc")
        assert link.text == evil["title"]
        link.click()
        wait_for(browser, "#edits-table")
        assert browser.find_element(By.TAG_NAME, "h1").text == evil["title"]
        assert not browser.find_elements(By.CSS_SELECTOR, "main img, main script")
        hrefs = [a.get_attribute("href") or "" for a in browser.find_elements(By.TAG_NAME, "a")]
        assert not [h for h in hrefs if h.startswith("javascript:")]
        assert "evil/<b>id</b>" in browser.find_element(By.CSS_SELECTOR, "dl.meta").text


def test_the_page_is_in_the_package() -> None:
    static = ROOT / "kbase" / "server" / "static"
    assert {p.name for p in static.iterdir()} >= {"index.html", "app.js", "style.css"}
