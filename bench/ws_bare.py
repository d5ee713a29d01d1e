"""The Python ceiling for bench/ws.py: a bare `websockets` broadcast server speaking just enough
of our protocol (subscribe → subscribed, events with the same JSON shape), no auth, no storage.

    python bench/ws_bare.py PORT

A control message `{"type": "publish", "topic", "count", "rate", "payload_bytes"}` from any
socket makes it broadcast `count` events at `rate`/s to the subscribers of `topic` with
`websockets.broadcast` (writes each frame straight to every transport).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime

from websockets.asyncio.server import broadcast, serve

subscribers: dict[str, set] = {}


async def publish(topic: str, count: int, rate: float, payload_bytes: int) -> None:
    padding = "x" * payload_bytes
    started = time.perf_counter()
    for n in range(count):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        message = {
            "type": "event",
            "topic": topic,
            "seq": 0,
            "event": "bench.tick",
            "id": str(uuid.uuid4()),
            "entity_type": "bench",
            "entity_id": str(n),
            "data": {"n": n, "sent_at": time.time(), "padding": padding},
            "user_id": None,
            "correlation_id": None,
            "ts": datetime.now(UTC).isoformat(),
        }
        broadcast(subscribers.get(topic, set()), json.dumps(message))


async def handler(ws) -> None:
    mine: list[str] = []
    try:
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "subscribe":
                for topic in message["topics"]:
                    subscribers.setdefault(topic, set()).add(ws)
                    mine.append(topic)
                await ws.send(json.dumps({"type": "subscribed", "topics": message["topics"]}))
            elif message["type"] == "publish":
                asyncio.get_running_loop().create_task(
                    publish(
                        message["topic"],
                        message["count"],
                        message["rate"],
                        message.get("payload_bytes", 0),
                    )
                )
                await ws.send(json.dumps({"type": "publishing"}))
    finally:
        for topic in mine:
            subscribers.get(topic, set()).discard(ws)


async def main(port: int) -> None:
    # No permessage-deflate: our server does not compress either (and zlib state per socket
    # would triple the bare server's memory).
    async with serve(handler, "127.0.0.1", port, max_size=2**20, compression=None):
        print("ready", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
