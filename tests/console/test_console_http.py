"""The console over real HTTP (aiohttp's test server) on a real store and simulator.

No browser here: these check the rules a browser cannot bypass (sessions, CSRF, login
limits, what a form stores); tests/console/test_browser.py drives Chromium.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from urllib.parse import urlencode

import pytest
from aiohttp import ClientResponse, CookieJar, web
from aiohttp.test_utils import TestClient, TestServer

from nwcd.backends.simulator import SimulatedBackend, SimulatorConfig
from nwcd.console.app import SESSION_COOKIE, ConsoleServices, build_app
from nwcd.console.credentials import Credentials
from nwcd.nip47.app_request import AppRequest, format_nwa_uri
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.keys import SecretKey
from nwcd.policy.grants import BudgetPeriod
from nwcd.service.admin import NewConnection, create_connection
from nwcd.store.sqlite import SqliteStore

PASSWORD = "correct horse battery"
RELAY = "ws://127.0.0.1:7777"


@dataclass
class Console:
    client: TestClient[web.Request, web.Application]
    store: SqliteStore
    credentials: Credentials
    services: ConsoleServices

    async def csrf(self, path: str = "/connections") -> str:
        page = await (await self.client.get(path)).text()
        match = re.search(r'name="csrf" value="([^"]+)"', page)
        assert match, page
        return match.group(1)

    async def login(self, password: str = PASSWORD, next_: str = "/connections") -> ClientResponse:
        page = await (await self.client.get(f"/login?next={next_}")).text()
        token = re.search(r'name="login_token" value="([^"]+)"', page)
        assert token, page
        return await self.client.post(
            "/login",
            data={"password": password, "login_token": token.group(1), "next": next_},
            allow_redirects=False,
        )


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    store = await SqliteStore.open(tmp_path / "nwcd.sqlite")
    backend = await SimulatedBackend.open(SimulatorConfig(tmp_path / "simulator.sqlite"))
    credentials = Credentials(tmp_path)
    credentials.set_password(PASSWORD)
    services = ConsoleServices(
        store=store, backend=backend, relays=(RELAY,), credentials=credentials, tz=UTC
    )
    client = TestClient(TestServer(build_app(services)), cookie_jar=CookieJar(unsafe=True))
    await client.start_server()
    try:
        yield Console(client, store, credentials, services)
    finally:
        await client.close()
        await backend.close()
        await store.close()


async def test_pages_need_a_login_and_come_back_after_it(console: Console) -> None:
    response = await console.client.get("/connections/new", allow_redirects=False)
    text = await response.text()
    assert response.status == 200  # the same-origin bounce, never the page
    assert 'url=/login?next=%2Fconnections%2Fnew"' in text
    assert "Save" not in text
    login = await console.login(next_="/connections/new")
    assert login.status == 303
    assert login.headers["Location"] == "/connections/new"
    cookie = login.headers["Set-Cookie"]
    assert f"{SESSION_COOKIE}=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Save" in await (await console.client.get("/connections/new")).text()


async def test_a_wrong_password_gets_no_session(console: Console) -> None:
    response = await console.login("wrong password")
    assert response.status == 401
    assert SESSION_COOKIE not in response.headers.get("Set-Cookie", "")
    assert "Wrong password" in await response.text()


async def test_a_login_without_its_form_token_is_refused(console: Console) -> None:
    response = await console.client.post(
        "/login", data={"password": PASSWORD, "login_token": "forged"}, allow_redirects=False
    )
    assert response.status == 403
    assert SESSION_COOKIE not in response.headers.get("Set-Cookie", "")


async def test_logins_are_rate_limited_per_client(console: Console) -> None:
    statuses = [(await console.login("wrong password")).status for _ in range(5)]
    assert statuses == [401] * 5
    refused = await console.login()  # even the right password, until the bucket refills
    assert refused.status == 429
    assert "Too many attempts" in await refused.text()


async def test_a_post_without_the_csrf_token_changes_nothing(console: Console) -> None:
    await console.login()
    form = {"name": "shop", "scopes": "pay"}
    assert (await console.client.post("/connections", data=form)).status == 403
    wrong = {**form, "csrf": "x" * 43}
    assert (await console.client.post("/connections", data=wrong)).status == 403
    other_site = await console.client.post(
        "/connections",
        data={**form, "csrf": await console.csrf()},
        headers={"Origin": "http://evil.example"},
    )
    assert other_site.status == 403
    assert await console.store.connections() == []


async def test_a_post_without_a_session_changes_nothing(console: Console) -> None:
    response = await console.client.post("/connections", data={"name": "shop"})
    assert response.status == 403
    assert await console.store.connections() == []


async def test_a_connection_made_in_the_console_is_stored_with_every_grant(
    console: Console,
) -> None:
    await console.login()
    response = await console.client.post(
        "/connections",
        data=[
            ("csrf", await console.csrf()),
            ("name", "shop"),
            ("scopes", "pay"),
            ("scopes", "read"),
            ("max_amount_sat", "2100"),
            ("budget_sat", "50000"),
            ("budget_period", "weekly"),
            ("expires_at", "2099-01-01T00:00"),
            ("lud16", "shop@example.com"),
        ],
    )
    page = await response.text()
    assert response.status == 200
    uri_text = re.search(r"(nostr\+walletconnect://[^<\s]+)", page)
    assert uri_text
    uri = ConnectionUri.parse(uri_text.group(1).replace("&amp;", "&"))
    assert "<svg" in page  # the QR code
    [stored] = await console.store.connections()
    assert stored.wallet_pubkey == uri.wallet_pubkey.hex
    assert stored.app_pubkey == uri.secret.public_key.hex
    assert stored.relays == (RELAY,)
    assert stored.methods is not None
    assert "pay_invoice" in stored.methods
    assert "make_invoice" not in stored.methods
    assert stored.max_amount_msat == 2_100_000
    assert stored.budget_msat == 50_000_000
    assert stored.budget_period is BudgetPeriod.WEEKLY
    assert stored.expires_at == 4_070_908_800
    assert stored.lud16 == "shop@example.com"
    listed = await (await console.client.get("/connections")).text()
    assert 'data-name="shop"' in listed
    assert uri.secret.reveal_hex() not in listed  # the secret is shown once, on creation only


async def test_a_form_with_mistakes_stores_nothing_and_says_why(console: Console) -> None:
    await console.login()
    response = await console.client.post(
        "/connections",
        data={"csrf": await console.csrf(), "name": "shop", "scopes": "pay", "budget_sat": "-1"},
    )
    assert response.status == 400
    assert 'data-field="budget_sat"' in await response.text()
    assert await console.store.connections() == []


async def _made(console: Console, name: str, **grant: object) -> str:
    created = await create_connection(
        console.store,
        NewConnection(name=name, relays=(RELAY,), **grant),  # type: ignore[arg-type]
        now=int(time.time()),
        listen_timeout=0,
    )
    return created.connection.wallet_pubkey


async def test_editing_keeps_what_is_not_changed_exactly(console: Console) -> None:
    wallet = await _made(console, "tips", max_amount_msat=1500, budget_msat=7_000_001)
    await console.login()
    page = await (await console.client.get(f"/connections/{wallet}/edit")).text()
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page))
    assert fields["max_amount_sat"] == "1.5"
    checked = re.findall(r'name="scopes" value="(\w+)" checked', page)
    fields.update(name="tips 2", budget_period="never")
    form = [(k, v) for k, v in fields.items() if k != "scopes"]
    form += [("scopes", s) for s in checked]
    response = await console.client.post(f"/connections/{wallet}", data=form, allow_redirects=False)
    assert response.status == 303
    [stored] = await console.store.connections()
    assert stored.name == "tips 2"
    assert stored.max_amount_msat == 1500
    assert stored.budget_msat == 7_000_001
    assert stored.methods is None


async def test_revoking_in_the_console_revokes(console: Console) -> None:
    wallet = await _made(console, "shop")
    await console.login()
    response = await console.client.post(
        f"/connections/{wallet}/revoke", data={"csrf": await console.csrf()}, allow_redirects=False
    )
    assert response.status == 303
    [stored] = await console.store.connections()
    assert stored.revoked_at is not None


async def test_logging_out_or_a_new_password_ends_the_session(console: Console) -> None:
    await console.login()
    csrf = await console.csrf()
    await console.client.post("/logout", data={"csrf": csrf})
    assert "Save" not in await (await console.client.get("/connections/new")).text()
    await console.login()
    console.credentials.set_password("another password")
    response = await console.client.get("/connections/new")
    assert "Save" not in await response.text()


def _ask(app: SecretKey, **extra: str) -> str:
    query = {
        "name": "Podcast app",
        "pubkey": app.public_key.hex,
        "request_methods": "pay_invoice get_balance",
        "max_amount": "100000000",
        "budget_renewal": "monthly",
        "return_to": "http://127.0.0.2:9999/done",
        **extra,
    }
    return "/apps/new?" + urlencode(query)


async def _decide(console: Console, app: SecretKey, **form: str) -> ClientResponse:
    """Open the app's request page and post the operator's decision on it."""
    page = await (await console.client.get(_ask(app))).text()
    assert "Podcast app" in page
    query = re.search(r'name="query" value="([^"]+)"', page)
    assert query
    fields = {"csrf": await console.csrf(), "query": query.group(1).replace("&amp;", "&")}
    return await console.client.post("/apps/new", data={**fields, **form})


async def test_an_app_s_request_is_approved_as_the_operator_narrowed_it(
    console: Console,
) -> None:
    app = SecretKey.generate()
    await console.login(next_="/apps/new")
    response = await _decide(
        console, app, methods="pay_invoice", budget_sat="5000", decision="approve"
    )
    approved = await response.text()
    assert response.status == 200
    [stored] = await console.store.connections()
    assert stored.app_pubkey == app.public_key.hex
    assert stored.methods == frozenset({"pay_invoice"})
    assert stored.budget_msat == 5_000_000
    assert stored.budget_period is BudgetPeriod.MONTHLY
    assert stored.relays == (RELAY,)
    assert stored.wallet_pubkey in approved
    assert 'data-origin="http://127.0.0.2:9999"' in approved
    assert "nwc:success" in approved


async def test_asking_for_more_than_the_app_asked_makes_no_connection(console: Console) -> None:
    app = SecretKey.generate()
    await console.login()
    # The app asked for 100,000 sats.
    response = await _decide(
        console, app, methods="pay_invoice", budget_sat="200000", decision="approve"
    )
    assert response.status == 400
    assert "at most" in await response.text()
    assert await console.store.connections() == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"pubkey": "not-a-key"}, "pubkey"),
        ({"request_methods": "pay_invoice steal_funds"}, "steal_funds"),
        ({"expires_at": "1"}, "expired already"),
    ],
)
async def test_a_bad_request_is_refused_with_a_reason(
    console: Console, extra: dict[str, str], message: str
) -> None:
    await console.login()
    response = await console.client.get(_ask(SecretKey.generate(), **extra))
    assert response.status == 400
    assert message in await response.text()
    assert await console.store.connections() == []


async def test_a_declined_request_makes_no_connection(console: Console) -> None:
    app = SecretKey.generate()
    await console.login()
    response = await _decide(console, app, decision="decline")
    assert "not connected" in await response.text()
    assert await console.store.connections() == []


async def test_probes_need_no_login_and_pages_forbid_framing(console: Console) -> None:
    health = await console.client.get("/health")
    assert health.status == 200
    assert (await health.json())["ok"] is True
    page = await console.client.get("/login")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"


async def _paste_nwa(console: Console, relay: str, **form: str) -> ClientResponse:
    app = SecretKey.generate()
    uri = format_nwa_uri(
        AppRequest(
            app_pubkey=app.public_key, name="Podcast app", relays=(relay,),
            methods=frozenset({"get_balance", "pay_invoice"}),
        )
    )  # fmt: skip
    page = await (await console.client.get("/apps/new", params={"nwa": uri})).text()
    assert "Podcast app" in page
    assert relay in page
    fields = {"csrf": await console.csrf(), "query": uri, "decision": "approve"}
    return await console.client.post("/apps/new", data={**fields, **form})


async def test_a_pasted_nwa_uri_makes_the_connection_on_the_app_s_relay(
    console: Console,
) -> None:
    await console.login()
    response = await _paste_nwa(console, RELAY, methods="get_balance")
    text = await response.text()
    assert response.status == 200
    assert "nwc-success" not in text  # no window to tell: the app reads the info event
    [stored] = await console.store.connections()
    assert stored.relays == (RELAY,)
    assert stored.methods == frozenset({"get_balance"})


async def test_an_nwa_relay_the_service_does_not_use_needs_the_operator_s_consent(
    console: Console,
) -> None:
    await console.login()
    other = "ws://127.0.0.1:7778"
    refused = await _paste_nwa(console, other, methods="get_balance")
    assert refused.status == 400
    assert await console.store.connections() == []
    accepted = await _paste_nwa(console, other, methods="get_balance", use_app_relays="yes")
    assert accepted.status == 200
    [stored] = await console.store.connections()
    assert stored.relays == (other,)
