"""A small least-recently-used cache for immutable things read often: parsed message summaries and
message bodies. One cache serves every session of the process, so its keys must name the content
itself (a content hash, a random object id), never a row id: a deleted row's id must not be able to
hit an entry made for it (access control happens before: a session only asks for what it may see).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    def __init__(
        self, max_entries: int, max_weight: int | None = None, weigh: Callable[[V], int] | None = None
    ):
        self.max_entries = max_entries
        self.max_weight = max_weight
        self._weigh = weigh or (lambda _: 1)
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self.weight = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item[0]

    def put(self, key: K, value: V) -> None:
        weight = self._weigh(value)
        if self.max_weight is not None and weight > self.max_weight:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.weight -= old[1]
        self._items[key] = (value, weight)
        self.weight += weight
        while len(self._items) > self.max_entries or (
            self.max_weight is not None and self.weight > self.max_weight
        ):
            _, (_, dropped) = self._items.popitem(last=False)
            self.weight -= dropped

    def __len__(self) -> int:
        return len(self._items)
