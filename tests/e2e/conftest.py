"""Real-browser fixtures: Debian's Chromium driven by Playwright against pytest-django's live server.

The data is loaded inside each test (transactional_db) by ingesting the generated demo workbook. Every page
that raises a JavaScript error fails its test; a screenshot per page lands in test-artifacts/."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls of the fixtures are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("PRODPLAN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "e2e-Password-123"


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed in this environment (pip install playwright)")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium (or set PRODPLAN_CHROMIUM)")
    manager = sync_playwright().start()
    try:
        instance = manager.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    except Exception as exc:  # a broken browser install is an environment problem, not a product failure
        manager.stop()
        pytest.skip(f"Chromium at {CHROMIUM} could not start: {exc}")
    yield instance
    instance.close()
    manager.stop()


@pytest.fixture
def loaded(transactional_db, demo_workbook) -> dict:
    """The demo workbook ingested for this test, and a staff user who is supervisor and data steward."""
    from django.contrib.auth.models import User

    from ingestion.services import ingest_workbook
    from prodplan.roles import ensure_role_groups

    # force: the session's ingestion of the same file may still be stored (this is the first test to flush it)
    run = ingest_workbook(path=str(demo_workbook["path"]), force=True)
    assert run.status == "succeeded", run.error
    supervisors, stewards = ensure_role_groups()
    user = User.objects.create_user("boss", password=PASSWORD, is_staff=True)
    user.groups.add(supervisors, stewards)
    return {"run_id": run.pk, "as_of": run.as_of, "user": user, **demo_workbook}


class Page:
    """A browser page bound to the live server that records JavaScript and console errors and saves screenshots."""

    def __init__(self, page, base_url: str, name: str):
        self.page = page
        self.base_url = base_url
        self.name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
        self.js_errors: list[str] = []
        page.on("pageerror", lambda exc: self.js_errors.append(f"{page.url}: {exc}"))
        # Console errors include resources that failed to load (a missing script, style or icon).
        page.on("console", lambda message: self.js_errors.append(f"{page.url}: {message.text}") if message.type == "error" else None)

    def goto(self, path: str):
        response = self.page.goto(self.base_url + path)
        self.wait_widgets()
        return response

    def wait_widgets(self, timeout: float = 20000):
        """Wait until every lazily loaded widget (hx-trigger=load) has been swapped in."""
        self.page.wait_for_load_state("load")
        self.page.wait_for_function("() => document.querySelectorAll('.widget-slot').length === 0", timeout=timeout)

    def login(self, username: str = "boss", password: str = PASSWORD):
        self.page.goto(self.base_url + "/accounts/login/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.page.click("main button[type=submit]")
        self.page.wait_for_url(self.base_url + "/")
        self.wait_widgets()

    def shot(self, label: str):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{self.name}-{label}.png"), full_page=True)

    def check_accessibility(self):
        """One h1; every visible form control has a label (for=, wrapping label or aria-label); Tab reaches a
        focusable element with a visible focus indicator."""
        assert self.page.locator("h1").count() == 1, f"{self.page.url}: expected exactly one h1"
        unlabelled = self.page.evaluate(
            """() => Array.from(document.querySelectorAll('input, select, textarea'))
                 .filter(el => el.type !== 'hidden')
                 .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                               && !el.getAttribute('aria-labelledby'))
                 .map(el => el.outerHTML.slice(0, 120))""")
        assert not unlabelled, f"{self.page.url}: inputs without a label: {unlabelled}"
        # start keyboard navigation from the top of the document
        self.page.evaluate("() => { document.body.tabIndex = -1; document.body.focus(); document.body.removeAttribute('tabindex'); }")
        self.page.keyboard.press("Tab")
        focus = self.page.evaluate(
            """() => { const el = document.activeElement; const s = getComputedStyle(el);
                       return {tag: el.tagName, text: (el.textContent || '').trim().slice(0, 40),
                               outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0,
                               visible: el.getBoundingClientRect().width > 0}; }""")
        assert focus["tag"] in ("A", "BUTTON", "INPUT", "SELECT"), f"{self.page.url}: Tab focused {focus}"
        assert focus["outline"] and focus["visible"], f"{self.page.url}: focus not visible: {focus}"


@pytest.fixture
def web(browser, live_server, request):
    context = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True, locale="pt-PT")
    context.set_default_timeout(20000)
    page = Page(context.new_page(), live_server.url, request.node.name)
    yield page
    context.close()
    assert not page.js_errors, f"JavaScript errors: {page.js_errors}"
