"""The SSRF guard for a caller's callback_url (worker/core/egress.py), without a network: the
URL's rules, and every address a name resolves to, through a resolver given as an argument
(tests/integration/test_webhooks.py resolves real names in a network namespace)."""

from __future__ import annotations

import socket

import pytest

from worker.core.egress import EgressRefused, Unresolvable, internal, target

INTERNAL = ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "::1",
            "fe80::1", "fd00:ec2::254", "100.64.0.1", "0.0.0.0", "::ffff:127.0.0.1",
            "2002:7f00:1::", "224.0.0.1", "168.63.129.16", "100.100.100.200"]


def resolving(*addresses: str):
    def resolver(host, port, **kwargs):
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port)) for a in addresses]
    return resolver


def nowhere(host, port, **kwargs):
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.mark.parametrize("address", INTERNAL)
def test_internal_addresses_are_internal(address):
    assert internal(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::1111"])
def test_public_addresses_are_not(address):
    assert not internal(address)


@pytest.mark.parametrize("url", ["https://127.0.0.1/x", "https://169.254.169.254/latest",
                                 "https://10.0.0.1/", "https://[::1]:8443/x"])
def test_an_internal_address_is_refused_unless_listed(url):
    with pytest.raises(EgressRefused, match="loopback, link-local, private or metadata"):
        target(url, guard=True)
    host = url.split("/")[2].rsplit(":", 1)[0] if "[" not in url else "::1"
    assert target(url, allowed_hosts=(host,), guard=True).addresses


def test_a_name_is_refused_when_any_of_its_addresses_is_internal():
    mixed = resolving("93.184.215.14", "10.1.2.3")
    with pytest.raises(EgressRefused):
        target("https://hooks.example.com/x", guard=True, resolver=mixed)
    ok = target("https://hooks.example.com:8443/x?a=1", guard=True,
                resolver=resolving("93.184.215.14"))
    assert (ok.host, ok.port, ok.request_path, ok.addresses) == (
        "hooks.example.com", 8443, "/x?a=1", ("93.184.215.14",))


def test_a_suffix_entry_admits_the_host_but_not_its_internal_addresses():
    inside = resolving("10.1.2.3")
    with pytest.raises(EgressRefused, match="loopback"):
        target("https://a.corp.test/x", allowed_hosts=(".corp.test",), guard=True,
               resolver=inside)
    assert target("https://a.corp.test/x", allowed_hosts=("a.corp.test",), guard=True,
                  resolver=inside).addresses == ("10.1.2.3",)


@pytest.mark.parametrize("url, why", [
    ("http://hooks.example.com/x", "https"),
    ("ftp://hooks.example.com/x", "https"),
    ("https://user:pw@hooks.example.com/x", "credentials"),
    ("https:///x", "no host"),
    ("https://hooks.example.com:99999/x", "not a valid URL"),
    ("https://" + "a" * 3000 + ".com/", "longer than"),
])
def test_url_rules(url, why):
    with pytest.raises(EgressRefused, match=why):
        target(url, guard=True, resolver=resolving("93.184.215.14"))


def test_the_allowed_list_limits_hosts_and_admits_http_for_them():
    public = resolving("93.184.215.14")
    with pytest.raises(EgressRefused, match="not in WEBHOOK_ALLOWED_HOSTS"):
        target("https://other.example.com/", allowed_hosts=("hooks.example.com",), guard=True,
               resolver=public)
    assert target("http://hooks.example.com/", allowed_hosts=("hooks.example.com",),
                  guard=True, resolver=public).scheme == "http"


def test_a_name_that_does_not_resolve_is_unresolvable():
    with pytest.raises(Unresolvable):
        target("https://nowhere.invalid/", guard=True, resolver=nowhere)


def test_the_operators_url_is_trusted():
    assert target("http://127.0.0.1:9/x").addresses == ("127.0.0.1",)
