"""LND over its REST API (``lnd --restlisten``): the ``LightningBackend`` of a real node.

Theory of operation:

* One ``httpx.AsyncClient`` per backend: the node's TLS certificate is the only
  trust anchor (``tls_cert``), the admin macaroon goes in the
  ``Grpc-Metadata-macaroon`` header of every request, never in a message or a log.
* Payments go through ``POST /v2/router/send``, a server stream of newline-delimited
  ``{"result": Payment}`` messages; the adapter reads it until ``SUCCEEDED`` or
  ``FAILED``. A stream that breaks or outlasts ``payment_timeout`` gives ``Pending``:
  the payment may still complete, and ``payment_status`` (``GET
  /v2/router/track/{hash}``) finds out later, also after a crash of this process,
  because LND keeps paying without us.
* A refusal of ``send`` before any payment message (an expired invoice, a bad
  request) is turned into ``Failed`` only after LND confirms that no payment with
  that hash exists: "unknown" is never reported as "failed".
* Every ``httpx`` exception and malformed response is translated here, into
  ``BackendTimeout`` / ``BackendUnavailable`` (or an outcome value for payments).

Amounts in LND's JSON are strings (int64 in proto3 JSON), bytes fields are base64,
except payment hashes and preimages of the ``Payment`` message, which are hex.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import httpx

from nwcd import bolt11
from nwcd.backends._http import BadResponse, map_exceptions
from nwcd.bolt11 import Invoice
from nwcd.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ErrorCode,
    InvalidInvoice,
    RequestError,
)
from nwcd.http_transport import http_transport
from nwcd.nip47.methods import (
    ListTransactionsParams,
    MakeHoldInvoiceParams,
    MakeInvoiceParams,
    TlvRecord,
)
from nwcd.nip47.results import NodeInfo, Transaction
from nwcd.ports import (
    BACKEND_METHODS,
    NOT_FOUND,
    Failed,
    LightningBackend,
    PaymentOutcome,
    Pending,
    Succeeded,
)

__all__ = ["KEYSEND_RECORD", "LndBackend", "LndConfig", "LndError"]

log = logging.getLogger(__name__)

KEYSEND_RECORD: Final = 5482373484
"""The TLV type carrying the preimage of a keysend payment."""

_MACAROON_HEADER: Final = "Grpc-Metadata-macaroon"
_ALREADY_PAID: Final = "invoice already paid"
_IN_TRANSITION: Final = "payment already in flight"
_LIST_MAX: Final = 10_000  # invoices / payments fetched per list_transactions call
_REASON_MAX: Final = 200  # characters of an LND error message kept in a failure reason
_RECONNECT_MIN, _RECONNECT_MAX = 0.5, 30.0  # invoice subscription backoff, seconds
_DRAIN_SECONDS: Final = 1.0  # waiting for the end of a finished payment's stream
# Connections kept open between batches: each payment streams on its own connection,
# and a batch of 100 would otherwise pay for 80 new TLS handshakes next time (httpx
# keeps 20 by default). LND's REST server keeps idle connections open.
_POOL: Final = httpx.Limits(
    max_connections=None, max_keepalive_connections=256, keepalive_expiry=120
)
_HEX: Final = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class LndConfig:
    """How to reach one LND node's REST API.

    Attributes:
        url: the REST endpoint, e.g. ``https://127.0.0.1:8080``.
        macaroon: the macaroon (admin, or one allowing offchain, invoices, info,
            message signing), hex encoded. Never shown by ``repr``.
        tls_cert: the node's ``tls.cert`` (PEM), the only certificate trusted; ``None``
            trusts the system's CAs (a node behind a proxy with a public certificate).
        timeout: seconds for one request (connect, read, pool) before ``BackendTimeout``.
        payment_timeout: seconds a payment call waits for a final state before it
            answers ``Pending``; also LND's own ``timeout_seconds`` for finding a route.
    """

    url: str
    macaroon: str = field(repr=False)
    tls_cert: Path | None = None
    timeout: float = 30.0
    payment_timeout: float = 60.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("https://", "http://")):
            raise ValueError("url must start with https:// (or http://)")
        if not self.macaroon or not _HEX.issuperset(self.macaroon.lower()):
            raise ValueError("macaroon must be non-empty hex")
        if len(self.macaroon) % 2:
            raise ValueError("macaroon must be whole bytes of hex")
        if self.timeout <= 0 or self.payment_timeout <= 0:
            raise ValueError("timeout and payment_timeout must be positive")

    @classmethod
    def from_files(
        cls,
        url: str,
        macaroon_path: Path,
        tls_cert: Path | None,
        *,
        timeout: float = 30.0,
        payment_timeout: float = 60.0,
    ) -> LndConfig:
        """Config with the macaroon read from its binary file (as LND writes it).

        Raises:
            OSError: the macaroon file cannot be read.
        """
        return cls(
            url=url,
            macaroon=Path(macaroon_path).read_bytes().hex(),
            tls_cert=tls_cert,
            timeout=timeout,
            payment_timeout=payment_timeout,
        )


class LndError(BackendUnavailable):
    """LND answered a request with an error (``status``: HTTP, ``code``: gRPC)."""

    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(f"lnd answered HTTP {status}: {message[:_REASON_MAX]}")
        self.status = status
        self.code = code
        self.message = message


@contextlib.contextmanager
def _edge(what: str) -> Iterator[None]:
    """``map_exceptions`` of ``_http``, plus undecodable JSON / base64 / integers."""
    with map_exceptions("LND"):
        try:
            yield
        except BackendError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise BadResponse(f"{what}: malformed ({type(exc).__name__})") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64_to_hex(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return base64.b64decode(value, validate=False).hex()


def _int(value: object, default: int = 0) -> int:
    """An int64 of LND's JSON (a string, or a number from some versions)."""
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("not an integer")
    return int(value)


