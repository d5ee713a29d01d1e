"""Per-topic sequence numbers, allocated inside the caller's transaction.

The upsert locks the topic's row until the transaction ends, so two writers to one topic
commit in sequence order. The statement is the same on PostgreSQL and SQLite (3.35+ for
RETURNING); only the placeholder differs.
"""

from __future__ import annotations

from tortoise.backends.base.client import BaseDBAsyncClient

_NEXT_SEQ = (
    "INSERT INTO topic_sequences (topic, last_seq) VALUES ({p}, 1) "
    "ON CONFLICT (topic) DO UPDATE SET last_seq = topic_sequences.last_seq + 1 "
    "RETURNING last_seq"
)


def _placeholder(conn: BaseDBAsyncClient) -> str:
    return "$1" if conn.capabilities.dialect == "postgres" else "?"


async def next_seq(conn: BaseDBAsyncClient, topic: str) -> int:
    rows = await conn.execute_query_dict(_NEXT_SEQ.format(p=_placeholder(conn)), [topic])
    return int(rows[0]["last_seq"])


async def last_seq(conn: BaseDBAsyncClient, topic: str) -> int:
    rows = await conn.execute_query_dict(
        f"SELECT last_seq FROM topic_sequences WHERE topic = {_placeholder(conn)}", [topic]
    )
    return int(rows[0]["last_seq"]) if rows else 0
