"""Who is connecting: the client address from the TCP peer and trusted proxy hops only.

Every consumer (the rate limit, the usage log's IP hash, the upload budget) asks this module,
so they all see the same address. `X-Forwarded-For` is a list the client starts and each proxy
extends on the right with the address it saw; only the entries added by proxies we trust can
be believed, so with N trusted hops the address is the N-th entry from the right. Anything
further left was written by the client and is never used.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
from typing import Any

logger = logging.getLogger(__name__)

_warned_short_chain = False


def forwarded_for_entries(headers: Any) -> list[str]:
    """The X-Forwarded-For entries, left to right, across every header line, empties dropped.

    `headers` may be Starlette's `Headers` (several lines of one header kept apart) or a plain
    mapping.
    """
    getlist = getattr(headers, "getlist", None)
    if getlist is not None:
        lines = list(getlist("x-forwarded-for"))
    else:
        lines = [v for k, v in dict(headers).items() if k.lower() == "x-forwarded-for"]
    return [entry.strip() for line in lines for entry in line.split(",") if entry.strip()]


def client_address(peer: str | None, headers: Any, trusted_hops: int) -> str:
    """The address of the client as the nearest trusted proxy saw it.

    `peer` is the TCP peer (the ASGI scope's client host). With 0 trusted hops it is the
    answer. With N hops it is the N-th X-Forwarded-For entry from the right.

    A chain shorter than N means the request skipped some of the proxies in front (or one of
    them adds no entry). Entries to the left of the proxies' own may then be the client's, so
    the answer falls back to the rightmost entry, which the nearest proxy wrote: at worst
    several visitors share one address (a stricter limit), never an address the client chose.
    No entry at all means no proxy stood in front: the peer is the client.
    """
    peer_address = _canonical(peer or "")
    if trusted_hops <= 0:
        return peer_address
    entries = forwarded_for_entries(headers)
    if not entries:
        return peer_address
    if len(entries) < trusted_hops:
        _warn_short_chain(len(entries), trusted_hops)
        return _canonical(entries[-1])
    return _canonical(entries[-trusted_hops])


class AddressKey:
    """A keyed hash of an address, so that memory holds no raw address.

    By default the key lives only in this process's memory: hashes cannot be reversed or linked
    to another process's. Replicas that count visitors together pass a key they share.
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def __call__(self, address: str) -> str:
        return hmac.new(self._key, address.encode(), hashlib.sha256).hexdigest()


# The process's own key for telling visitors' addresses apart where two parts must agree: the
# upload guard (who uploaded a file, who names one) and the outputs (whom a file was given to).
address_key = AddressKey()


def _canonical(entry: str) -> str:
    """An IP address in one spelling (port and brackets removed); anything else as given."""
    text = entry.strip()
    candidates = [text]
    if text.startswith("[") and "]" in text:  # [v6]:port
        candidates.append(text[1 : text.index("]")])
    elif text.count(":") == 1:  # v4:port
        candidates.append(text.split(":", 1)[0])
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return text


def _warn_short_chain(entries: int, trusted_hops: int) -> None:
    global _warned_short_chain
    if not _warned_short_chain:
        _warned_short_chain = True
        logger.warning(
            "X-Forwarded-For had %d entries but ZIMAGE_TRUSTED_PROXY_HOPS=%d: using the entry "
            "of the nearest proxy (check the setting against the proxies in front)",
            entries,
            trusted_hops,
        )
