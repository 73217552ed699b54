"""Bearer-token auth for /api/ when API_TOKEN is set (constant-time comparison)."""

from __future__ import annotations

import hmac

from flask import Flask, current_app, request

from .errors import Unauthorized


def register(app: Flask) -> None:
    @app.before_request
    def _require_token() -> None:
        token = current_app.config.get("API_TOKEN")
        if not token or not request.path.startswith("/api/"):
            return
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            raise Unauthorized("missing or invalid bearer token")
