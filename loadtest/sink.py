"""A minimal SMPP sink: binds anyone, answers every submit_sm with ROK at once.

It is the "minimal loopback sink" of the ceiling benchmark: the least work an
SMSC can do (header-only parsing, one pre-built response per submit, one write
per read), so what the benchmark measures is the client. Run it in its own
process: ``python -m loadtest.sink --port 0`` prints ``LISTENING <port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import struct
import sys
from typing import cast

_HDR = struct.Struct(">IIII")
_SUBMIT_SM = 0x00000004
_RESP_BIT = 0x80000000
_MSG_ID = b"0123456789ABCDEF\x00"


class SinkProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.counter = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop: not a subclass

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        out: list[bytes] = []
        pos = 0
        n = len(buf)
        pack = _HDR.pack
        while n - pos >= 16:
            length, cid, _status, seq = _HDR.unpack_from(buf, pos)
            if length < 16 or length > 65536:
                assert self.transport is not None
                self.transport.abort()
                return
            if n - pos < length:
                break
            pos += length
            if cid == _SUBMIT_SM:
                out.append(pack(16 + len(_MSG_ID), cid | _RESP_BIT, 0, seq) + _MSG_ID)
            elif cid in (0x01, 0x02, 0x09):
                out.append(pack(16 + 5, cid | _RESP_BIT, 0, seq) + b"sink\x00")
            elif not cid & _RESP_BIT:
                out.append(pack(16, cid | _RESP_BIT, 0, seq))
                if cid == 0x06:
                    assert self.transport is not None
                    self.transport.write(b"".join(out))
                    self.transport.close()
                    return
        del buf[:pos]
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(SinkProtocol, host, port)
    print(f"LISTENING {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(0, 1024) else None)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
