#!/usr/bin/env python3
"""Writes the seed corpora in corpus/<target>/ (run once; the files are kept
in the repository). Each seed starts with the control bytes its target reads
first (see the target's comment), then realistic input: the fuzzer mutates
from here. Crash inputs added later as regressions are never overwritten."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def masked(opcode, payload, fin=True, mask=b"\x37\xfa\x21\x3d", length=None):
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


UPGRADE = (b"GET /rooms/lobby?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\n"
           b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chatws.v1, json\r\n"
           b"Origin: http://127.0.0.1:8080\r\n\r\n")


def http():
    seed = struct.pack("<I", 12345)
    write("http_request", "upgrade", seed + b"\x00" + UPGRADE + masked(1, b"hi"))
    write("http_request", "pipelined", seed + b"\x00" +
          b"GET / HTTP/1.1\r\nHost: a\r\n\r\nHEAD /index.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    write("http_request", "bare-lf", seed + b"\x00" + b"GET / HTTP/1.1\nHost: a\r\n\r\n")
    write("http_request", "chunked", seed + b"\x00" +
          b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    write("http_request", "content-length", seed + b"\x00" +
          b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 00\r\n\r\n")
    write("http_request", "too-large", seed + b"\x04" + UPGRADE)
    write("http_request", "version", seed + b"\x00" + b"GET / HTTP/2.0\r\nHost: a\r\n\r\n")
    write("http_request", "bad-key", seed + b"\x00" +
          UPGRADE.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"short").replace(b"13\r\n", b"8\r\n"))


def frames():
    def seed(flags=0, max_size=0xFFFF, max_frag=0):
        return struct.pack("<IBHH", 777, flags, max_size, max_frag)

    write("frame_parser", "text", seed() + masked(1, b"Hello") + masked(2, bytes(range(200))))
    write("frame_parser", "fragments", seed() + masked(1, b"Hel", fin=False) +
          masked(9, b"ping") + masked(0, b"lo", fin=False) + masked(0, b" world") +
          masked(8, struct.pack(">H", 1000) + b"bye"))
    write("frame_parser", "huge-length", seed() + masked(2, b"", length=1 << 62)[:14])
    write("frame_parser", "utf8-split", seed() + masked(1, b"\xce", fin=False) +
          masked(0, b"\xba\xe1\xbd\xb9\xcf", fin=False) + masked(0, b"\x83\xce\xbc\xce\xb5"))
    write("frame_parser", "bad-utf8", seed() + masked(1, b"ok\xed\xa0\x80", fin=False) +
          masked(0, b"more"))
    write("frame_parser", "limits", seed(0, 64, 3) + masked(1, b"a", fin=False) +
          masked(0, b"b", fin=False) + masked(0, b"c", fin=False) + masked(0, b"d"))
    write("frame_parser", "too-big", seed(0, 100) + masked(2, bytes(300)))
    write("frame_parser", "unmasked-stop", seed(0b0101) + b"\x81\x02hi\x89\x00\x8a\x01x\x88\x00")
    write("frame_parser", "close-invalid", seed() + masked(8, struct.pack(">H", 5000)))
    write("frame_parser", "reserved", seed() + bytes([0xC1, 0x80]) + b"\0\0\0\0")


def utf8():
    seed = struct.pack("<I", 4242)
    write("utf8", "ascii", seed + b"Hello, world")
    write("utf8", "mixed", seed + "κόσμε ∀ 😀 \u2028 \U0010FFFF".encode())
    write("utf8", "surrogate", seed + b"ab\xed\xa0\x80cd")
    write("utf8", "overlong", seed + b"\xc0\xaf \xe0\x80\xaf \xf0\x80\x80\xaf")
    write("utf8", "too-high", seed + b"\xf4\x90\x80\x80 \xf5\x80")
    write("utf8", "truncated", seed + b"abc\xf0\x9f\x98")
    write("utf8", "long", seed + ("é" * 300 + "😀" * 100).encode())


def chat():
    def seed(flags):
        return struct.pack("<BII", flags, 41, 1764160000)

    write("chat_message", "classic", seed(0) + b'{"user": "ann", "text": "hi there"}')
    write("chat_message", "v1", seed(1) + b'{"type":"msg","user":"bob","text":"x\\n\\"y\\" \\u2028 <b>"}')
    write("chat_message", "v1-type", seed(1) + b'{"type":"typing","user":"bob","text":"x"}')
    write("chat_message", "escapes", seed(0) +
          b'{"user":"\\ud83d\\ude00","text":"\\u0000\\u001f\\u007f \\/ \\\\","extra":[1,{"a":null}]}')
    write("chat_message", "small-limits", seed(2 | (3 << 2) | (2 << 5)) +
          '{"user":"ünïcødé","text":"κόσμε κόσμε κόσμε"}'.encode())
    write("chat_message", "not-object", seed(0) + b'["user","text"]')
    write("chat_message", "bad-json", seed(1) + b'{"user":"a","text":')
    write("chat_message", "wrong-types", seed(0) + b'{"user":1,"text":"a"}')
    write("chat_message", "empty", seed(0) + b'{"user":"","text":"a"}')


def deflate_frames():
    import zlib

    def z(data, wbits=15):
        c = zlib.compressobj(wbits=-wbits)
        return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]

    def head(flags, limit16):
        return b"\x01\x02\x03\x04" + bytes([flags]) + struct.pack(">H", limit16)

    def rsv1(frame):
        return bytes([frame[0] | 0x40]) + frame[1:]

    hello = z(b"Hello, compressed world")
    write("deflate_frames", "text", head(7 << 1, 64) + rsv1(masked(1, hello)))
    write("deflate_frames", "fragmented", head(7 << 1, 64) + rsv1(masked(2, hello[:5], fin=False)) +
          masked(0, hello[5:]))
    write("deflate_frames", "bomb", head(7 << 1, 16) + rsv1(masked(2, z(bytes(1 << 20)))))
    write("deflate_frames", "garbage", head(0, 64) + rsv1(masked(1, b"\xff\xff\xff")))
    write("deflate_frames", "rsv1-continuation", head(0, 64) + rsv1(masked(1, hello[:3], fin=False)) +
          rsv1(masked(0, hello[3:])))
    write("deflate_frames", "context", head(1 | (7 << 1), 64) + rsv1(masked(1, hello)) + masked(1, b"plain"))
    write("deflate_frames", "roundtrip", head(0x10 | 1 | (2 << 1), 4096) + b"chat text " * 300)
    write("deflate_frames", "roundtrip-over", head(0x10 | (7 << 1), 1) + bytes(range(256)) * 4)


if __name__ == "__main__":
    http()
    frames()
    utf8()
    chat()
    deflate_frames()
