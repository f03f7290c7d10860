"""The pure NIP-47 (Nostr Wallet Connect) protocol core: URI, messages, encryption.

Nothing here does I/O; an import-contract test keeps it that way.
"""
