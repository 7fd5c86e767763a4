"""The console in a real browser: Debian's Chromium driven by Playwright, against one
platform started with ``aiop up`` for all of these tests (tests/e2e's launcher).

Without Chromium the tests skip, saying how to get it. With AIOP_CONSOLE_SCREENSHOTS=1
(``task console:screenshots``) they also save the main pages, at 1280x800, to
docs/console/.
"""

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import REPO, Platform, launched

try:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright
except ImportError:  # pragma: no cover - the dev group has it
    sync_playwright = None  # type: ignore[assignment]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NO_CHROMIUM = "Chromium is not installed: apt-get install chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
SCREENSHOTS = os.environ.get("AIOP_CONSOLE_SCREENSHOTS") == "1"
SHOTS = REPO / "docs" / "console"
WAIT_MS = 60_000  # the longest any run here takes to reach its end


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.e2e)
            if CHROMIUM is None or sync_playwright is None:
                item.add_marker(pytest.mark.skip(reason=NO_CHROMIUM))


@dataclass
class Watched:
    """A page whose console errors and uncaught exceptions are collected; the test fails
    on any it did not expect."""

    page: "Page"
    errors: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)

    def expect_error(self, text: str) -> None:
        """A console error containing ``text`` is what the test provokes (a 404 page)."""
        self.expected.append(text)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(x in e for x in self.expected)]


def watch(page: "Page") -> Watched:
    watched = Watched(page)

    def on_console(message: "ConsoleMessage") -> None:
        if message.type == "error":
            watched.errors.append(f"console: {message.text} ({message.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watched.errors.append(f"uncaught: {exc}"))
    return watched


def shot(page: "Page", name: str, full_page: bool = False) -> None:
    """docs/console/<name>.png, only when screenshots are asked for: what a 1280x800
    window shows, or with ``full_page`` the whole page at that width."""
    if SCREENSHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SHOTS / f"{name}.png", full_page=full_page,
                        animations="disabled", caret="hide")  # fmt: skip


@pytest.fixture(scope="package")
def console_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One platform for every console test, as a user starts it; stopped after them."""
    with launched(tmp_path_factory.mktemp("console")) as platform:
        yield platform


@pytest.fixture(scope="package")
def dev_key(console_platform: Platform) -> str:
    return (console_platform.root / ".aiop" / "dev-api-key").read_text().strip()


@pytest.fixture(scope="package")
def browser() -> Iterator["Browser"]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


@dataclass
class Console:
    """What a test drives: the platform, and browser contexts signed in or not."""

    platform: Platform
    browser: "Browser"
    key: str
    contexts: list["BrowserContext"] = field(default_factory=list)
    pages: list[Watched] = field(default_factory=list)
    _signed_in: dict[str, Any] | None = None

    @property
    def url(self) -> str:
        return self.platform.gateway_url

    def page(self, *, signed_in: bool = True, viewport: dict[str, int] = DESKTOP,
             state: dict[str, Any] | None = None) -> Watched:  # fmt: skip
        """A new page in a context of its own: signed in with the dev key (once per run,
        its cookie reused), with ``state``, or not at all."""
        if signed_in and state is None:
            state = self.signed_in_state()
        context = self.browser.new_context(
            base_url=self.url,
            viewport=viewport,
            storage_state=state,  # type: ignore[arg-type]
        )
        context.set_default_timeout(20_000)
        self.contexts.append(context)
        watched = watch(context.new_page())
        self.pages.append(watched)
        return watched

    def signed_in_state(self, project: str = "") -> dict[str, Any]:
        if not project and self._signed_in is not None:
            return self._signed_in
        context = self.browser.new_context(base_url=self.url)
        try:
            page = context.new_page()
            page.goto("/ui/login")
            page.fill("#api_key", self.key)
            if project:
                page.fill("#project", project)
            page.click("button[type=submit]")
            page.wait_for_url("**/ui/")
            state: dict[str, Any] = context.storage_state()  # type: ignore[assignment]
        finally:
            context.close()
        if not project:
            self._signed_in = state
        return state

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()


@pytest.fixture(scope="package")
def console_session(
    console_platform: Platform, browser: "Browser", dev_key: str
) -> Iterator[Console]:
    console = Console(console_platform, browser, dev_key)
    yield console
    console.close()


@pytest.fixture
def console(console_session: Console) -> Iterator[Console]:
    """The console for one test; every page it opened must have logged no error."""
    console_session.pages.clear()
    yield console_session
    problems = [e for w in console_session.pages for e in w.unexpected()]
    console_session.close()
    assert not problems, "the browser logged errors:\n" + "\n".join(problems)
