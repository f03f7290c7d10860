"""The operator's console: web pages served by ``nwcd serve`` (see :mod:`nwcd.console.app`)."""
