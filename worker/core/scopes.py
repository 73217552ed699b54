"""What an API token may do: its scopes, and the tokens as API_TOKENS lists them.

`API_TOKENS=ci:tok1:trigger+read,ops:tok2:admin` gives `ci` the scopes `trigger` and `read` and
`ops` every scope; an entry without scopes (`name:token`), and the unnamed API_TOKEN, hold every
scope, as before scopes existed. Which route and which conflict policy need which scope is the
web's table (web/auth.py); the service is told only whose runs a caller may cancel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from .errors import SettingsError


class Scope(StrEnum):
    READ = "read"        # read workflows and runs, watch a run's events
    TRIGGER = "trigger"  # trigger runs, and cancel the caller's own
    CANCEL = "cancel"    # cancel anyone's run
    ADMIN = "admin"      # every scope, and more: replace a run in progress, see who triggered
                         # the runs of others (`triggered_by`; others see their own name or null)


EVERY_SCOPE = frozenset(Scope)
#: a caller's name in API_TOKENS: recorded on runs and in logs, so kept plain
CALLER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


@dataclass(frozen=True)
class Token:
    """One accepted token: its caller's name (None: the unnamed API_TOKEN) and scopes. Its repr
    never shows the token."""

    name: str | None
    secret: str = field(repr=False)
    scopes: frozenset[Scope] = EVERY_SCOPE


def grants(scopes: frozenset[Scope], scope: Scope) -> bool:
    """Whether `scopes` allow what `scope` does (`admin` allows everything)."""
    return scope in scopes or Scope.ADMIN in scopes


def parse_tokens(raw: str) -> list[Token]:
    """`name:token[:scope+scope],…` → Tokens. Errors name the entry's position, never its token
    (a token may not hold `:`, which now starts the scopes)."""
    found: list[Token] = []
    names: set[str] = set()
    for n, entry in enumerate((e for e in raw.split(",") if e.strip()), 1):
        name, sep, rest = entry.strip().partition(":")
        secret, has_scopes, listed = rest.partition(":")
        if not sep or not secret or not CALLER_NAME_RE.match(name):
            raise SettingsError("API_TOKENS", f"entry {n} is not name:token (a name of letters, "
                                "digits and _.@- up to 64 characters, then a token)")
        if name in names:
            raise SettingsError("API_TOKENS", f"entry {n} repeats the name {name!r}")
        names.add(name)
        found.append(Token(name, secret, _scopes(n, listed) if has_scopes else EVERY_SCOPE))
    return found


def _scopes(entry: int, listed: str) -> frozenset[Scope]:
    words = listed.split("+")
    unknown = [w for w in words if w not in Scope.__members__.values()]
    if unknown or not listed:
        raise SettingsError("API_TOKENS", f"entry {entry}: its scopes must be some of "
                            f"{'+'.join(Scope)} joined by '+' (a token may not contain ':')")
    return frozenset(Scope(w) for w in words)
