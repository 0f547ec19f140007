"""Who is connecting: the rules, one case at a time. Behind real proxies, through the launched
app: test_client_address_proxies.py."""

from __future__ import annotations

import logging

import pytest
from starlette.datastructures import Headers

from zimage.guards import client_address as client_address_module
from zimage.guards.client_address import AddressKey, client_address, forwarded_for_entries


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "hops", "expected"),
    [
        # no trusted proxy: the peer, whatever the header says
        ("198.51.100.7", ["203.0.113.5"], 0, "198.51.100.7"),
        ("198.51.100.7", [], 0, "198.51.100.7"),
        # one proxy: the entry it appended, never what the client wrote before it
        ("10.0.0.1", ["203.0.113.5"], 1, "203.0.113.5"),
        ("10.0.0.1", ["6.6.6.6, 203.0.113.5"], 1, "203.0.113.5"),
        ("10.0.0.1", ["6.6.6.6, 7.7.7.7, 203.0.113.5"], 1, "203.0.113.5"),
        ("10.0.0.1", ["6.6.6.6", "203.0.113.5"], 1, "203.0.113.5"),  # two header lines
        ("10.0.0.1", ["6.6.6.6,, 203.0.113.5 ,"], 1, "203.0.113.5"),
        # two and three proxies: the entry the outermost trusted proxy wrote
        ("10.0.0.1", ["203.0.113.5, 10.1.1.1"], 2, "203.0.113.5"),
        ("10.0.0.1", ["6.6.6.6, 203.0.113.5, 10.1.1.1"], 2, "203.0.113.5"),
        ("10.0.0.1", ["203.0.113.5, 10.2.2.2, 10.1.1.1"], 3, "203.0.113.5"),
        ("10.0.0.1", ["6.6.6.6, 203.0.113.5, 10.2.2.2, 10.1.1.1"], 3, "203.0.113.5"),
        # a chain shorter than the hops: the nearest proxy's entry, never one further left
        ("10.0.0.1", ["203.0.113.5"], 2, "203.0.113.5"),
        ("10.0.0.1", ["6.6.6.6, 10.1.1.1"], 3, "10.1.1.1"),
        # no header although a proxy is expected: nobody stood in front, the peer is the client
        ("198.51.100.7", [], 1, "198.51.100.7"),
        # one spelling per address
        ("10.0.0.1", ["203.0.113.5:4711"], 1, "203.0.113.5"),
        ("10.0.0.1", ["[2001:DB8:0::1]:443"], 1, "2001:db8::1"),
        ("2001:DB8::0:7", [], 0, "2001:db8::7"),
    ],
)
def test_address_from_peer_and_trusted_hops(
    peer: str, forwarded_for: list[str], hops: int, expected: str
) -> None:
    # Starlette's Headers, as the middleware and gr.Request hold them: lines kept apart.
    headers = Headers(raw=[(b"x-forwarded-for", line.encode()) for line in forwarded_for])
    assert client_address(peer, headers, hops) == expected


def test_plain_mapping_of_headers_is_read_too() -> None:
    headers = {"X-Forwarded-For": "6.6.6.6, 203.0.113.5", "User-Agent": "x"}
    assert client_address("10.0.0.1", headers, 1) == "203.0.113.5"


@pytest.mark.parametrize("name", ["x-forwarded-for", "X-FORWARDED-FOR", "X-Forwarded-For"])
def test_the_header_is_found_in_any_case(name: str) -> None:
    assert client_address("10.0.0.1", {name: "203.0.113.5"}, 1) == "203.0.113.5"


def test_entries_keep_their_order_across_header_lines_and_drop_empties() -> None:
    headers = Headers(
        raw=[(b"x-forwarded-for", b" a, ,b "), (b"user-agent", b"c"), (b"x-forwarded-for", b"d")]
    )
    assert forwarded_for_entries(headers) == ["a", "b", "d"]
    assert forwarded_for_entries({"User-Agent": "x"}) == []


@pytest.mark.parametrize("hops", [0, -1])
def test_without_a_trusted_hop_the_header_is_never_read(hops: int) -> None:
    assert client_address("198.51.100.7", {"X-Forwarded-For": "203.0.113.5"}, hops) == (
        "198.51.100.7"
    )


def test_an_unknown_peer_is_the_empty_address() -> None:
    assert client_address(None, {}, 0) == ""
    assert client_address(None, {}, 1) == ""


@pytest.mark.parametrize(
    ("entry", "canonical"),
    [
        ("2001:DB8:0:0::1", "2001:db8::1"),  # IPv6 without brackets or port
        ("[2001:db8::1]", "2001:db8::1"),  # brackets without a port
        (" 203.0.113.5 ", "203.0.113.5"),
        ("203.0.113.5:0", "203.0.113.5"),
        ("unknown", "unknown"),  # not an address: kept as given (one visitor: "unknown")
        ("_proxy-obfuscated", "_proxy-obfuscated"),
        ("[garbage]:1", "[garbage]:1"),
        ("x203.0.113.5]", "x203.0.113.5]"),  # a bracket alone makes no address of what it holds
        ("host:80", "host:80"),
    ],
)
def test_each_address_has_one_spelling_and_anything_else_is_kept_as_given(
    entry: str, canonical: str
) -> None:
    assert client_address("10.0.0.1", {"X-Forwarded-For": entry}, 1) == canonical
    assert client_address(entry, {}, 0) == canonical


def test_a_short_chain_is_reported_once_without_any_address(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_address_module, "_warned_short_chain", False)
    headers = {"X-Forwarded-For": "6.6.6.6, 10.1.1.1"}
    with caplog.at_level(logging.WARNING):
        assert client_address("10.0.0.1", headers, 3) == "10.1.1.1"
        assert client_address("10.0.0.1", headers, 3) == "10.1.1.1"
    (record,) = caplog.records
    assert record.getMessage() == (
        "X-Forwarded-For had 2 entries but ZIMAGE_TRUSTED_PROXY_HOPS=3: using the entry of the "
        "nearest proxy (check the setting against the proxies in front)"
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert client_address("10.0.0.1", headers, 2) == "6.6.6.6"  # long enough: no warning
    assert caplog.records == []


def test_an_address_key_links_one_address_within_a_process_and_reveals_nothing() -> None:
    key, other_process = AddressKey(), AddressKey()
    digest = key("203.0.113.5")
    assert digest == key("203.0.113.5") != key("203.0.113.6")
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert "203.0.113.5" not in digest
    assert other_process("203.0.113.5") != digest
