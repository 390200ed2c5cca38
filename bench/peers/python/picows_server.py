"""picows peer for chatws's benchmarks (the fastest Python WebSocket server).

    python picows_server.py --mode echo|broadcast --port N [--max-message-size B]

picows hands over frames, not messages; the load generator sends each
message as one frame, so a frame is a message here.
"""
import asyncio
import signal

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

from peer_args import parse_args


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
            transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)


class Relay(WSListener):
    def __init__(self, transports: set) -> None:
        self.transports = transports

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transports.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.transports.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            payload = frame.get_payload_as_bytes()
            for t in self.transports:
                t.send(frame.msg_type, payload)


async def main() -> None:
    args = parse_args("picows_server.py")
    transports: set = set()
    factory = (lambda _req: Echo()) if args.mode == "echo" else (lambda _req: Relay(transports))
    server = await ws_create_server(
        factory, "127.0.0.1", args.port, max_frame_size=args.max_message_size, backlog=4096
    )
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    print(f"picows {args.mode} server on 127.0.0.1:{args.port}", flush=True)
    async with server:
        await stop


if __name__ == "__main__":
    asyncio.run(main())
