"""A TLS client relay for the Autobahn driver, which speaks only ws://:
accepts plain TCP on 127.0.0.1:LISTEN and forwards each connection over TLS
(OpenSSL through Python's ssl module, trusting the given CA file) to the
chatws server under test, byte for byte in both directions. Each side's end
of stream is passed on: the server's close_notify + FIN becomes the driver's
FIN, the driver's FIN becomes close_notify.

    python3 tls_relay.py --listen PORT --to HOST:PORT --cafile CERT.pem

Prints "listening" once ready; runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, half_close: bool) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        try:
            if half_close and writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()
        except (ConnectionError, RuntimeError, ssl.SSLError):
            pass


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--cafile", required=True)
    args = p.parse_args()
    host, port = args.to.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=args.cafile)
    ctx.check_hostname = False  # a self-signed test certificate for 127.0.0.1

    async def handle(plain_r: asyncio.StreamReader, plain_w: asyncio.StreamWriter) -> None:
        try:
            tls_r, tls_w = await asyncio.open_connection(host, int(port), ssl=ctx)
        except (OSError, ssl.SSLError):
            plain_w.close()
            return
        await asyncio.gather(pump(plain_r, tls_w, half_close=False), pump(tls_r, plain_w, half_close=True))
        for w in (plain_w, tls_w):
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", args.listen, limit=1 << 16)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
