"""Relay adapters: the client-side pool (websockets) and a small local relay."""
