"""A slow network between the web tier and Redis: a TCP proxy that can add latency.

Bytes from the client (the gateway) wait `latency` seconds before they go on to Redis, so a
command takes that much longer end to end, as on a congested link. Set `latency` at any time;
the proxy runs its own asyncio loop in a daemon thread and stops with `close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from tests.reliability.stack import free_port, wait_until


class LatencyProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port, self.port, self.latency = upstream_port, free_port(), 0.0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="latency-proxy", daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> LatencyProxy:
        self._thread.start()
        wait_until(lambda: self._server is not None, timeout=10, what="latency proxy")
        return self

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._connect, "127.0.0.1", self.port)
        )
        self._loop.run_forever()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pipe(reader, up_writer, slowed=True),
            self._pipe(up_reader, writer, slowed=False),
            return_exceptions=True,
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, slowed: bool
    ) -> None:
        try:
            while data := await reader.read(65_536):
                if slowed and self.latency:
                    await asyncio.sleep(self.latency)
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()

    def close(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
