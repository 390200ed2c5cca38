"""Python `websockets` (asyncio implementation) peer for chatws's benchmarks.

    python websockets_server.py --mode echo|broadcast --port N [--max-message-size B]

No compression, no keepalive pings, as for every server in the comparison.
"""
import asyncio
import signal

from websockets.asyncio.server import broadcast, serve

from peer_args import parse_args


async def main() -> None:
    args = parse_args("websockets_server.py")
    connections = set()

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async def relay(ws):
        connections.add(ws)
        try:
            async for message in ws:
                broadcast(connections, message)
        finally:
            connections.discard(ws)

    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        echo if args.mode == "echo" else relay,
        "127.0.0.1",
        args.port,
        compression=None,
        ping_interval=None,
        max_size=args.max_message_size,
        backlog=4096,
    ):
        print(f"websockets {args.mode} server on 127.0.0.1:{args.port}", flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main())
