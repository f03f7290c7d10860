"""The console in a real browser: Debian's Chromium, driven headless by Playwright.

A real ``nwcd serve --http`` (its own process, simulator backend) on a real relay
process; apps are nwcd's client SDK and, for the authorization URL, the Alby JS SDK
in a page of another loopback origin. Screenshots of each page go to the test's tmp
dir (``console-*.png``).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright, expect

from nwcd.client.client import NWCClient, NWCError
from nwcd.nip47.uri import ConnectionUri
from tests.interop.node import node_install_dir
from tests.support.relays import NostrRelayProcess, PeerMissing
from tests.support.service import ServeProcess

pytestmark = pytest.mark.slow

PASSWORD = "a long console password"


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "chromium is not installed: scripts/test.sh installs Debian's package"
            " (apt-get install chromium)",
            pytrace=False,
        )
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nwcd(data_dir: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "nwcd", *args, "--data-dir", str(data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@dataclass
class Console:
    url: str
    data_dir: Path
    relay: str
    serve: ServeProcess
    browser: Browser
    shots: Path

    async def logged_in_page(self) -> Page:
        page = await self.browser.new_page()
        await page.goto(f"{self.url}/connections")
        await page.wait_for_url("**/login?**")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{self.url}/connections")
        return page

    async def shot(self, page: Page, name: str) -> None:
        await page.screenshot(path=str(self.shots / f"console-{name}.png"), full_page=True)

    def invoice(self, amount_msat: int, outcome: str = "succeed") -> dict[str, str]:
        out = nwcd(
            self.data_dir, "sim", "invoice", "--amount-msat", str(amount_msat),
            "--outcome", outcome, "--json",
        )  # fmt: skip
        return dict(json.loads(out))


@pytest.fixture
async def browser_console(tmp_path: Path, nostr_relay: NostrRelayProcess) -> AsyncIterator[Console]:
    data_dir = tmp_path / "nwcd"
    nwcd(data_dir, "admin", "set-password", "--stdin", stdin=PASSWORD)
    port = free_port()
    serve = ServeProcess(data_dir, [nostr_relay.url], extra_args=["--http", f"127.0.0.1:{port}"])
    await serve.start()
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                yield Console(
                    f"http://127.0.0.1:{port}", data_dir, nostr_relay.url, serve, browser, tmp_path
                )
            finally:
                await browser.close()
    finally:
        await serve.stop()


async def test_log_in_create_a_connection_and_revoke_it(browser_console: Console) -> None:
    page = await browser_console.browser.new_page()
    await page.goto(f"{browser_console.url}/connections")
    await page.wait_for_url("**/login?**")
    await page.fill("input[name=password]", "not the password")
    await page.click("button[type=submit]")
    await expect(page.locator("p.error")).to_have_text("Wrong password.")
    await browser_console.shot(page, "login")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{browser_console.url}/connections")

    await page.click("a.button")  # New connection
    await page.fill("input[name=name]", "shop")
    await page.check("input[name=scopes][value=read]")
    await page.fill("input[name=budget_sat]", "50000")
    await page.select_option("select[name=budget_period]", "daily")
    await browser_console.shot(page, "connection-form")
    await page.click("text=Save")
    uri = ConnectionUri.parse(await page.locator("#uri").input_value())
    await expect(page.locator("#qr svg")).to_be_visible()
    await browser_console.shot(page, "connection-created")

    # Live before its URI was shown: the app is answered at once.
    async with NWCClient(uri, timeout=20) as app:
        assert await app.get_balance() > 0
        await page.goto(f"{browser_console.url}/connections")
        row = page.locator("tr[data-name=shop]")
        await expect(row).to_contain_text("50000 daily")
        await browser_console.shot(page, "connections")
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await row.locator("button.danger").click()  # Revoke
        await expect(page.locator("tr[data-name=shop] .state")).to_have_text("revoked")
        with pytest.raises(NWCError) as refused:
            await app.get_balance()
        assert refused.value.wallet_code == "UNAUTHORIZED"


async def test_a_batch_shows_in_activity_with_every_item_live(browser_console: Console) -> None:
    connection = ["connection", "create", "--name", "batcher", "--json"]
    out = nwcd(browser_console.data_dir, *connection, "--relay", browser_console.relay)
    created = json.loads(out)
    paid = browser_console.invoice(21_000)
    failing = browser_console.invoice(5_000, "fail")
    hanging = browser_console.invoice(8_000, "hang")
    page = await browser_console.logged_in_page()
    await page.goto(f"{browser_console.url}/activity")
    async with NWCClient(ConnectionUri.parse(created["uri"]), timeout=30) as app:
        batch = asyncio.create_task(
            app.multi_pay_invoice([paid["invoice"], failing["invoice"], hanging["invoice"]])
        )
        # The list updates by itself: the running batch appears without a reload.
        row = page.locator("#activity-rows tr[data-request]").first
        await expect(row).to_contain_text("running", timeout=15_000)
        await row.locator("a").click()
        items = page.locator("#items tbody tr")
        await expect(items).to_have_count(3, timeout=15_000)
        await expect(page.locator("tr[data-item='2']")).to_have_attribute("data-state", "in_flight")
        await expect(page.locator("tr[data-item='0']")).to_have_attribute("data-state", "succeeded")
        await expect(page.locator("tr[data-item='1']")).to_have_attribute("data-state", "failed")
        await browser_console.shot(page, "request-running")
        nwcd(
            browser_console.data_dir,
            "sim",
            "release",
            hanging["payment_hash"],
            "--outcome",
            "succeed",
        )
        await expect(page.locator("tr[data-item='2']")).to_have_attribute(
            "data-state", "succeeded", timeout=15_000
        )
        await expect(page.locator("#outcome")).to_have_text("ok", timeout=15_000)
        await browser_console.shot(page, "request-done")
        results = await batch
    assert [r.ok for r in results] == [True, False, True]
    await page.goto(f"{browser_console.url}/activity")
    await expect(page.locator("#activity-rows tr[data-request]").first).to_contain_text(
        "multi_pay_invoice"
    )
    await browser_console.shot(page, "activity")
    await page.goto(f"{browser_console.url}/wallet")
    await expect(page.locator("#backend")).to_have_text("simulator")
    await expect(page.locator("#transactions tbody tr")).not_to_have_count(0)
    await browser_console.shot(page, "wallet")


APP_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Test app</title>
<script src="/alby-sdk.umd.js"></script></head><body>
<button id="connect">Connect wallet</button><pre id="out"></pre>
<script>
document.getElementById("connect").onclick = async () => {
  const out = document.getElementById("out");
  try {
    const client = await AlbySdk.NWCClient.fromAuthorizationUrl(
      "CONSOLE/apps/new",
      {name: "Test app", requestMethods: ["get_info", "get_balance", "pay_invoice"],
       maxAmount: 50000000, budgetRenewal: "weekly"});
    const info = await client.getInfo();
    out.textContent = JSON.stringify({ok: true, methods: info.methods});
  } catch (e) {
    out.textContent = JSON.stringify({ok: false, error: String(e)});
  }
};
</script></body></html>"""


