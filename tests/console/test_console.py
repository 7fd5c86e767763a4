"""The operator console at /ui in Chromium: signing in, a run list that changes by itself,
a failed run's graph and log, cancel and rerun, a template's form, dead letters, the live
event tail, the fleet and configuration pages, the CSRF check, one project's session
blind to another's runs, and the layout on a phone.

No test sleeps: the browser is waited on with Playwright's auto-waiting expectations,
the API with ``until_sync``."""

import asyncio
import json
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from aiop.contracts.states import TERMINAL_WORKFLOW_STATES
from aiop.devstack import until_sync
from tests.console.conftest import DESKTOP, PHONE, WAIT_MS, Console, shot
from tests.e2e.conftest import Platform

MARKER = "window.__aiopKept"  # set before, read after: the page was never reloaded


def submit(platform: Platform, spec: dict[str, Any]) -> str:
    with platform.http() as http:
        reply = http.post("/v1/workflows", json=spec)
        assert reply.status_code == 202, reply.text
        return str(reply.json()["workflow_id"])


def finished(platform: Platform, workflow_id: str, timeout: float = 60) -> dict[str, Any]:
    with platform.http() as http:

        def ended() -> dict[str, Any] | None:
            view: dict[str, Any] = http.get(f"/v1/workflows/{workflow_id}").json()
            return view if view["state"] in TERMINAL_WORKFLOW_STATES else None

        return until_sync(ended, timeout, f"workflow {workflow_id} finished")


def failing(marker: str) -> dict[str, Any]:
    """examples/failing.yaml, its first step fresh (nothing in the cache to hit)."""
    return {"name": "nightly-import", "steps": [
        {"name": "prepare", "run": ["echo", f"preparing {marker}"]},
        {"name": "check", "run": ["sh", "-c", "echo 'checking inputs'; "
                                  "echo 'input 7 is malformed' >&2; exit 3"],
         "needs": ["prepare"], "cache": False},
        {"name": "publish", "run": ["echo", "never printed"], "needs": ["check"]},
    ]}  # fmt: skip


def open_page(page: Page, path: str) -> None:
    answer = page.goto(path)
    assert answer is not None
    assert answer.status == 200, f"{path}: {answer.status}"


def test_sign_in_with_the_dev_key_in_an_httponly_strict_cookie(console: Console) -> None:
    watched = console.page(signed_in=False)
    watched.expect_error("status of 401")  # the wrong key's answer
    page = watched.page
    page.goto("/ui/")
    page.wait_for_url(re.compile(r"/ui/login\?next="))  # no session: the sign-in form
    expect(page.locator("h1")).to_have_text("Sign in")
    shot(page, "sign-in")

    page.fill("#api_key", "aiop_not-a-key-" + uuid.uuid4().hex)
    with page.expect_response("**/ui/login") as answer:
        page.click("button[type=submit]")
    assert answer.value.status == 401
    expect(page.locator("p.error")).to_contain_text("unknown API key")
    assert not page.context.cookies()

    page.fill("#api_key", console.key)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/")
    expect(page.locator("h1")).to_have_text("Runs")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "aiop_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/ui"
    assert "aiop_session" not in page.evaluate("document.cookie")  # out of scripts' reach


def test_a_run_goes_from_queued_to_succeeded_on_the_open_list(console: Console) -> None:
    page = console.page().page
    with page.expect_response(lambda r: "/ui/runs/live" in r.url):  # the page listens
        page.goto("/ui/")
    expect(page.locator("table.runs")).to_be_visible()
    # Every state the new row's badge shows, as the page changes under it.
    page.evaluate(
        """() => {
          window.__aiopKept = "before";
          window.__aiopSeen = [];
          new MutationObserver(() => {
            document.querySelectorAll("table.runs tr[id^=run-] span.badge[data-state]")
              .forEach((b) => window.__aiopSeen.push(b.closest("tr").id + " " + b.dataset.state));
          }).observe(document.getElementById("runs-body"),
                     {childList: true, subtree: true, attributes: true});
        }"""
    )
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    workflow_id = submit(console.platform, {"name": "watch-me", "steps": [
        {"name": "wait", "run": ["sleep", "2"], "cache": False},
        {"name": "done", "run": ["echo", "done"], "needs": ["wait"], "cache": False},
    ]})  # fmt: skip

    row = page.locator(f"tr#run-{workflow_id}")
    expect(row).to_be_visible(timeout=15_000)
    expect(row.locator("span.badge")).to_have_attribute("data-state", "succeeded",
                                                        timeout=WAIT_MS)  # fmt: skip
    assert page.evaluate(MARKER) == "before"
    assert navigations == []
    seen = [s.split()[1] for s in page.evaluate("window.__aiopSeen") if workflow_id in s]
    assert seen[-1] == "succeeded"
    assert set(seen) - set(TERMINAL_WORKFLOW_STATES), f"only ever saw {seen}"
    expect(page.locator("#counts")).to_contain_text("succeeded", timeout=15_000)


