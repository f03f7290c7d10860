"""The pure Nostr core: keys, events, filters, wire messages, NIP-44 and NIP-04.

Nothing here does I/O; an import-contract test keeps it that way.
"""
