"""nwcd: Nostr Wallet Connect (NIP-47) wallet service, client SDK and CLI."""

from nwcd.errors import ErrorCode, NwcdError, RequestError
from nwcd.nip47.uri import ConnectionUri

__all__ = ["ConnectionUri", "ErrorCode", "NwcdError", "RequestError", "__version__"]

__version__ = "0.1.0"
