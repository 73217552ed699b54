"""Who is calling, and what it may do: bearer tokens and their scopes for /api/ when API_TOKEN
or API_TOKENS is set.

A caller is known by its token's name (API_TOKENS=name:token[:scopes],…; API_TOKEN is one
unnamed token); the name is recorded on the runs it triggers (`triggered_by`) and is its
rate-limit key. Without tokens, or with the unnamed one, the rate-limit key is the client's
address. Every configured token is compared, in constant time, on every request; no token is
ever logged, put in an error or shown in a repr.

What each scope allows is the two tables below (worker/core/scopes.py says what each scope
means): a new route, or a new conflict policy, is one line here. A route not in ROUTE_SCOPES
needs `admin`, so a route added without a line is closed, not open.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field, replace

from flask import Flask, g, request

from worker.core.errors import Forbidden
from worker.core.runs import Run
from worker.core.scopes import EVERY_SCOPE, Scope, Token, grants
from worker.core.status import ConflictPolicy

from .problems import Unauthorized

#: the scopes that each /api/ route accepts (any one of them is enough)
ROUTE_SCOPES: dict[str, tuple[Scope, ...]] = {
    "api.list_workflows": (Scope.READ,),
    "api.get_workflow": (Scope.READ,),
    "api.list_runs": (Scope.READ,),
    "api.get_run": (Scope.READ,),
    "api.get_run_logs": (Scope.READ,),
    "api.run_events": (Scope.READ,),
    "api.trigger": (Scope.TRIGGER,),
    # its own runs with `trigger`; anyone's with `cancel` (checked on the run: the service)
    "api.cancel_run": (Scope.TRIGGER, Scope.CANCEL),
}
#: what a trigger's conflict policy needs; a policy not listed needs only `trigger`
POLICY_SCOPES: dict[ConflictPolicy, Scope] = {
    ConflictPolicy.REPLACE: Scope.ADMIN,
}


@dataclass(frozen=True)
class Caller:
    name: str | None  # the token's name; None: no tokens, or the unnamed API_TOKEN
    rate_key: str
    scopes: frozenset[Scope] = EVERY_SCOPE

    def holds(self, scope: Scope) -> bool:
        return grants(self.scopes, scope)

    def require(self, scope: Scope, what: str) -> None:
        if not self.holds(scope):
            raise Forbidden(scope, what)

    def require_policy(self, policy: ConflictPolicy) -> None:
        self.require(POLICY_SCOPES.get(policy, Scope.TRIGGER), f"on_conflict={policy.value}")

    @property
    def cancels_only_its_own(self) -> str | None:
        """The name whose runs alone this caller may cancel, or None: anyone's."""
        return None if self.holds(Scope.CANCEL) else self.name or ""

    def view(self, run: Run) -> Run:
        """The run as this caller may see it: `triggered_by` only when it is its own name,
        unless it holds `admin`."""
        if run.triggered_by is None or run.triggered_by == self.name or self.holds(Scope.ADMIN):
            return run
        return replace(run, triggered_by=None)


@dataclass(frozen=True)
class Tokens:
    """The accepted tokens; its repr never shows them."""

    entries: tuple[tuple[Token, bytes], ...] = field(repr=False)

    def __repr__(self) -> str:
        return f"Tokens({len(self.entries)} configured)"

    def match(self, given: bytes) -> Token | None:
        """Compare against every token (no early exit: the time does not say which matched)."""
        found = None
        for token, secret in self.entries:
            if hmac.compare_digest(given, secret):
                found = token
        return found


#: the app's extension holding its Tokens (the trigger's fast path identifies with them too)
TOKENS = "testruns.tokens"


def client_address(remote_addr: str | None) -> str:
    return f"addr:{remote_addr or 'unknown'}"


def identify(tokens: Tokens, *, path: str, method: str, authorization: str,
             remote_addr: str | None, endpoint: str | None, rule: str | None) -> Caller:
    """Who calls: 401 for a missing or wrong token, then 403 for a token without the route's
    scope (`endpoint`, `rule`: the matched route, None for none). What Flask's hook asks of
    each request, and the trigger's fast path of its own (web/fast.py)."""
    if not tokens.entries or not path.startswith("/api/") or method == "OPTIONS":
        # no tokens; or the page, health, the contract
        return Caller(None, client_address(remote_addr))
    scheme, _, given = authorization.partition(" ")
    token = tokens.match(given.strip().encode()) if scheme.lower() == "bearer" else None
    if token is None:
        raise Unauthorized("missing or invalid bearer token")
    caller = Caller(token.name, f"token:{token.name}" if token.name
                    else client_address(remote_addr), token.scopes)
    accepted = ROUTE_SCOPES.get(endpoint or "", (Scope.ADMIN,)) if rule is not None else ()
    if accepted and not any(caller.holds(scope) for scope in accepted):
        raise Forbidden(accepted[0], f"{method} {rule}")
    return caller


def register(app: Flask, callers: list[Token]) -> None:
    tokens = app.extensions[TOKENS] = Tokens(tuple((token, token.secret.encode())
                                                   for token in callers))

    @app.before_request
    def _identify() -> None:
        """Before the body is read: web/bodies.py comes after."""
        rule = request.url_rule
        g.caller = identify(tokens, path=request.path, method=request.method,
                            # what request.headers reads, without its KeyError when absent
                            authorization=request.environ.get("HTTP_AUTHORIZATION", ""),
                            remote_addr=request.remote_addr, endpoint=request.endpoint,
                            rule=rule.rule if rule is not None else None)
