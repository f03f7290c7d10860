"""The chaos suite: real processes, seeded faults, end checks (see runner.py)."""
