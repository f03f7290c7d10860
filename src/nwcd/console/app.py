"""The operator's console: server-rendered pages (aiohttp + Jinja2, htmx for live parts).

Every page calls the same code as the CLI (:mod:`nwcd.service.admin`, the store's
ports, the backend); forms are read by :mod:`nwcd.console.forms`, logins checked by
:mod:`nwcd.console.auth`. Handlers here only move data between HTTP and those.

Security, in one place (:func:`_guard`):

- every page but ``/login``, ``/health``, ``/metrics`` and ``/static`` needs a
  session cookie (HttpOnly, SameSite=Strict);
- every POST carries the session's CSRF token (a form field or the ``X-CSRF-Token``
  header) and, when the browser sends one, an ``Origin`` equal to the console's own;
- a page opened from another site arrives without the Strict cookie: it answers a
  tiny page that reloads it from the console's own origin (where the cookie is
  sent), so an operator who is logged in is not asked again;
- logins are rate-limited per client address; pages forbid framing and carry a
  strict Content-Security-Policy (no inline script).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from importlib import resources
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlsplit

import jinja2
import segno
from aiohttp import web
from multidict import MultiDict

from nwcd.console.auth import Session, SessionSigner, verify_password
from nwcd.console.credentials import Credentials
from nwcd.console.forms import (
    FormError,
    GrantForm,
    grant_form_of,
    local_time,
    parse_grant_form,
    parse_sats,
    sats_text,
)
from nwcd.nip47.app_request import (
    NWA_SCHEME,
    AppRequest,
    AppRequestError,
    parse_authorization_query,
    parse_nwa_uri,
)
from nwcd.nip47.methods import ListTransactionsParams, Method
from nwcd.policy.grants import SCOPES, BudgetPeriod, describe_methods
from nwcd.policy.rate import RateLimit, TokenBucket
from nwcd.ports import LightningBackend, Store
from nwcd.service.admin import (
    AdminError,
    Narrowing,
    create_connection,
    find_connection,
    grant_request,
    revoke_connection,
    update_connection,
    usages,
)

__all__ = ["ConsoleServices", "build_app"]

log = logging.getLogger("nwcd.console")

SESSION_COOKIE: Final = "nwcd_session"
LOGIN_COOKIE: Final = "nwcd_login"
LISTEN_TIMEOUT: Final = 10.0
LOGIN_RATE: Final = RateLimit(per_second=5 / 60, burst=5)  # per client address
_MAX_LOGIN_CLIENTS: Final = 10_000
_PUBLIC = ("/login", "/health", "/metrics", "/static/")
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


@dataclass
class ConsoleServices:
    """What the pages use: the service's store and backend, its relays, and two probes
    (health and metrics) of the running daemon."""

    store: Store
    backend: LightningBackend
    relays: tuple[str, ...]
    credentials: Credentials
    tz: tzinfo
    health: Callable[[], Awaitable[tuple[bool, dict[str, Any]]]] | None = None
    metrics: Callable[[], tuple[bytes, str]] | None = None
    listen_timeout: float = LISTEN_TIMEOUT
    clock: Callable[[], float] = time.time
    login_buckets: dict[str, TokenBucket] = field(default_factory=dict)
    templates: jinja2.Environment = field(init=False)

    def __post_init__(self) -> None:
        self.templates = _templates(self.tz)

    def now(self) -> int:
        return int(self.clock())

    def signer(self) -> SessionSigner | None:
        """None until a password is set (then nobody can log in)."""
        stored = self.credentials.password_hash()
        return None if stored is None else SessionSigner(self.credentials.key(), stored)


SERVICES_KEY: Final = web.AppKey("services", ConsoleServices)


@dataclass(frozen=True, slots=True)
class Login:
    """A request's login state: the signer (None: no password set yet) and its session."""

    signer: SessionSigner | None
    session: Session | None

    def csrf(self) -> str:
        if self.signer is None or self.session is None:
            return ""
        return self.signer.csrf_token(self.session)


LOGIN_KEY: Final = web.RequestKey("login", Login)


