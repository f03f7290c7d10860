"""NIP-01 / NIP-42 wire messages between clients and relays.

Relay to client::

    ["EVENT", <sub id>, <event>]     ["OK", <event id>, <bool>, <message>]
    ["EOSE", <sub id>]               ["CLOSED", <sub id>, <message>]
    ["NOTICE", <message>]            ["AUTH", <challenge>]

Client to relay::

    ["EVENT", <event>]   ["REQ", <sub id>, <filter>, ...]   ["CLOSE", <sub id>]
    ["AUTH", <signed kind-22242 event>]

Parsing is strict: anything else raises :class:`~nwcd.errors.InvalidMessage`
(or :class:`~nwcd.errors.InvalidEvent` for a malformed embedded event), never
another exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from nwcd.errors import InvalidMessage
from nwcd.nostr import jsontext
from nwcd.nostr.event import Event, parse_event
from nwcd.nostr.filters import Filter

__all__ = [
    "AuthChallenge",
    "ClientAuth",
    "ClientClose",
    "ClientEvent",
    "ClientMessage",
    "ClientReq",
    "RelayClosed",
    "RelayEose",
    "RelayEvent",
    "RelayMessage",
    "RelayNotice",
    "RelayOk",
    "encode",
    "parse_client_message",
    "parse_relay_message",
]

MAX_SUBSCRIPTION_ID: Final = 64


@dataclass(frozen=True, slots=True)
class RelayEvent:
    """An event delivered for a subscription."""

    subscription_id: str
    event: Event

    def to_json(self) -> list[Any]:
        return ["EVENT", self.subscription_id, self.event.to_json()]


@dataclass(frozen=True, slots=True)
class RelayOk:
    """The relay's verdict on a published event; ``message`` starts with a prefix."""

    event_id: str
    accepted: bool
    message: str

    def to_json(self) -> list[Any]:
        return ["OK", self.event_id, self.accepted, self.message]


@dataclass(frozen=True, slots=True)
class RelayEose:
    """End of stored events for a subscription."""

    subscription_id: str

    def to_json(self) -> list[Any]:
        return ["EOSE", self.subscription_id]


@dataclass(frozen=True, slots=True)
class RelayClosed:
    """The relay ended a subscription."""

    subscription_id: str
    message: str

    def to_json(self) -> list[Any]:
        return ["CLOSED", self.subscription_id, self.message]


@dataclass(frozen=True, slots=True)
class RelayNotice:
    """A human-readable message from the relay."""

    message: str

    def to_json(self) -> list[Any]:
        return ["NOTICE", self.message]


@dataclass(frozen=True, slots=True)
class AuthChallenge:
    """NIP-42: the relay asks the client to authenticate."""

    challenge: str

    def to_json(self) -> list[Any]:
        return ["AUTH", self.challenge]


RelayMessage = RelayEvent | RelayOk | RelayEose | RelayClosed | RelayNotice | AuthChallenge


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """Publish an event."""

    event: Event

    def to_json(self) -> list[Any]:
        return ["EVENT", self.event.to_json()]


@dataclass(frozen=True, slots=True)
class ClientReq:
    """Open (or replace) a subscription."""

    subscription_id: str
    filters: tuple[Filter, ...]

    def to_json(self) -> list[Any]:
        return ["REQ", self.subscription_id, *(f.to_json() for f in self.filters)]


@dataclass(frozen=True, slots=True)
class ClientClose:
    """Close a subscription."""

    subscription_id: str

    def to_json(self) -> list[Any]:
        return ["CLOSE", self.subscription_id]


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """NIP-42: answer a challenge with a signed kind-22242 event."""

    event: Event

    def to_json(self) -> list[Any]:
        return ["AUTH", self.event.to_json()]


ClientMessage = ClientEvent | ClientReq | ClientClose | ClientAuth


def encode(message: RelayMessage | ClientMessage) -> str:
    """Serialize a message for the websocket."""
    return jsontext.dumps(message.to_json())


def _load(text: str | bytes) -> list[Any]:
    try:
        data = jsontext.loads(text)
    except (ValueError, RecursionError):
        raise InvalidMessage("message is not JSON") from None
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise InvalidMessage("message is not a JSON array starting with a type string")
    return data


def _subscription_id(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_SUBSCRIPTION_ID:
        raise InvalidMessage("subscription id must be a string of 1 to 64 characters")
    return value


def _arity(data: list[Any], *allowed: int) -> None:
    if len(data) not in allowed:
        raise InvalidMessage(f"{data[0]} message has {len(data)} elements")


def _string(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidMessage(f"{what} must be a string")
    return value


def parse_relay_message(text: str | bytes) -> RelayMessage:
    """Parse a message a relay sent to us.

    Raises:
        InvalidMessage: unknown type, wrong arity or field types.
        InvalidEvent: the embedded event is malformed.
    """
    data = _load(text)
    match data[0]:
        case "EVENT":
            _arity(data, 3)
            return RelayEvent(_subscription_id(data[1]), parse_event(data[2]))
        case "OK":
            # The message is mandatory per NIP-01 but some relays omit it.
            _arity(data, 3, 4)
            if not isinstance(data[2], bool):
                raise InvalidMessage("OK status must be a boolean")
            message = _string(data[3], "OK message") if len(data) == 4 else ""
            return RelayOk(_string(data[1], "OK event id"), data[2], message)
        case "EOSE":
            _arity(data, 2)
            return RelayEose(_subscription_id(data[1]))
        case "CLOSED":
            _arity(data, 2, 3)
            message = _string(data[2], "CLOSED message") if len(data) == 3 else ""
            return RelayClosed(_subscription_id(data[1]), message)
        case "NOTICE":
            _arity(data, 2)
            return RelayNotice(_string(data[1], "NOTICE message"))
        case "AUTH":
            _arity(data, 2)
            return AuthChallenge(_string(data[1], "AUTH challenge"))
        case other:
            raise InvalidMessage(f"unknown relay message type {other!r}")


def parse_client_message(text: str | bytes) -> ClientMessage:
    """Parse a message a client sent to a relay (used by the local relay).

    Raises:
        InvalidMessage: unknown type, wrong arity or field types.
        InvalidEvent: the embedded event is malformed.
    """
    data = _load(text)
    match data[0]:
        case "EVENT":
            _arity(data, 2)
            return ClientEvent(parse_event(data[1]))
        case "REQ":
            if len(data) < 3:
                raise InvalidMessage("REQ needs a subscription id and at least one filter")
            filters = tuple(Filter.from_json(f) for f in data[2:])
            return ClientReq(_subscription_id(data[1]), filters)
        case "CLOSE":
            _arity(data, 2)
            return ClientClose(_subscription_id(data[1]))
        case "AUTH":
            _arity(data, 2)
            return ClientAuth(parse_event(data[1]))
        case other:
            raise InvalidMessage(f"unknown client message type {other!r}")