def _object(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


def _parse_error(body: object) -> tuple[int | None, str]:
    """``(grpc code, message)`` of an error body (unary or streamed ``{"error": ...}``)."""
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict):
            body = inner
        elif isinstance(inner, str):  # old grpc-gateway shape
            return _maybe_int(body.get("code")), inner
        if isinstance(body, dict):
            message = body.get("message")
            return _maybe_int(body.get("code")), message if isinstance(message, str) else ""
    return None, ""


def _maybe_int(value: object) -> int | None:
    try:
        return _int(value) if value is not None else None
    except ValueError:
        return None


def _response_error(response: httpx.Response) -> LndError:
    try:
        code, message = _parse_error(response.json())
    except ValueError:
        code, message = None, ""
    return LndError(response.status_code, code, message or response.reason_phrase)


def _reason(failure_reason: object) -> str:
    """``FAILURE_REASON_NO_ROUTE`` -> ``no route``."""
    text = str(failure_reason or "FAILURE_REASON_ERROR")
    text = text.removeprefix("FAILURE_REASON_")
    return text.lower().replace("_", " ")


def _outcome(payment: Mapping[str, Any]) -> PaymentOutcome:
    """A ``Payment`` message as an outcome; anything not final or not understood is Pending."""
    status = payment.get("status")
    if status == "SUCCEEDED":
        preimage = payment.get("payment_preimage")
        if (
            isinstance(preimage, str)
            and len(preimage) == 64
            and _HEX.issuperset(preimage.lower())
            and preimage != "0" * 64
        ):
            return Succeeded(preimage.lower(), _int(payment.get("fee_msat")))
        return Pending("lnd reported success without a preimage")
    if status == "FAILED":
        return Failed(_reason(payment.get("failure_reason")))
    if status in ("IN_FLIGHT", "INITIATED", "UNKNOWN"):
        return Pending()
    return Pending(f"unrecognized payment status {str(status)[:40]!r}")


def _hash_of(hex_hash: str) -> bytes | None:
    try:
        raw = bytes.fromhex(hex_hash)
    except ValueError:
        return None
    return raw if len(raw) == 32 else None


def _decoded(payment_request: object) -> Invoice | None:
    if not isinstance(payment_request, str) or not payment_request:
        return None
    try:
        return bolt11.decode(payment_request)
    except InvalidInvoice:
        return None


