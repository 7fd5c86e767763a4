"""``current_values`` lists a bucket's live keys under a filter as they are now, against a
real nats-server: none, some, and some whose last write was a delete or a purge."""

import uuid

import nats
import pytest

from aiop.servicekit.kv import current_values, open_bucket

pytestmark = pytest.mark.integration


async def test_values_are_the_live_keys_under_the_filter(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        kv = await open_bucket(nc.jetstream(), f"values_{uuid.uuid4().hex[:8]}")
        assert await current_values(kv, "a.*") == []
        await kv.put("a.one", b"1")
        await kv.put("a.two", b"2")
        await kv.put("a.two", b"2b")  # only the latest value counts
        await kv.put("b.other", b"x")  # another prefix
        await kv.put("a.gone", b"3")
        await kv.delete("a.gone")  # the last entry delivered is a delete
        assert sorted(await current_values(kv, "a.*")) == [b"1", b"2b"]
        await kv.purge("a.one")
        assert await current_values(kv, "a.*") == [b"2b"]
        for _ in range(50):  # the list right after a write holds it, every time
            key = f"c.{uuid.uuid4().hex[:6]}"
            await kv.put(key, b"v")
            assert b"v" in await current_values(kv, f"c.{key[2:]}")
    finally:
        await nc.close()
