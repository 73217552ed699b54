"""Who is calling: bearer tokens for /api/ when API_TOKEN or API_TOKENS is set.

A caller is known by its token's name (API_TOKENS=name:token,…; API_TOKEN is one unnamed
token); the name is recorded on the runs it triggers (`triggered_by`) and is its rate-limit
key. Without tokens, or with the unnamed one, the rate-limit key is the client's address.
Every configured token is compared, in constant time, on every request; no token is ever
logged, put in an error or shown in a repr.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from flask import Flask, g, request

from .problems import Unauthorized


@dataclass(frozen=True)
class Caller:
    name: str | None  # the token's name; None: no tokens, or the unnamed API_TOKEN
    rate_key: str


@dataclass(frozen=True)
class Tokens:
    """The accepted tokens; its repr never shows them."""

    entries: tuple[tuple[str | None, bytes], ...] = field(repr=False)

    def __repr__(self) -> str:
        return f"Tokens({len(self.entries)} configured)"

    def match(self, given: bytes) -> tuple[bool, str | None]:
        """Compare against every token (no early exit: the time does not say which matched)."""
        found, name = False, None
        for entry_name, token in self.entries:
            if hmac.compare_digest(given, token):
                found, name = True, entry_name
        return found, name


def _client_address() -> str:
    return f"addr:{request.remote_addr or 'unknown'}"


def register(app: Flask, callers: list[tuple[str | None, str]]) -> None:
    tokens = Tokens(tuple((name, token.encode()) for name, token in callers))

    @app.before_request
    def _identify() -> None:
        if not tokens.entries:
            g.caller = Caller(None, _client_address())
            return
        if not request.path.startswith("/api/") or request.method == "OPTIONS":
            g.caller = Caller(None, _client_address())  # the page, health, the contract
            return
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        ok, name = tokens.match(given.strip().encode()) if scheme.lower() == "bearer" \
            else (False, None)
        if not ok:
            raise Unauthorized("missing or invalid bearer token")
        g.caller = Caller(name, f"token:{name}" if name else _client_address())
