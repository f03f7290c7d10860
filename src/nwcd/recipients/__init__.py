"""Paying many people at once: lightning addresses and LNURL-pay, splits, value blocks, zaps.

The modules here decide (parse, check, split) without I/O; only :mod:`nwcd.recipients.resolve`
talks HTTP. None of them imports the service, store or relay layers.
"""