def test_a_failed_run_shows_its_failed_step_and_its_log(console: Console) -> None:
    workflow_id = submit(console.platform, failing(uuid.uuid4().hex))
    assert finished(console.platform, workflow_id)["state"] == "failed"
    page = console.page().page
    page.goto(f"/ui/runs/{workflow_id}")
    expect(page.locator("#run-state")).to_have_attribute("data-state", "failed")
    failed = page.locator("#run-graph g.node[data-state=failed]")
    expect(failed).to_have_count(1)
    expect(failed).to_have_attribute("data-step", "check")
    expect(page.locator("#run-graph g.node[data-step=prepare]")).to_have_attribute(
        "data-state", "succeeded"
    )
    expect(page.locator("#run-steps")).to_contain_text("skipped")  # publish never ran
    # The page opens on the failed step's log; it streams in, then says the run ended.
    expect(page.locator("pre#log-lines")).to_contain_text("input 7 is malformed")
    expect(page.locator("pre#log-lines")).to_contain_text("checking inputs")
    expect(page.locator("pre#log-lines .end")).to_contain_text("the run ended")
    shot(page, "run", full_page=True)
    # Another step's log, from its node in the graph.
    page.locator("#run-graph g.node[data-step=prepare]").click()
    page.wait_for_url(re.compile(r"step=prepare"))
    expect(page.locator("pre#log-lines")).to_contain_text("preparing")


def test_a_long_run_is_cancelled_with_the_cancel_button(console: Console) -> None:
    workflow_id = submit(console.platform, {"name": "long-sleep", "steps": [
        {"name": "sleep", "run": ["sleep", "60"], "cache": False}]})  # fmt: skip
    page = console.page().page
    page.goto(f"/ui/runs/{workflow_id}")
    expect(page.locator("#run-graph g.node[data-step=sleep]")).to_have_attribute(
        "data-state", "running", timeout=30_000
    )
    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.click("button#cancel")
    expect(page.locator("#run-state")).to_have_attribute("data-state", "cancelled",
                                                         timeout=30_000)  # fmt: skip
    assert dialogs == ["Cancel run long-sleep?"]
    expect(page.locator("button#cancel")).to_be_disabled()
    expect(page.locator("button#rerun")).to_be_enabled()
    assert finished(console.platform, workflow_id, 10)["state"] == "cancelled"


def test_a_failed_run_is_rerun_from_its_failed_step(console: Console) -> None:
    workflow_id = submit(console.platform, failing(uuid.uuid4().hex))
    assert finished(console.platform, workflow_id)["state"] == "failed"
    page = console.page().page
    page.goto(f"/ui/runs/{workflow_id}")
    expect(page.locator("select#rerun-from")).to_have_value("check")  # chosen already
    page.select_option("select#rerun-from", "check")
    page.click("button#rerun")
    page.wait_for_url(re.compile(r"/ui/runs/(?!" + re.escape(workflow_id) + r")[^/?]+\?"))
    new_id = page.url.split("/ui/runs/")[1].split("?")[0]
    expect(page.locator("p.notice")).to_contain_text(f"rerun of {workflow_id} from check")
    expect(page.locator("#run-state")).to_have_attribute("data-state", "failed", timeout=WAIT_MS)
    # What came before the failed step was reused; the failed step ran again.
    expect(page.locator("#run-graph g.node[data-step=prepare]")).to_have_attribute(
        "data-state", "cached"
    )
    expect(page.locator("#run-graph g.node[data-step=check]")).to_have_attribute(
        "data-state", "failed"
    )
    expect(page.locator("#run-header")).to_contain_text(f"rerun of {workflow_id}")
    rerun = finished(console.platform, new_id, 10)
    assert rerun["origin"] == {"kind": "rerun", "rerun_of": workflow_id}


