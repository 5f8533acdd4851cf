"""Small in-process caches for the public read routes, and their HTTP validators.

The QR image of a lot never changes and a lot page changes only when the log
grows, yet producing either costs milliseconds (the QR mask search; some
thirty SQL queries and a Jinja2 render for a page). :class:`LruCache` keeps
the results in the worker's memory, bounded, least recently used out;
:func:`strong_etag` and :func:`etag_matches` give them a strong ETag and
answer ``If-None-Match`` (RFC 9110 section 13.1.2, weak comparison).

This module knows nothing of the ledger or of what is cached: deciding when an
entry is stale is the caller's job. Each uvicorn worker has its own caches.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

__all__ = ["LruCache", "etag_matches", "strong_etag"]

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class LruCache(Generic[_K, _V]):
    """A thread-safe mapping of at most ``capacity`` entries; the least recently used goes first.

    Args:
        capacity: entries kept, >= 1.

    Raises:
        ValueError: ``capacity`` < 1.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict[_K, _V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _K) -> _V | None:
        """The value under ``key`` (now the most recently used), or None."""
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: _K, value: _V) -> None:
        """Keep ``value`` under ``key``, evicting the least recently used beyond capacity."""
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def keys(self) -> list[_K]:
        """The keys, least recently used first (a copy)."""
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[_K]:
        return iter(self.keys())


def strong_etag(body: bytes) -> str:
    """A strong entity tag for ``body``: 128 bits of its SHA-256, quoted."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header value matches ``etag`` (weak comparison).

    ``*`` matches any current representation; ``W/`` prefixes are ignored, as
    RFC 9110 section 13.1.2 asks for ``If-None-Match``.
    """
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in tags or "*" in tags
