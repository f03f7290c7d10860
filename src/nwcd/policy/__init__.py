"""Pure permission and budget rules: who may do what, and how much they may spend."""