def _templates(tz: tzinfo) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("nwcd.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )

    def when(stamp: int | None, never: str = "never") -> str:
        if stamp is None:
            return never
        return datetime.fromtimestamp(stamp, tz).strftime("%Y-%m-%d %H:%M")

    env.filters["when"] = when
    env.filters["sats"] = lambda msat: "-" if msat is None else sats_text(msat)
    env.filters["methods"] = describe_methods
    return env


# -- plumbing ------------------------------------------------------------------------------


def _services(request: web.Request) -> ConsoleServices:
    return request.app[SERVICES_KEY]


def _render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    services = _services(request)
    login = request.get(LOGIN_KEY, Login(None, None))
    html = services.templates.get_template(template).render(
        csrf=login.csrf(), logged_in=login.session is not None, path=request.path, **context
    )
    return web.Response(text=html, status=status, content_type="text/html")


def _safe_next(target: str | None) -> str:
    """A local path to go to after logging in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/connections"
    return target


def _client(request: web.Request) -> str:
    return request.remote or "unknown"


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:  # not sent by every browser on a same-origin POST
        return True
    parts = urlsplit(origin)
    return parts.netloc == request.host and parts.scheme in ("http", "https")


@web.middleware
async def _guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await _checked(request, handler)
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


async def _checked(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    services = _services(request)
    signer = services.signer()
    session = signer.check(request.cookies.get(SESSION_COOKIE), services.now()) if signer else None
    request[LOGIN_KEY] = Login(signer, session)
    if request.path.startswith(_PUBLIC):
        return await handler(request)
    if session is None:
        if request.method != "GET":
            raise web.HTTPForbidden(text="not logged in")
        # Opened from another site, the Strict cookie was not sent: go through /login
        # from our own origin (which logs in, or passes straight on if logged in).
        target = quote(request.path_qs, safe="")
        return _render(request, "bounce.html", target=f"/login?next={target}")
    if request.method == "POST":
        token = request.headers.get("X-CSRF-Token")
        if token is None:
            token = str((await request.post()).get("csrf", ""))
        assert signer is not None
        if not _same_origin(request) or not signer.check_csrf(session, token):
            log.warning("console: refused a POST to %s without a valid CSRF token", request.path)
            raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the page")
    return await handler(request)


# -- login -----------------------------------------------------------------------------------


async def login_page(request: web.Request) -> web.StreamResponse:
    target = _safe_next(request.query.get("next"))
    if request[LOGIN_KEY].session is not None:
        raise web.HTTPSeeOther(target)
    return _login_form(request, target)


def _login_form(
    request: web.Request, target: str, error: str = "", status: int = 200
) -> web.Response:
    token = secrets.token_urlsafe(16)
    response = _render(
        request, "login.html", status=status, next=target, login_token=token, error=error
    )
    response.set_cookie(
        LOGIN_COOKIE, token, httponly=True, samesite="Strict", path="/login", max_age=3600
    )
    return response


async def login(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    form = await request.post()
    target = _safe_next(str(form.get("next", "")))
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not secrets.compare_digest(cookie, str(form.get("login_token", ""))):
        return _login_form(request, target, "The form expired: try again.", 403)
    if not _same_origin(request):
        raise web.HTTPForbidden(text="cross-site login refused")
    now = services.clock()
    client = _client(request)
    buckets = services.login_buckets
    bucket = buckets.pop(client, None) or TokenBucket.full(LOGIN_RATE, now)
    buckets[client] = bucket  # the newest last: the oldest goes first when full
    if len(buckets) > _MAX_LOGIN_CLIENTS:
        buckets.pop(next(iter(buckets)))
    wait = bucket.wait(now)
    if wait > 0:
        return _login_form(
            request, target, f"Too many attempts: wait {int(wait) + 1} s and try again.", 429
        )
    bucket.take()
    stored = services.credentials.password_hash()
    password = str(form.get("password", ""))
    ok = stored is not None and await asyncio.to_thread(verify_password, password, stored)
    signer = request[LOGIN_KEY].signer
    if not ok or signer is None:
        log.warning("console: failed login from %s", client)
        return _login_form(request, target, "Wrong password.", 401)
    response = web.HTTPSeeOther(target)
    response.set_cookie(
        SESSION_COOKIE,
        signer.issue(services.now()),
        httponly=True,
        samesite="Strict",
        path="/",
        secure=request.secure,
    )
    response.del_cookie(LOGIN_COOKIE, path="/login")
    log.info("console: login from %s", client)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


# -- connections -----------------------------------------------------------------------------


async def connections_page(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    found = await usages(
        services.store, await services.store.connections(), services.tz, now=services.now()
    )
    found.sort(key=lambda u: (u.state != "active", -u.connection.created_at))
    return _render(request, "connections.html", usages=found)


def _form_page(
    request: web.Request,
    form: GrantForm,
    *,
    action: str,
    title: str,
    errors: Mapping[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    return _render(
        request,
        "connection_form.html",
        status=status,
        form=form,
        action=action,
        title=title,
        errors=errors or {},
        scopes={name: sorted(methods) for name, methods in SCOPES.items()},
        periods=[p.value for p in BudgetPeriod],
    )


def _submitted(form: Any) -> GrantForm:
    """The connection form as posted (unchecked boxes are simply absent)."""
    text = {key: str(form.get(key, "")) for key in _GRANT_FIELDS}
    return GrantForm(scopes=[str(s) for s in form.getall("scopes", [])], **text)


_GRANT_FIELDS = (
    "name",
    "extra_methods",
    "max_amount_sat",
    "budget_sat",
    "budget_period",
    "expires_at",
    "lud16",
)


async def new_connection_page(request: web.Request) -> web.StreamResponse:
    return _form_page(request, GrantForm(), action="/connections", title="New connection")


async def create(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    shown = _submitted(await request.post())
    try:
        grant = parse_grant_form(shown, now=services.now(), tz=services.tz)
        created = await create_connection(
            services.store,
            grant.new_connection(services.relays),
            now=services.now(),
            listen_timeout=services.listen_timeout,
        )
    except FormError as exc:
        return _form_page(
            request,
            shown,
            action="/connections",
            title="New connection",
            errors=exc.errors,
            status=400,
        )
    except AdminError as exc:
        return _form_page(
            request,
            shown,
            action="/connections",
            title="New connection",
            errors={"name": str(exc)},
            status=400,
        )
    assert created.uri is not None  # made with a fresh app secret
    uri = created.uri.format()
    log.info("console: connection %r created", created.connection.name)
    return _render(
        request,
        "connection_created.html",
        connection=created.connection,
        uri=uri,
        qr=segno.make(uri, error="m").svg_inline(scale=4, border=2),
        behind=created.behind,
    )


async def _connection(request: web.Request) -> Any:
    services = _services(request)
    try:
        return find_connection(await services.store.connections(), request.match_info["key"])
    except AdminError:
        raise web.HTTPNotFound(text="no such connection") from None


async def edit_page(request: web.Request) -> web.StreamResponse:
    connection = await _connection(request)
    return _form_page(
        request,
        grant_form_of(connection, _services(request).tz),
        action=f"/connections/{connection.wallet_pubkey}",
        title=f"Edit {connection.name}",
    )


async def update(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    connection = await _connection(request)
    shown = _submitted(await request.post())
    action = f"/connections/{connection.wallet_pubkey}"
    try:
        grant = parse_grant_form(shown, now=services.now(), tz=services.tz)
        await update_connection(
            services.store,
            connection.wallet_pubkey,
            grant.changes(),
            listen_timeout=services.listen_timeout,
        )
    except FormError as exc:
        return _form_page(
            request,
            shown,
            action=action,
            title=f"Edit {connection.name}",
            errors=exc.errors,
            status=400,
        )
    except AdminError as exc:
        return _form_page(
            request,
            shown,
            action=action,
            title=f"Edit {connection.name}",
            errors={"name": str(exc)},
            status=400,
        )
    log.info("console: connection %r changed", grant.name)
    raise web.HTTPSeeOther("/connections")


async def revoke(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    connection = await _connection(request)
    await revoke_connection(
        services.store,
        connection.wallet_pubkey,
        now=services.now(),
        listen_timeout=services.listen_timeout,
    )
    log.info("console: connection %r revoked", connection.name)
    raise web.HTTPSeeOther("/connections")


# -- activity --------------------------------------------------------------------------------

ACTIVITY_PAGE: Final = 50


def _cursor(text: str | None) -> tuple[int, str] | None:
    """``before=<received_at>:<request id>`` of the next page."""
    if not text:
        return None
    stamp, _, request_id = text.partition(":")
    if not stamp.isdigit() or not request_id:
        raise web.HTTPBadRequest(text="bad page cursor")
    return int(stamp), request_id


async def _activity(request: web.Request) -> dict[str, Any]:
    services = _services(request)
    wallet = request.query.get("connection") or None
    rows = await services.store.recent_requests(
        ACTIVITY_PAGE, wallet_pubkey=wallet, before=_cursor(request.query.get("before"))
    )
    more = rows[-1].cursor if len(rows) == ACTIVITY_PAGE else None
    return {
        "rows": rows,
        "connection": wallet or "",
        "names": {c.wallet_pubkey: c.name for c in await services.store.connections()},
        "next": f"{more[0]}:{more[1]}" if more else "",
        "first_page": "before" not in request.query,
    }


async def activity_page(request: web.Request) -> web.StreamResponse:
    return _render(request, "activity.html", **await _activity(request))


async def activity_rows(request: web.Request) -> web.StreamResponse:
    """The list's rows alone: the page polls them while it is open (htmx)."""
    return _render(request, "activity_rows.html", **await _activity(request))


async def _request_detail(request: web.Request) -> dict[str, Any]:
    store = _services(request).store
    request_id = request.match_info["request_id"]
    summary = await store.request_summary(request_id)
    if summary is None:
        raise web.HTTPNotFound(
            text="no such request (requests that moved no money are forgotten after the retention)"
        )
    return {"summary": summary, "items": await store.request_items(request_id)}


async def request_page(request: web.Request) -> web.StreamResponse:
    return _render(request, "request.html", **await _request_detail(request))


async def request_items(request: web.Request) -> web.StreamResponse:
    """A request's items alone: polled while the request runs."""
    return _render(request, "request_items.html", **await _request_detail(request))


# -- apps ask for a connection (an authorization URL, or an NWA URI pasted) ----------------


def _app_request(asked: str, now: int) -> AppRequest:
    """The app's ask: an NWA URI, or the query of an authorization URL (``/apps/new?...``).
    Read again on approval: the form carries what the app sent, never a grant of its own."""
    if asked.lower().startswith(NWA_SCHEME):
        return parse_nwa_uri(asked, now=now)
    return parse_authorization_query(MultiDict(parse_qsl(asked, keep_blank_values=True)), now=now)


def opener_origin(return_to: str | None) -> str:
    """Where the ``nwc:success`` message may go: the origin of the app's ``return_to``
    when it is a web page, else any (the message holds no secret: relays and the wallet
    pubkey, usable only with the app's own key)."""
    if return_to:
        parts = urlsplit(return_to)
        if parts.scheme in ("http", "https") and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}"
    return "*"


