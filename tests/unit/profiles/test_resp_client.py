"""The cache's pipelined Redis client: replies in order under concurrency, error replies,
unknown scripts, cancellation, timeouts and dropped connections, AUTH/SELECT from the URL."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from chatpersona.profiles._resp import PipelinedRedis, RespError, pack

pytestmark = pytest.mark.integration


def run(fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(fn())  # type: ignore[arg-type]


def test_pack_is_resp() -> None:
    assert pack((b"SET", "k", 12)) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n"
    assert pack(("GET", "é")) == b"*2\r\n$3\r\nGET\r\n$2\r\n\xc3\xa9\r\n"


def test_url_parsing() -> None:
    c = PipelinedRedis("redis://bob:s%40cret@example.org:6380/3")
    assert (c.host, c.port, c.db, c.username, c.password) == (
        "example.org",
        6380,
        3,
        "bob",
        "s@cret",
    )
    u = PipelinedRedis("unix:///run/redis.sock?db=2")
    assert (u.path, u.db) == ("/run/redis.sock", 2)
    assert PipelinedRedis.supports("redis://x") and not PipelinedRedis.supports("rediss://x")
    with pytest.raises(ValueError):
        PipelinedRedis("rediss://example.org")


def test_concurrent_calls_get_their_own_replies(redis_url: str, redis_prefix: str) -> None:
    async def main() -> list[Any]:
        c = PipelinedRedis(redis_url)
        try:
            await asyncio.gather(
                *(c.execute("SET", f"{redis_prefix}k{i}", f"v{i}", "EX", 30) for i in range(200))
            )
            return list(
                await asyncio.gather(*(c.execute("GET", f"{redis_prefix}k{i}") for i in range(200)))
            )
        finally:
            await c.aclose()

    assert run(main) == [f"v{i}".encode() for i in range(200)]


def test_error_reply_raises_and_the_connection_stays_usable(
    redis_url: str, redis_prefix: str
) -> None:
    async def main() -> Any:
        c = PipelinedRedis(redis_url)
        try:
            await c.execute("SET", f"{redis_prefix}s", "text", "EX", 30)
            with pytest.raises(RespError, match="WRONGTYPE"):
                await c.execute("LPUSH", f"{redis_prefix}s", "x")
            return await c.execute("GET", f"{redis_prefix}s")
        finally:
            await c.aclose()

    assert run(main) == b"text"


def test_evalsha_loads_an_unknown_script(redis_url: str, redis_prefix: str) -> None:
    # A script text no server has seen (unique comment): EVALSHA fails, EVAL runs it.
    script = f"-- {uuid.uuid4().hex}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])"
    sha = hashlib.sha1(script.encode()).hexdigest()

    async def main() -> tuple[Any, Any]:
        c = PipelinedRedis(redis_url)
        try:
            first = await c.evalsha(sha, script, [f"{redis_prefix}n"], [5])
            second = await c.evalsha(sha, script, [f"{redis_prefix}n"], [2])  # now cached
            return first, second
        finally:
            await c.aclose()

    assert run(main) == (5, 7)


def test_a_cancelled_call_does_not_shift_later_replies(redis_url: str, redis_prefix: str) -> None:
    async def main() -> Any:
        c = PipelinedRedis(redis_url)
        try:
            await c.execute("SET", f"{redis_prefix}b", "mine", "EX", 30)
            task = asyncio.ensure_future(c.execute("ECHO", "cancelled"))
            await asyncio.sleep(0)  # the command is on the wire
            task.cancel()
            return await c.execute("GET", f"{redis_prefix}b")
        finally:
            await c.aclose()

    assert run(main) == b"mine"


def test_reconnects_after_the_server_drops_the_connection(redis_url: str) -> None:
    admin = redis.Redis.from_url(redis_url)

    async def main() -> Any:
        c = PipelinedRedis(redis_url)
        try:
            client_id = await c.execute("CLIENT", "ID")
            admin.client_kill_filter(_id=client_id)
            await asyncio.sleep(0.05)  # the loop sees the close
            return await c.execute("PING"), client_id, await c.execute("CLIENT", "ID")
        finally:
            await c.aclose()

    try:
        pong, before, after = run(main)
    finally:
        admin.close()
    assert pong in (b"PONG", "PONG") and after != before


async def _silent_server(received: list[bytes], reply: bytes | None) -> asyncio.Server:
    """A TCP server that records what it gets and answers ``reply`` per command (or never)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                received.append(data)
                if reply is not None:
                    writer.write(reply * data.count(b"*"))
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the test is shutting the server down
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_timeout_fails_pending_calls_and_closes_the_connection() -> None:
    async def main() -> None:
        received: list[bytes] = []
        server = await _silent_server(received, None)
        port = server.sockets[0].getsockname()[1]
        c = PipelinedRedis(f"redis://127.0.0.1:{port}/0", timeout=0.2)
        try:
            first = asyncio.ensure_future(c.execute("GET", "a"))
            await asyncio.sleep(0.05)
            second = asyncio.ensure_future(c.execute("GET", "b"))  # same connection
            with pytest.raises(TimeoutError):
                await first
            with pytest.raises(ConnectionError):
                await second
            assert c._proto is not None and c._proto.closed
        finally:
            await c.aclose()
            server.close()
            await server.wait_closed()

    run(main)


def test_auth_and_select_come_from_the_url() -> None:
    async def main() -> list[bytes]:
        received: list[bytes] = []
        server = await _silent_server(received, b"+OK\r\n")
        port = server.sockets[0].getsockname()[1]
        c = PipelinedRedis(f"redis://app:pw@127.0.0.1:{port}/4")
        try:
            assert await c.execute("PING") in (b"OK", "OK")
        finally:
            await c.aclose()
            server.close()
            await server.wait_closed()
        return received

    wire = b"".join(run(main))
    assert wire.startswith(pack(("AUTH", "app", "pw")) + pack(("SELECT", 4)))
    assert wire.endswith(pack(("PING",)))