@pytest.fixture
async def app_site(browser_console: Console) -> AsyncIterator[str]:
    """A web app on another loopback origin that uses the Alby JS SDK's UMD bundle."""
    try:
        bundle = node_install_dir() / "node_modules/@getalby/sdk/dist/alby-sdk.umd.js"
    except PeerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    app = web.Application()
    page = APP_PAGE.replace("CONSOLE", browser_console.url)

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    async def sdk(_: web.Request) -> web.FileResponse:
        return web.FileResponse(bundle)

    app.router.add_get("/", index)
    app.router.add_get("/alby-sdk.umd.js", sdk)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.2", port).start()
    try:
        yield f"http://127.0.0.2:{port}"
    finally:
        await runner.cleanup()


async def _open_authorization(browser_console: Console, app_site: str) -> tuple[Page, Page]:
    page = await browser_console.logged_in_page()  # the operator is logged in in this browser
    await page.goto(app_site)
    async with page.expect_popup() as opened:
        await page.click("#connect")
    popup = await opened.value
    await popup.wait_for_url("**/apps/new?**")
    await expect(popup.locator("h1")).to_contain_text("Test app")
    return page, popup


async def test_an_app_connects_through_the_authorization_url(
    browser_console: Console, app_site: str
) -> None:
    page, popup = await _open_authorization(browser_console, app_site)
    await popup.uncheck("input[name=methods][value=pay_invoice]")  # the operator narrows
    await browser_console.shot(popup, "app-approve")
    await popup.click("button[value=approve]")
    out = page.locator("#out")
    await expect(out).to_contain_text('"ok":true', timeout=30_000)
    result = json.loads(await out.text_content() or "{}")
    assert "get_balance" in result["methods"]
    assert "pay_invoice" not in result["methods"]
    [made] = json.loads(nwcd(browser_console.data_dir, "connection", "list", "--json"))
    assert made["name"] == "Test app"
    assert made["budget_msat"] == 50_000_000
    assert made["budget_period"] == "weekly"
    assert "pay_invoice" not in made["methods"]


async def test_a_declined_app_gets_no_connection(browser_console: Console, app_site: str) -> None:
    _, popup = await _open_authorization(browser_console, app_site)
    await popup.click("button[value=decline]")
    await expect(popup.locator("#declined")).to_be_visible()
    await browser_console.shot(popup, "app-declined")
    assert json.loads(nwcd(browser_console.data_dir, "connection", "list", "--json")) == []


async def test_another_site_cannot_act_for_the_operator(
    browser_console: Console, app_site: str
) -> None:
    page = await browser_console.logged_in_page()
    await page.goto(app_site)
    # A cross-site form post: the Strict cookie is not sent, nor is a CSRF token known.
    status = await page.evaluate(
        """async (url) => {
            const body = new URLSearchParams({name: "evil", scopes: "all"});
            try { await fetch(url, {method: "POST", body, mode: "no-cors",
                                    credentials: "include"}); return "sent"; }
            catch (e) { return "blocked"; }
        }""",
        f"{browser_console.url}/connections",
    )
    assert status in ("sent", "blocked")
    # Same origin but no token: refused too.
    await page.goto(f"{browser_console.url}/connections")
    response = await page.evaluate(
        """async () => (await fetch("/connections", {method: "POST",
            body: new URLSearchParams({name: "evil", scopes: "all"})})).status"""
    )
    assert response == 403
    assert json.loads(nwcd(browser_console.data_dir, "connection", "list", "--json")) == []
    # No session at all (a fresh browser context): the login page, never the data.
    fresh = await (await browser_console.browser.new_context()).new_page()
    await fresh.goto(f"{browser_console.url}/activity")
    await fresh.wait_for_url("**/login?**")
    assert re.search(r"Log in", await fresh.content())