def _app_page(
    request: web.Request, ask: AppRequest, query: str, error: str = "", status: int = 200
) -> web.Response:
    methods = sorted(ask.methods) if ask.methods is not None else [m.value for m in Method]
    return _render(
        request,
        "app_approve.html",
        status=status,
        ask=ask,
        query=query,
        methods=methods,
        error=error,
        expires=(
            ""
            if ask.expires_at is None
            else datetime.fromtimestamp(ask.expires_at, _services(request).tz).strftime(
                "%Y-%m-%dT%H:%M"
            )
        ),
    )


async def app_page(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    asked = request.query.get("nwa", "").strip() or request.query_string  # the paste box
    try:
        ask = _app_request(asked, services.now())
    except AppRequestError as exc:
        return _render(request, "app_refused.html", status=400, error=str(exc))
    return _app_page(request, ask, asked)


async def app_decide(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    form = await request.post()
    query = str(form.get("query", ""))
    try:
        ask = _app_request(query, services.now())
    except AppRequestError as exc:
        return _render(request, "app_refused.html", status=400, error=str(exc))
    if form.get("decision") != "approve":
        log.info("console: declined an app's request (%s)", ask.name or "no name")
        return _render(request, "app_declined.html", ask=ask)
    errors: dict[str, str] = {}
    budget = parse_sats(str(form.get("budget_sat", "")), "the budget", errors, "budget_sat")
    expires_at = None
    if form.get("expires_at"):
        try:
            expires_at = local_time(str(form["expires_at"]), services.tz)
        except ValueError:
            errors["expires_at"] = "a date and time, e.g. 2027-01-31T18:00"
    if errors:
        return _app_page(request, ask, query, "; ".join(errors.values()), 400)
    narrowing = Narrowing(
        methods=frozenset(str(m) for m in form.getall("methods", [])),
        budget_msat=budget,
        expires_at=expires_at,
        use_app_relays=form.get("use_app_relays") == "yes",
    )
    try:
        new = grant_request(ask, narrowing, service_relays=services.relays)
        created = await create_connection(
            services.store, new, now=services.now(), listen_timeout=services.listen_timeout
        )
    except AdminError as exc:
        return _app_page(request, ask, query, str(exc), 400)
    connection = created.connection
    log.info("console: approved app %r", connection.name)
    message = {
        "type": "nwc:success",
        "relayUrls": list(connection.relays),
        "walletPubkey": connection.wallet_pubkey,
        "lud16": connection.lud16,
    }
    return _render(
        request,
        "app_approved.html",
        connection=connection,
        message=json.dumps(message),
        origin="" if ask.relays else opener_origin(ask.return_to),  # NWA: no window to tell
        return_to=ask.return_to or "",
        behind=created.behind,
    )


# -- wallet ----------------------------------------------------------------------------------


async def wallet_page(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    error = ""
    balance: int | None = None
    transactions: list[Any] = []
    try:
        balance = await services.backend.get_balance()
        transactions = await services.backend.list_transactions(ListTransactionsParams(limit=25))
    except Exception as exc:  # the backend may be down: say so, keep the page
        error = f"the backend did not answer: {type(exc).__name__}"
    return _render(
        request,
        "wallet.html",
        backend=services.backend.kind,
        balance=balance,
        transactions=transactions,
        relays=services.relays,
        error=error,
    )


# -- probes ----------------------------------------------------------------------------------


async def health(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    if services.health is None:
        return web.json_response({"ok": True})
    ok, detail = await services.health()
    return web.json_response({"ok": ok, **detail}, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    if services.metrics is None:
        raise web.HTTPNotFound()
    body, content_type = services.metrics()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/connections")


def build_app(services: ConsoleServices) -> web.Application:
    """The console's aiohttp application."""
    app = web.Application(middlewares=[_guard], client_max_size=64 * 1024)
    app[SERVICES_KEY] = services
    static = resources.files("nwcd.console") / "static"
    app.router.add_get("/", index)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/connections", connections_page)
    app.router.add_get("/connections/new", new_connection_page)
    app.router.add_post("/connections", create)
    app.router.add_get("/connections/{key}/edit", edit_page)
    app.router.add_post("/connections/{key}", update)
    app.router.add_post("/connections/{key}/revoke", revoke)
    app.router.add_get("/activity", activity_page)
    app.router.add_get("/activity/rows", activity_rows)
    app.router.add_get("/activity/{request_id}", request_page)
    app.router.add_get("/activity/{request_id}/items", request_items)
    app.router.add_get("/apps/new", app_page)
    app.router.add_post("/apps/new", app_decide)
    app.router.add_get("/wallet", wallet_page)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_static("/static/", str(static))
    return app
