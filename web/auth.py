"""Bearer-token auth for /api/ when API_TOKEN is set (constant-time comparison)."""

from __future__ import annotations

import hmac

from flask import Flask, request

from worker.errors import Unauthorized


def register(app: Flask, token: str | None) -> None:
    if not token:
        return
    expected = token.encode()

    @app.before_request
    def _require_token() -> None:
        if not request.path.startswith("/api/"):
            return
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                 expected):
            raise Unauthorized("missing or invalid bearer token")