def _incoming(invoice: Mapping[str, Any], now: float) -> Transaction:
    """An LND ``Invoice`` message as a NIP-47 incoming transaction."""
    payment_hash = _b64_to_hex(invoice.get("r_hash"))
    if payment_hash is None:
        raise ValueError("invoice without r_hash")
    created_at = _int(invoice.get("creation_date"))
    expires_at = created_at + _int(invoice.get("expiry"), 86_400)
    match invoice.get("state"):
        case "SETTLED":
            state = "settled"
        case "ACCEPTED":
            state = "accepted"
        case "CANCELED":
            state = "expired" if now >= expires_at else "failed"
        case _:
            state = "pending" if now < expires_at else "expired"
    settled = state == "settled"
    amount_msat = _int(invoice.get("amt_paid_msat")) if state in ("settled", "accepted") else 0
    if not amount_msat:
        amount_msat = _int(invoice.get("value_msat"))
    memo = invoice.get("memo")
    return Transaction(
        type="incoming",
        payment_hash=payment_hash,
        amount_msat=amount_msat,
        created_at=created_at,
        state=state,
        invoice=invoice.get("payment_request") or None,
        description=memo if isinstance(memo, str) and memo else None,
        description_hash=_b64_to_hex(invoice.get("description_hash")),
        preimage=_b64_to_hex(invoice.get("r_preimage")) if settled else None,
        expires_at=expires_at,
        settled_at=_int(invoice.get("settle_date")) if settled else None,
        settle_deadline=_settle_deadline(invoice) if state == "accepted" else None,
    )


def _settle_deadline(invoice: Mapping[str, Any]) -> int | None:
    """The block height by which a held payment must be settled or canceled: the
    earliest expiry of its held HTLCs."""
    heights = [
        _int(htlc.get("expiry_height"))
        for htlc in invoice.get("htlcs") or ()
        if isinstance(htlc, dict) and htlc.get("state") == "ACCEPTED"
    ]
    return min(heights) if heights else None


def _is_open_hold_invoice(invoice: Mapping[str, Any]) -> bool:
    """A hold invoice not settled or canceled yet: LND knows no preimage for it."""
    return invoice.get("state") in ("OPEN", "ACCEPTED") and not invoice.get("r_preimage")


def _hold_error(exc: LndError) -> RequestError | None:
    """What the app is told when LND refuses to settle or cancel (None: not a refusal)."""
    if exc.status == 404 or exc.code == 5 or "unable to locate" in exc.message:
        return RequestError(ErrorCode.NOT_FOUND, "hold invoice not found")
    if 400 <= exc.status < 500 or exc.code in (2, 3, 9):
        return RequestError(ErrorCode.OTHER, f"lnd refused: {exc.message[:_REASON_MAX]}")
    return None


async def _read_to_end(lines: AsyncIterator[str]) -> None:
    """Read the little LND sends after a payment's final state (it then ends the
    stream), so the connection goes back to the pool: leaving it unread closes it, and
    the next payment pays for a new TLS connection."""
    with contextlib.suppress(httpx.HTTPError, TimeoutError):
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for _ in lines:
                pass


def _invoice_body(params: MakeInvoiceParams) -> dict[str, Any]:
    """The fields of a new LND invoice (``/v1/invoices`` and ``/v2/invoices/hodl``)."""
    body: dict[str, Any] = {"value_msat": str(params.amount_msat)}
    if params.description_hash:
        body["description_hash"] = _b64(bytes.fromhex(params.description_hash))
    elif params.description:
        body["memo"] = params.description
    if params.expiry:
        body["expiry"] = str(params.expiry)
    return body


def _outgoing(payment: Mapping[str, Any]) -> Transaction:
    """An LND ``Payment`` message as a NIP-47 outgoing transaction."""
    payment_hash = payment.get("payment_hash")
    if not isinstance(payment_hash, str) or _hash_of(payment_hash) is None:
        raise ValueError("payment without payment_hash")
    status = payment.get("status")
    state = {"SUCCEEDED": "settled", "FAILED": "failed"}.get(str(status), "pending")
    settled = state == "settled"
    created_ns = _int(payment.get("creation_time_ns"))
    created_at = created_ns // 1_000_000_000 if created_ns else _int(payment.get("creation_date"))
    settled_at: int | None = None
    if settled:
        resolved = [
            _int(htlc.get("resolve_time_ns"))
            for htlc in payment.get("htlcs") or ()
            if isinstance(htlc, dict) and htlc.get("status") == "SUCCEEDED"
        ]
        settled_at = max(resolved) // 1_000_000_000 if resolved else created_at
    decoded = _decoded(payment.get("payment_request"))
    return Transaction(
        type="outgoing",
        payment_hash=payment_hash.lower(),
        amount_msat=_int(payment.get("value_msat")),
        created_at=created_at,
        state=state,
        invoice=payment.get("payment_request") or None,
        description=decoded.description if decoded else None,
        description_hash=decoded.description_hash if decoded else None,
        preimage=str(payment.get("payment_preimage")).lower() if settled else None,
        fees_paid_msat=_int(payment.get("fee_msat")) if settled else 0,
        expires_at=decoded.expires_at if decoded else None,
        settled_at=settled_at,
    )


