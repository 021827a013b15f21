"""Body hashes: the loop's piecewise hash (which keeps the GIL) is the same SHA-256 as the plain one."""

from __future__ import annotations

import hashlib
import os

import pytest

from tidings.store.blobs import _GIL_KEEPING_PIECE, BlobStore


@pytest.mark.parametrize(
    "size", [0, 1, _GIL_KEEPING_PIECE - 1, _GIL_KEEPING_PIECE, _GIL_KEEPING_PIECE + 1, 5000, 100_000]
)
def test_hash_on_loop_is_sha256_of_the_whole_body(size):
    data = os.urandom(size)
    expected = hashlib.sha256(data).hexdigest()
    assert BlobStore.hash_on_loop(data) == expected == BlobStore.hash_of(data)


def test_a_small_body_is_stored_under_its_sha256(store, run):
    data = b"Subject: x\r\n\r\n" + os.urandom(10_000)
    assert run(store.blobs.put(data)) == hashlib.sha256(data).hexdigest()
    assert run(store.blobs.get(hashlib.sha256(data).hexdigest())) == data