def test_a_template_is_started_from_its_form(console: Console) -> None:
    page = console.page().page
    open_page(page, "/ui/config/templates/data-processing")
    form = page.locator("form#start-run")
    expect(form).to_be_visible()
    group_by = form.locator('[name="param.group_by"]')
    if group_by.evaluate("el => el.tagName") == "SELECT":
        group_by.select_option("product")
    else:
        group_by.fill("product")
    form.locator('[name="param.min_value"]').fill("10")
    shot(page, "template")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/ui/runs/[^/?]+"))
    workflow_id = page.url.split("/ui/runs/")[1].split("?")[0]
    run = finished(console.platform, workflow_id)
    assert run["state"] == "succeeded", run
    expect(page.locator("#run-state")).to_have_attribute("data-state", "succeeded")
    assert run["template"].startswith("data-processing@")
    assert run["parameters"]["group_by"] == "product"
    assert float(run["parameters"]["min_value"]) == 10


def dead_letter(platform: Platform, subject: str, body: bytes) -> dict[str, Any]:
    """Publish ``body`` on ``subject`` as the admin; the dead-letter record it makes."""

    async def publish() -> dict[str, Any]:
        nc = await platform.connect()
        try:
            js = nc.jetstream()
            sub = await js.subscribe("aiop.dlq.recorded.v1.AIOP_EXT.>", ordered_consumer=True,
                                     deliver_policy=nats_new())  # fmt: skip
            await js.publish(subject, body)
            while True:
                record: dict[str, Any] = json.loads((await sub.next_msg(timeout=30)).data)
                if record["original_subject"] == subject:
                    return record
        finally:
            await nc.close()

    # Playwright's sync API owns this thread's event loop: the bus is spoken to in another.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, publish()).result()


def nats_new() -> Any:
    from nats.js.api import DeliverPolicy

    return DeliverPolicy.NEW


def test_a_dead_lettered_message_is_shown_with_its_reason(console: Console) -> None:
    subject = f"ext.console.noise-{uuid.uuid4().hex[:8]}"
    record = dead_letter(console.platform, subject, b"hello, not an event")
    assert "not a CloudEvent" in record["reason"]
    page = console.page().page
    open_page(page, "/ui/events/dead-letters")
    row = page.locator("tr.dead-letter", has_text=subject)
    expect(row).to_be_visible()
    expect(row).to_contain_text("not a CloudEvent")
    shot(page, "dead-letters")


def test_the_fleet_and_the_event_pages_open(console: Console) -> None:
    page = console.page().page
    open_page(page, "/ui/fleet")
    expect(page.locator("h1")).to_contain_text("Fleet")
    expect(page.locator("main")).to_contain_text("local")  # aiop up's executor runs locally
    shot(page, "fleet")
    with page.expect_response(lambda r: "/ui/events/live" in r.url):  # the tail listens
        open_page(page, "/ui/events")
    expect(page.locator("h1")).to_contain_text("Events")
    workflow_id = submit(console.platform, {"name": "tailed", "steps": [
        {"name": "one", "run": ["echo", "tailed"], "cache": False}]})  # fmt: skip
    tail = page.locator("ol#tail li.tail-item", has_text=workflow_id)
    expect(tail.filter(has_text="aiop.workflow.completed")).to_have_count(1, timeout=30_000)
    expect(page.locator("#tail-error")).to_have_count(0)
    shot(page, "events")
    # The tail keeps its newest items only (500 on the page; 3 here, to see it happen).
    page.evaluate("document.getElementById('tail').dataset.keep = '3'")
    second = submit(console.platform, {"name": "tailed-again", "steps": [
        {"name": "one", "run": ["echo", "again"], "cache": False}]})  # fmt: skip
    ended = page.locator("ol#tail li.tail-item", has_text=second).filter(
        has_text="aiop.workflow.completed"
    )
    expect(ended).to_have_count(1, timeout=30_000)
    expect(page.locator("ol#tail > li")).to_have_count(3)
    open_page(page, "/ui/config")
    expect(page.locator("main")).to_contain_text("data-processing")
    shot(page, "config")
    open_page(page, "/ui/config/webhooks")
    expect(page.locator("h1")).to_contain_text("Webhooks")
    shot(page, "webhooks")