class LndBackend:
    """``LightningBackend`` over LND's REST API; build it with :meth:`open`."""

    kind = "lnd"
    methods: frozenset[str] = BACKEND_METHODS
    max_concurrent_payments: int | None = None

    def __init__(self, config: LndConfig, client: httpx.AsyncClient) -> None:
        self._config = config
        self._client = client
        self._closed = False
        # Where held payments go: one queue per running incoming_payments stream, fed
        # by one watcher per open hold invoice (LND's all-invoices subscription reports
        # additions and settlements only, never a payment being held).
        self._streams: set[asyncio.Queue[Transaction | None]] = set()
        self._hold_watchers: dict[str, asyncio.Task[None]] = {}

    @classmethod
    async def open(
        cls, config: LndConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> LndBackend:
        """Create the HTTP client (no request is made yet).

        Args:
            config: where the node is and how to authenticate.
            transport: an ``httpx`` transport to use instead of the network (tests).

        Raises:
            BackendUnavailable: the TLS certificate cannot be loaded.
        """
        verify: ssl.SSLContext | bool = True
        if config.tls_cert is not None:
            try:
                verify = ssl.create_default_context(cafile=str(config.tls_cert))
            except (OSError, ssl.SSLError) as exc:
                raise BackendUnavailable(
                    f"lnd tls_cert {config.tls_cert} cannot be loaded ({type(exc).__name__})"
                ) from None
        # Not _http.create_client: it takes the certificate as a path, which httpx 0.28
        # deprecates (a DeprecationWarning); an SSLContext is the supported way.
        client = httpx.AsyncClient(
            base_url=config.url.rstrip("/"),
            headers={"User-Agent": "nwcd", _MACAROON_HEADER: config.macaroon},
            timeout=httpx.Timeout(config.timeout),
            transport=transport if transport is not None else http_transport(verify, _POOL),
            trust_env=False,
            follow_redirects=False,
        )
        return cls(config, client)

    async def close(self) -> None:
        """Close the HTTP client; running streams end.

        The hold invoice watchers are cancelled and waited for before the client
        closes: none is left to finish (or open) a connection after this returns.
        """
        self._closed = True
        watchers = list(self._hold_watchers.values())
        for watcher in watchers:
            watcher.cancel()
        for stream in self._streams:
            stream.put_nowait(None)
        if watchers:
            await asyncio.wait(watchers)
        await self._client.aclose()

    async def __aenter__(self) -> LndBackend:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"LndBackend({self._config.url!r})"

    # --- plumbing -----------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """One unary request; the decoded JSON object.

        Raises:
            LndError: LND answered with an error status.
            BackendTimeout, BackendUnavailable: no usable answer.
        """
        with _edge(f"{method} {path}"):  # API paths and payment hashes only: no secrets
            response = await self._client.request(method, path, json=body, params=params)
            if response.status_code != 200:
                raise _response_error(response)
            return _object(response.json())

    @property
    def _timeout_seconds(self) -> int:
        return max(1, int(self._config.payment_timeout))

    # --- payments -----------------------------------------------------------------------------

    async def pay_invoice(
        self, invoice: Invoice, *, amount_msat: int, fee_limit_msat: int
    ) -> PaymentOutcome:
        """Pay through ``/v2/router/send`` and wait for the final state (or ``Pending``)."""
        body: dict[str, Any] = {
            "payment_request": invoice.bolt11,
            "fee_limit_msat": str(max(1, fee_limit_msat)),  # 0 would mean "no fee at all"
            "timeout_seconds": self._timeout_seconds,
            "no_inflight_updates": False,
        }
        if invoice.amount_msat is None:
            body["amt_msat"] = str(amount_msat)
        return await self._send(body, invoice.payment_hash)

    async def pay_keysend(
        self,
        *,
        pubkey: str,
        amount_msat: int,
        preimage: str,
        tlv_records: tuple[TlvRecord, ...],
        fee_limit_msat: int,
    ) -> PaymentOutcome:
        """Spontaneous payment: the preimage travels in TLV record 5482373484."""
        try:
            raw_preimage = bytes.fromhex(preimage)
            destination = bytes.fromhex(pubkey)
            records = {
                str(record.type): _b64(bytes.fromhex(record.value)) for record in tlv_records
            }
        except ValueError:
            return Failed("invalid hex in pubkey, preimage or TLV records")
        if len(raw_preimage) != 32:
            return Failed("invalid preimage")
        if len(destination) != 33:
            return Failed("invalid pubkey")
        if amount_msat <= 0:
            return Failed("incorrect payment amount")
        records[str(KEYSEND_RECORD)] = _b64(raw_preimage)
        payment_hash = hashlib.sha256(raw_preimage).digest()
        body = {
            "dest": _b64(destination),
            "amt_msat": str(amount_msat),
            "payment_hash": _b64(payment_hash),
            "dest_custom_records": records,
            "fee_limit_msat": str(max(1, fee_limit_msat)),
            "timeout_seconds": self._timeout_seconds,
            "no_inflight_updates": False,
        }
        return await self._send(body, payment_hash.hex())

    async def _send(self, body: Mapping[str, Any], payment_hash: str) -> PaymentOutcome:
        """Run ``/v2/router/send`` to a final state; ``Pending`` whenever that is unknown."""
        latest: PaymentOutcome = Pending("lnd stream ended without a final state")
        refusal: LndError | None = None
        try:
            async with (
                asyncio.timeout(self._config.payment_timeout),
                self._client.stream(
                    "POST",
                    "/v2/router/send",
                    json=body,
                    timeout=httpx.Timeout(self._config.timeout, read=None),
                ) as response,
            ):
                if response.status_code != 200:
                    await response.aread()
                    refusal = _response_error(response)
                else:
                    lines = response.aiter_lines()
                    async for line in lines:
                        if not line.strip():
                            continue
                        message = _object(json.loads(line))
                        if "result" not in message:
                            code, text = _parse_error(message)
                            http = _maybe_int(_object(message.get("error") or {}).get("http_code"))
                            refusal = LndError(http or 500, code, text)
                            break
                        latest = _outcome(_object(message["result"]))
                        if not isinstance(latest, Pending):
                            await _read_to_end(lines)
                            return latest
        except TimeoutError:
            return Pending("no final state from lnd within payment_timeout")
        except httpx.HTTPError as exc:
            return Pending(f"lnd payment stream broken ({type(exc).__name__})")
        except ValueError as exc:
            return Pending(f"malformed payment stream from lnd ({type(exc).__name__})")
        if refusal is None:
            return latest
        return await self._refused(refusal, payment_hash)

    async def _refused(self, error: LndError, payment_hash: str) -> PaymentOutcome:
        """LND refused ``send``: Failed only when it confirms the payment does not exist."""
        text = error.message.lower()
        if "already paid" in text:
            return Failed(_ALREADY_PAID)
        if "in transition" in text or "in flight" in text:
            return Pending(_IN_TRANSITION)
        try:
            outcome = await self.payment_status(payment_hash)
        except (BackendTimeout, BackendUnavailable) as exc:
            return Pending(f"lnd refused the payment, then could not be asked ({exc!r})")
        if isinstance(outcome, Failed) and outcome.reason == NOT_FOUND:
            log.info("lnd refused payment %s: %s", payment_hash, error.message[:_REASON_MAX])
            return Failed(error.message[:_REASON_MAX] or f"refused by lnd ({error.status})")
        return outcome

    async def payment_status(self, payment_hash: str) -> PaymentOutcome:
        """The current state from ``/v2/router/track/{hash}`` (its first message).

        Raises:
            BackendTimeout, BackendUnavailable: LND could not be asked.
        """
        raw = _hash_of(payment_hash)
        if raw is None:
            return Failed(NOT_FOUND)
        path = "/v2/router/track/" + base64.urlsafe_b64encode(raw).decode("ascii")
        error: LndError | None = None
        with _edge("track payment"):
            try:
                async with (
                    asyncio.timeout(self._config.timeout),
                    self._client.stream(
                        "GET", path, params={"no_inflight_updates": "false"}
                    ) as response,
                ):
                    if response.status_code != 200:
                        await response.aread()
                        error = _response_error(response)
                    else:
                        async for line in response.aiter_lines():
                            if not line.strip():
                                continue
                            message = _object(json.loads(line))
                            if "result" in message:
                                return _outcome(_object(message["result"]))
                            code, text = _parse_error(message)
                            http = _maybe_int(_object(message.get("error") or {}).get("http_code"))
                            error = LndError(http or 500, code, text)
                            break
            except TimeoutError:
                raise BackendTimeout("lnd track payment: no first message in time") from None
        if error is None:
            raise BackendUnavailable("lnd track payment: stream ended without a message")
        # Only LND's own "not found" (gRPC NOT_FOUND / "isn't initiated"), never a bare
        # 404 from a proxy: recovery would take an in-flight payment for one never sent.
        if error.code == 5 or "isn't initiated" in error.message:
            return Failed(NOT_FOUND)
        raise error

    # --- invoices and transactions -------------------------------------------------------------

    async def make_invoice(self, params: MakeInvoiceParams) -> Transaction:
        """``POST /v1/invoices``, then the invoice as LND stored it.

        Metadata is not kept by LND (nor returned). With a ``description_hash`` the
        invoice carries only the hash, and the description is not stored.

        Raises:
            RequestError: ``OTHER`` when LND refuses the invoice (its reason is shown).
        """
        added = await self._add_invoice("/v1/invoices", _invoice_body(params))
        with _edge("add invoice"):
            payment_hash = _b64_to_hex(added.get("r_hash"))
        if payment_hash is None:
            raise BackendUnavailable("lnd add invoice: no r_hash in the answer")
        return await self._new_invoice(payment_hash)

    async def make_hold_invoice(self, params: MakeHoldInvoiceParams) -> Transaction:
        """``POST /v2/invoices/hodl`` for the app's payment hash; a payer's HTLC is then
        held (``ACCEPTED``) until settled or canceled, and reported on the incoming stream.

        Raises:
            RequestError: ``OTHER`` when LND refuses (e.g. the hash is taken).
        """
        body = _invoice_body(
            MakeInvoiceParams(
                params.amount_msat, params.description, params.description_hash, params.expiry
            )
        )
        body["hash"] = _b64(bytes.fromhex(params.payment_hash))
        if params.min_cltv_expiry_delta is not None:
            body["cltv_expiry"] = str(params.min_cltv_expiry_delta)
        await self._add_invoice("/v2/invoices/hodl", body)
        self._watch_hold(params.payment_hash)
        return await self._new_invoice(params.payment_hash)

    async def settle_hold_invoice(self, preimage: str) -> None:
        """``POST /v2/invoices/settle``: LND takes the held HTLCs with the preimage."""
        await self._hold_action("settle", {"preimage": _b64(bytes.fromhex(preimage))})

    async def cancel_hold_invoice(self, payment_hash: str) -> None:
        """``POST /v2/invoices/cancel``: the held HTLCs go back (canceling twice is fine)."""
        await self._hold_action("cancel", {"payment_hash": _b64(bytes.fromhex(payment_hash))})

    async def _hold_action(self, action: str, body: Mapping[str, Any]) -> None:
        try:
            await self._call("POST", f"/v2/invoices/{action}", body=body)
        except LndError as exc:
            refusal = _hold_error(exc)
            if refusal is None:
                raise
            raise refusal from None

    async def _add_invoice(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return await self._call("POST", path, body=body)
        except LndError as exc:
            if 400 <= exc.status < 500 or exc.code in (2, 3, 6):
                raise RequestError(
                    ErrorCode.OTHER, f"cannot make the invoice: {exc.message[:_REASON_MAX]}"
                ) from None
            raise

    async def _new_invoice(self, payment_hash: str) -> Transaction:
        found = await self._invoice(payment_hash)
        if found is None:
            raise BackendUnavailable("lnd add invoice: the new invoice cannot be found")
        return found

    async def _invoice(self, payment_hash: str) -> Transaction | None:
        try:
            invoice = await self._call("GET", f"/v1/invoice/{payment_hash}")
        except LndError as exc:
            if exc.status == 404 or exc.code == 5 or "unable to locate" in exc.message:
                return None
            raise
        with _edge("lookup invoice"):
            return _incoming(invoice, time.time())

    async def lookup_invoice(
        self, *, payment_hash: str | None, invoice: str | None
    ) -> Transaction | None:
        """The node's invoice, else its outgoing payment, by hash (or by invoice)."""
        if payment_hash is None and invoice is not None:
            decoded = _decoded(invoice.lower())
            payment_hash = decoded.payment_hash if decoded else None
        if payment_hash is None or _hash_of(payment_hash) is None:
            return None
        payment_hash = payment_hash.lower()
        found = await self._invoice(payment_hash)
        if found is not None:
            return found
        return await self._payment(payment_hash)

    async def _payment(self, payment_hash: str) -> Transaction | None:
        path = "/v2/router/track/" + base64.urlsafe_b64encode(bytes.fromhex(payment_hash)).decode()
        with _edge("track payment"):
            try:
                async with (
                    asyncio.timeout(self._config.timeout),
                    self._client.stream("GET", path) as response,
                ):
                    if response.status_code != 200:
                        body = (await response.aread()).decode(errors="replace")
                        if response.status_code == 404 and "isn't initiated" in body:
                            return None
                        raise LndError(response.status_code, None, body)
                    async for line in response.aiter_lines():
                        if line.strip():
                            message = _object(json.loads(line))
                            result = message.get("result")
                            return None if result is None else _outgoing(_object(result))
            except TimeoutError:
                raise BackendTimeout("lnd track payment: no first message in time") from None
        return None

    async def list_transactions(self, params: ListTransactionsParams) -> list[Transaction]:
        """``/v1/invoices`` and ``/v1/payments`` merged, newest first, filtered, paged.

        Without ``unpaid`` only settled transactions are listed. At most 10 000 of each
        kind in the time window are read.
        """
        window: dict[str, str] = {}
        if params.from_time is not None:
            window["creation_date_start"] = str(params.from_time)
        if params.until is not None:
            window["creation_date_end"] = str(params.until + 1)
        now = time.time()
        found: list[Transaction] = []
        if params.type in (None, "incoming"):
            invoices = await self._call(
                "GET",
                "/v1/invoices",
                params={"reversed": "true", "num_max_invoices": str(_LIST_MAX), **window},
            )
            with _edge("list invoices"):
                found.extend(_incoming(_object(i), now) for i in invoices.get("invoices") or ())
        if params.type in (None, "outgoing"):
            payments = await self._call(
                "GET",
                "/v1/payments",
                params={
                    "reversed": "true",
                    "max_payments": str(_LIST_MAX),
                    "include_incomplete": "true" if params.unpaid else "false",
                    **window,
                },
            )
            with _edge("list payments"):
                found.extend(_outgoing(_object(p)) for p in payments.get("payments") or ())
        chosen = [
            tx
            for tx in found
            if (params.unpaid or tx.state == "settled")
            and (params.from_time is None or tx.created_at >= params.from_time)
            and (params.until is None or tx.created_at <= params.until)
        ]
        chosen.sort(key=lambda tx: (-tx.created_at, tx.payment_hash))
        end = None if params.limit is None else params.offset + params.limit
        return chosen[params.offset : end]

    # --- node ----------------------------------------------------------------------------------

    async def get_balance(self) -> int:
        """The local balance of the node's channels (``/v1/balance/channels``), msat."""
        balance = await self._call("GET", "/v1/balance/channels")
        with _edge("channel balance"):
            local = balance.get("local_balance")
            if isinstance(local, dict):
                return _int(local.get("msat"))
            return _int(balance.get("balance")) * 1000  # versions before the msat fields

    async def get_info(self) -> NodeInfo:
        """Alias, color, identity key, network and chain tip from ``/v1/getinfo``."""
        info = await self._call("GET", "/v1/getinfo")
        with _edge("getinfo"):
            chains = info.get("chains") or [{}]
            network = str(_object(chains[0]).get("network") or "mainnet")
            return NodeInfo(
                alias=str(info.get("alias") or ""),
                color=str(info.get("color") or ""),
                pubkey=str(info["identity_pubkey"]),
                network=network,
                block_height=_int(info.get("block_height")),
                block_hash=str(info.get("block_hash") or ""),
            )

    async def sign_message(self, message: str) -> str:
        """``/v1/signmessage``: zbase32 signature over the LND-prefixed message."""
        signed = await self._call(
            "POST", "/v1/signmessage", body={"msg": _b64(message.encode("utf-8"))}
        )
        signature = signed.get("signature")
        if not isinstance(signature, str) or not signature:
            raise BackendUnavailable("lnd signmessage: no signature in the answer")
        return signature

    def incoming_payments(self) -> AsyncIterator[Transaction]:
        """Invoices settled from now on (``/v1/invoices/subscribe``), and payments held
        by open hold invoices (one ``/v2/invoices/subscribe/{hash}`` each), until closed.

        A dropped subscription is reopened (with backoff) from the last settle index
        seen, so LND replays what was settled in between. Hold invoices open when the
        stream starts are watched too (their current state first: a payment held
        while nobody watched is reported).
        """
        return self._incoming()

    async def _incoming(self) -> AsyncIterator[Transaction]:
        stream: asyncio.Queue[Transaction | None] = asyncio.Queue()
        self._streams.add(stream)
        settled = asyncio.create_task(self._pump_settled(stream))
        try:
            await self._watch_open_holds()
            while not self._closed:
                tx = await stream.get()
                if tx is None:
                    return
                yield tx
        finally:
            self._streams.discard(stream)
            settled.cancel()
            await asyncio.wait([settled])  # its connection closed before the stream ends

    async def _watch_open_holds(self) -> None:
        """Watch the hold invoices LND has open (made before this stream started)."""
        try:
            listed = await self._call(
                "GET",
                "/v1/invoices",
                params={"pending_only": "true", "num_max_invoices": str(_LIST_MAX)},
            )
        except BackendError as exc:
            log.warning("lnd: open hold invoices not listed (%s)", exc)
            return
        for invoice in listed.get("invoices") or ():
            invoice = _object(invoice)
            payment_hash = _b64_to_hex(invoice.get("r_hash"))
            if payment_hash is not None and _is_open_hold_invoice(invoice):
                self._watch_hold(payment_hash)

    def _watch_hold(self, payment_hash: str) -> None:
        if not self._closed and payment_hash not in self._hold_watchers:
            watcher = asyncio.create_task(self._watch_one_hold(payment_hash))
            self._hold_watchers[payment_hash] = watcher
            watcher.add_done_callback(lambda _: self._hold_watchers.pop(payment_hash, None))

    async def _watch_one_hold(self, payment_hash: str) -> None:
        """Report each time the hold invoice starts holding a payment; end when it is
        settled or canceled (a settlement comes through the settled stream)."""
        path = (
            "/v2/invoices/subscribe/"
            + base64.urlsafe_b64encode(bytes.fromhex(payment_hash)).decode()
        )
        held = False
        async for invoice in self._subscription("hold invoice", path, dict):
            state = invoice.get("state")
            if state in ("SETTLED", "CANCELED"):
                return
            if state == "ACCEPTED" and not held:
                self._report(invoice, self._streams)
            held = state == "ACCEPTED"

    async def _pump_settled(self, stream: asyncio.Queue[Transaction | None]) -> None:
        """Settled invoices from ``/v1/invoices/subscribe`` into ``stream``; after a
        reconnect LND replays from the last settle index seen."""
        settle_index = 0

        def since() -> dict[str, str]:
            return {"settle_index": str(settle_index)} if settle_index else {}

        async for invoice in self._subscription("invoice", "/v1/invoices/subscribe", since):
            index = _int(invoice.get("settle_index"))
            if invoice.get("state") != "SETTLED" or (index and index <= settle_index):
                continue  # not settled, or replayed after a reconnect
            settle_index = max(settle_index, index)
            self._report(invoice, (stream,))

    @staticmethod
    def _report(invoice: Mapping[str, Any], streams: Iterable[asyncio.Queue[Any]]) -> None:
        try:
            tx = _incoming(invoice, time.time())
        except ValueError:
            log.warning("lnd: an invoice update without a payment hash was ignored")
            return
        for stream in streams:
            stream.put_nowait(tx)

    async def _subscription(
        self, what: str, path: str, params: Callable[[], Mapping[str, str]]
    ) -> AsyncIterator[dict[str, Any]]:
        """The ``result`` objects of an LND stream, reopened with backoff when it drops
        (``params`` is asked again each time), until the backend is closed."""
        delay = _RECONNECT_MIN
        while not self._closed:
            try:
                async with self._client.stream(
                    "GET",
                    path,
                    params=params(),
                    timeout=httpx.Timeout(self._config.timeout, read=None),
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        raise _response_error(response)
                    delay = _RECONNECT_MIN
                    async for line in response.aiter_lines():
                        result = _object(json.loads(line)).get("result") if line.strip() else None
                        if isinstance(result, dict):
                            yield result
            except (httpx.HTTPError, ValueError, LndError) as exc:
                if self._closed:
                    return
                log.warning(
                    "lnd %s subscription dropped (%s); again in %.1f s",
                    what,
                    type(exc).__name__,
                    delay,
                )
            if self._closed:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX)


if TYPE_CHECKING:  # mypy proves the adapter implements the port

    def _implements_port(backend: LndBackend) -> LightningBackend:
        return backend
