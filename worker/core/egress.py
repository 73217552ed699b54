"""Where a webhook may be sent: the SSRF guard for a caller's `callback_url`.

A `callback_url` is the caller's, so the service must not be made to call into its own
network with it: the URL must be https (http only for a host listed in
WEBHOOK_ALLOWED_HOSTS), its host must be listed when that list is set, and every address its
name resolves to must be a public one — a loopback, link-local (the cloud metadata service at
169.254.169.254), private, shared (100.64/10), multicast, unspecified or reserved address is
refused unless that very host is listed explicitly (an exact entry, not a `.suffix`). IPv4
inside IPv6 (mapped, 6to4, Teredo) is checked as the IPv4 address it carries.

The check runs at trigger time (422 `invalid_callback_url`) and again at each delivery (DNS
can change), and the delivery connects to the addresses this check returned, never resolving
the name a second time, so the answer cannot change between the check and the connect
(worker/runner/delivery.py). The operator's own WEBHOOK_URL is trusted: `target()` without
`guard`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

#: the longest callback_url accepted
MAX_URL = 2048
#: cloud metadata and host-agent addresses that are otherwise public (Azure's wire server);
#: the others (169.254.169.254, fd00:ec2::254, 100.100.100.200) are not global anyway
METADATA = frozenset({ipaddress.ip_address("168.63.129.16")})

Resolver = Callable[..., list[Any]]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(ValueError):
    """The URL may not be called; the message says why, in words a caller may read (never an
    address the name resolved to: that would make the service a probe of internal DNS)."""


class Unresolvable(EgressRefused):
    """The name does not resolve (now): at a delivery, worth another try later."""


@dataclass(frozen=True)
class Target:
    """A checked URL: what to connect to (`addresses`, in the resolver's order) and what to
    ask for (`host` for the Host header and TLS, `request_path`)."""

    url: str
    scheme: str
    host: str
    port: int
    request_path: str
    addresses: tuple[str, ...]


def _embedded(ip: IpAddress) -> IpAddress:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo's client), else itself."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip.teredo is not None:
            return ip.teredo[1]
    return ip


def internal(address: str) -> bool:
    """Whether an address is one a caller may not point the service at."""
    ip = _embedded(ipaddress.ip_address(address.split("%", 1)[0]))
    return (not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified
            or ip in METADATA)


def _listed(host: str, allowed: Iterable[str]) -> tuple[bool, bool]:
    """(matched by an entry of the list, matched exactly: a host name or address, not a
    `.suffix`)."""
    matched = exact = False
    for entry in (e.strip().lower().strip("[]") for e in allowed):
        if not entry:
            continue
        if entry.startswith("."):
            matched = matched or host == entry[1:] or host.endswith(entry)
        elif _same_host(entry, host):
            matched = exact = True
    return matched, exact


def _same_host(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def target(url: str, *, allowed_hosts: tuple[str, ...] = (), guard: bool = False,
           resolver: Resolver = socket.getaddrinfo) -> Target:
    """Parse and resolve `url`; with `guard` (a caller's callback_url) apply every rule above.
    Raises `EgressRefused`."""
    if len(url) > MAX_URL:
        raise EgressRefused(f"longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise EgressRefused("not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise EgressRefused("must be an https:// URL")
    if parts.username is not None or parts.password is not None:
        raise EgressRefused("must not carry credentials")
    raw_host = (parts.hostname or "").lower()
    if not raw_host:
        raise EgressRefused("has no host")
    try:
        host = raw_host if raw_host.isascii() else raw_host.encode("idna").decode("ascii")
    except UnicodeError:
        raise EgressRefused("has a host name that cannot be encoded") from None
    listed, explicit = _listed(host, allowed_hosts)
    if guard:
        if allowed_hosts and not listed:
            raise EgressRefused("its host is not in WEBHOOK_ALLOWED_HOSTS")
        if scheme == "http" and not listed:
            raise EgressRefused("must be https:// (http only for a host in "
                                "WEBHOOK_ALLOWED_HOSTS)")
    port = port or (443 if scheme == "https" else 80)
    addresses = resolve(host, port, resolver)
    if guard and not explicit and any(internal(a) for a in addresses):
        raise EgressRefused("its host resolves to a loopback, link-local, private or "
                            "metadata address (list the host in WEBHOOK_ALLOWED_HOSTS to "
                            "allow it)")
    path = parts.path or "/"
    return Target(url, scheme, host, port, path + (f"?{parts.query}" if parts.query else ""),
                  addresses)


def resolve(host: str, port: int, resolver: Resolver = socket.getaddrinfo) -> tuple[str, ...]:
    """Every address `host` names (an address literal: itself), duplicates dropped."""
    try:
        return (str(ipaddress.ip_address(host)),)
    except ValueError:
        pass
    try:
        found = resolver(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise Unresolvable("its host name does not resolve") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in found))
    if not addresses:
        raise Unresolvable("its host name does not resolve")
    return addresses
