"""The one error of the recipients package: a recipient cannot be paid as asked."""

from __future__ import annotations

from nwcd.errors import NwcdError

__all__ = ["RecipientError"]


class RecipientError(NwcdError):
    """A recipient, its LNURL server or the user's input cannot be used; ``reason`` says why.

    The reason is one human sentence, shown to the user as is: ``str(exc) == exc.reason``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __repr__(self) -> str:
        return f"RecipientError({self.reason!r})"