def test_a_change_without_the_csrf_token_is_refused(console: Console) -> None:
    workflow_id = submit(console.platform, {"name": "csrf-target", "steps": [
        {"name": "sleep", "run": ["sleep", "60"], "cache": False}]})  # fmt: skip
    page = console.page().page
    page.goto(f"/ui/runs/{workflow_id}")
    token = page.locator("#run-actions input[name=csrf]").first.input_value()
    assert token
    cancel = f"/ui/runs/{workflow_id}/cancel"
    # The page's own cookie, but no token or a wrong one: refused, nothing changes.
    for form in ({}, {"csrf": "not-" + token}):
        refused = page.request.post(cancel, form=form, max_redirects=0)
        assert refused.status == 403, refused.text()
        assert "Refused" in refused.text()
    refused = page.request.post(f"/ui/runs/{workflow_id}/rerun", form={"from_step": ""},
                                max_redirects=0)  # fmt: skip
    assert refused.status == 403
    # From another site, even with the token.
    elsewhere = page.request.post(cancel, form={"csrf": token}, max_redirects=0,
                                  headers={"Origin": "https://evil.example"})  # fmt: skip
    assert elsewhere.status == 403
    with console.platform.http() as http:
        assert http.get(f"/v1/workflows/{workflow_id}").json()["state"] not in (
            "cancelled", *TERMINAL_WORKFLOW_STATES)  # fmt: skip
    # The same request with the header is a change, made as the signed-in principal.
    done = page.request.post(cancel, headers={"X-CSRF-Token": token}, max_redirects=0)
    assert done.status == 303
    assert finished(console.platform, workflow_id, 30)["state"] == "cancelled"
    # And without the cookie it is no session at all: to the sign-in form.
    with httpx.Client(base_url=console.url) as anonymous:
        assert anonymous.post(cancel, data={"csrf": token}).status_code == 303


def test_a_session_of_one_project_sees_nothing_of_another(console: Console) -> None:
    project = f"console-{uuid.uuid4().hex[:6]}"
    created = console.platform.aiop("projects", "create", project)
    assert created.returncode == 0, created.stderr
    theirs = submit(console.platform, {"name": "default-only", "steps": [
        {"name": "one", "run": ["echo", "hi"]}]})  # fmt: skip
    finished(console.platform, theirs)

    watched = console.page(state=console.signed_in_state(project))
    page = watched.page
    page.goto("/ui/?window=all")
    expect(page.locator("h1")).to_have_text("Runs")
    expect(page.locator("header .who")).to_contain_text("dev")
    expect(page.locator("select[name=project] option")).to_have_text(["all of yours", project])
    expect(page.locator(f"tr#run-{theirs}")).to_have_count(0)
    assert page.locator("table.runs tr[id^=run-]").count() == 0
    watched.expect_error("status of 404")
    answer = page.goto(f"/ui/runs/{theirs}")
    assert answer is not None
    assert answer.status == 404
    expect(page.locator("#run-header")).to_have_count(0)
    expect(page.locator("p.error")).to_be_visible()
    # The same key, signed in to all of its projects, sees it.
    mine = console.page().page
    answer = mine.goto(f"/ui/runs/{theirs}")
    assert answer is not None
    assert answer.status == 200


def no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{page.url} scrolls sideways at {width[1]}px: {width[0]}px wide"


def test_the_pages_fit_a_desktop_and_a_phone(console: Console) -> None:
    workflow_id = submit(console.platform, failing(uuid.uuid4().hex))
    finished(console.platform, workflow_id)
    for viewport in (DESKTOP, PHONE):
        page = console.page(viewport=viewport).page
        page.goto("/ui/")
        expect(page.locator("table.runs")).to_be_visible()
        expect(page.locator(f"tr#run-{workflow_id}")).to_be_visible()
        no_sideways_scroll(page)
        if viewport == DESKTOP:
            shot(page, "runs")
        page.goto(f"/ui/runs/{workflow_id}")
        expect(page.locator("#run-graph")).to_be_visible()
        no_sideways_scroll(page)
        anonymous = console.page(signed_in=False, viewport=viewport).page
        anonymous.goto("/ui/login")
        no_sideways_scroll(anonymous)
