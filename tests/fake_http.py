"""The HTTP server the test fakes (Saleor, Langflow, JWKS, webhook receivers) run on."""
from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer


class FakeServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that does not print a traceback when a client hangs up mid-answer (a run
    cancelled, a stream left, a timeout): that is what several tests do on purpose. Printing it was
    also harmful: Python 3.11 formats a traceback with `ast.parse`, whose recursion counter is shared
    between threads, so a traceback printed here while the test's thread built an app (Werkzeug parses
    its routes the same way) could fail that app with "AST constructor recursion depth mismatch"."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # BrokenPipe, ConnectionReset, ConnectionAborted
            return
        super().handle_error(request, client_address)
