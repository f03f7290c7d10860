"""How nwcd writes its log: text lines, or one JSON object per line (``--log-format json``).

A log call may attach structured fields with ``extra={FIELDS: {...}}`` (a finished
request's connection, method, outcome, amount, items, latency). The JSON format makes
them keys of the line's object, so a log collector needs no parsing; the text format
shows only the message, which says the same in words. Callers never put a secret in
a message or a field: keys, URIs, macaroons, preimages and invoices stay out.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from nwcd.nostr import jsontext

__all__ = ["FIELDS", "LOG_FORMATS", "JsonFormatter", "log_handler"]

FIELDS = "fields"
"""The ``extra`` key of a record's structured fields (a mapping of JSON values)."""

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, the
    record's fields, and the traceback of an exception as one string."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, Mapping):
            entry.update((key, value) for key, value in fields.items() if key not in entry)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        line = jsontext.dumps_bytes(entry, default=str)
        if line.isascii():
            return line.decode()
        # Non-ASCII escaped, as before: the log stream may not be UTF-8.
        return json.dumps(entry, separators=(",", ":"), default=str)


def log_handler(log_format: str, stream: TextIO) -> logging.Handler:
    """A handler writing ``log_format`` (one of :data:`LOG_FORMATS`) lines to ``stream``."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}")
    handler = logging.StreamHandler(stream)
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    return handler
