"""An ``async def`` producer's result as a plain iterator (used by ``runtime/producer.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..stagefn.output import Routed


def sync_iter(result: Any) -> Iterator[Any]:
    """An ``async def`` producer's result as a plain iterator, run on a private event loop in
    the producer's thread: an async generator's items one by one, or what a coroutine
    returns (an iterable of items, or one item). Closing it closes the async generator."""
    import asyncio
    import inspect

    loop = asyncio.new_event_loop()
    try:
        if inspect.iscoroutine(result):
            value = loop.run_until_complete(result)
            if value is None:
                return
            if isinstance(value, (str, bytes, bytearray, dict, Routed)) or not hasattr(
                value, "__iter__"
            ):
                yield value
            else:
                yield from value
            return
        agen = result
        try:
            while True:
                try:
                    item = loop.run_until_complete(agen.__anext__())
                except StopAsyncIteration:
                    return
                yield item
        finally:
            loop.run_until_complete(agen.aclose())
    finally:
        loop.close()
