#!/usr/bin/env python3
"""User-space instructions per message of chatws-bench-server, counted by
valgrind's callgrind: a figure that, unlike messages per second, does not
depend on what else the machine is doing.

The server runs under callgrind; chatws-loadgen drives it (echo or
broadcast); after a warm-up the counters are zeroed, and after the
measuring interval they are dumped. The result is the instructions executed
by the server process in that interval (its share of the loop, parsing,
encoding, queueing, flushing; not the kernel's) divided by the number of
calls of chatws_send (echo: one per echoed message) or of chatws_broadcast
times the receivers (broadcast: per delivery). Both counts come from the
same dump, so the interval need not line up with the generator's.

    python3 bench/instructions.py --build-dir build-bench            # echo, 32 B
    python3 bench/instructions.py --mode broadcast --connections 100
    python3 bench/instructions.py --tls        # over wss:// (OpenSSL's share included)
    python3 bench/instructions.py --metrics    # with a metrics listener (issue 17's overhead)
"""
import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from local_server import free_port, wait_ready

REPO = Path(__file__).resolve().parent.parent


def count(dump: Path, function: str) -> tuple[int, int]:
    """(total instructions, calls of `function`) in one callgrind dump."""
    names: dict[str, str] = {}
    total = calls = 0
    callee = None
    for line in dump.read_text(errors="replace").splitlines():
        # "fn=(id) name" / "fn=(id)" compressed (--keep writes "fn=name").
        m = re.match(r"(c?fn)=(?:\((\d+)\))? ?(.*)$", line)
        if m:
            kind, ident, name = m.groups()
            ident = ident or name
            if name:
                names[ident] = name
            if kind == "cfn":
                callee = names.get(ident)
            continue
        if line.startswith("calls=") and callee == function:
            calls += int(line.split()[0][len("calls="):])
        elif line.startswith(("summary:", "totals:")):
            total = int(line.split()[1])
    return total, calls


def by_object(dump: Path) -> dict[str, int]:
    """Instructions of each shared object (the program, libssl, libcrypto, libc)
    executed in its own code, from an uncompressed dump (--keep)."""
    cost: dict[str, int] = {}
    obj = "?"
    skip_next = False  # the line after calls= is the call's inclusive cost
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith("ob="):
            obj = line[3:].rsplit("/", 1)[-1]
        elif line.startswith("calls="):
            skip_next = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            if skip_next:
                skip_next = False
            elif len(parts := line.split()) >= 2:
                cost[obj] = cost.get(obj, 0) + int(parts[1])
    return cost


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build-dir", default=str(REPO / "build-bench"))
    p.add_argument("--mode", choices=["echo", "broadcast"], default="echo")
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before the counters are zeroed")
    p.add_argument("--measure", type=float, default=4.0, help="seconds counted")
    p.add_argument("--tls", action="store_true", help="wss:// (a self-signed certificate made for the run)")
    p.add_argument("--metrics", action="store_true",
                   help="with a metrics listener (/metrics on a free port, not scraped)")
    p.add_argument("--keep", metavar="FILE",
                   help="copy the interval's callgrind dump there, uncompressed (echo: also prints each "
                        "library's instructions per message)")
    args = p.parse_args()

    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        print("valgrind (with callgrind_control) is needed: apt-get install valgrind", file=sys.stderr)
        return 2
    bench = Path(args.build_dir) / "bench"
    server_exe, loadgen_exe = bench / "chatws-bench-server", bench / "chatws-loadgen"
    for exe in (server_exe, loadgen_exe):
        if not exe.exists():
            print(f"missing {exe}: build the bench targets (see BENCHMARKS.md)", file=sys.stderr)
            return 2

    function = "chatws_send" if args.mode == "echo" else "chatws_broadcast"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="chatws-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        tls = []
        if args.tls:
            cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
                           check=True, capture_output=True)
            tls = ["--tls-cert", str(cert), "--tls-key", str(key)]
        if args.metrics:
            tls += ["--metrics-port", str(free_port())]
        # A kept dump must name its functions itself (compressed names refer
        # to the earlier dumps, which go with the temporary directory).
        keep = ["--compress-strings=no", "--compress-pos=no"] if args.keep else []
        server = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *keep,
                                   str(server_exe), "--mode", args.mode, "--port", str(port), *tls],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        loadgen = None
        try:
            if not wait_ready(server, port, 60):  # valgrind starts slowly
                print("the server did not start under valgrind", file=sys.stderr)
                return 1
            total_s = args.warmup + args.measure + 2
            loadgen = subprocess.Popen([str(loadgen_exe), "--port", str(port), "--mode", args.mode,
                                        "--connections", str(args.connections), "--size", str(args.size),
                                        "--window", str(args.window), "--duration", str(total_s),
                                        "--warmup", "0"] + (["--tls"] if args.tls else []),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(args.warmup)  # the interval to skip, not a synchronisation
            subprocess.run(["callgrind_control", "-z", str(server.pid)], capture_output=True, check=True)
            time.sleep(args.measure)  # the interval measured
            subprocess.run(["callgrind_control", "-d", str(server.pid)], capture_output=True, check=True)
            loadgen.wait(timeout=total_s + 60)
        finally:
            if loadgen and loadgen.poll() is None:
                loadgen.kill()
            server.terminate()
            server.wait(timeout=60)
        dumps = sorted(Path(tmp).glob("callgrind.out.*"))
        if not dumps:
            print("callgrind wrote no interval dump", file=sys.stderr)
            return 1
        total, calls = count(dumps[0], function)
        objects = by_object(dumps[0]) if args.keep else {}
        if args.keep:
            shutil.copyfile(dumps[0], args.keep)
    if calls == 0:
        print(f"no call of {function} in the interval", file=sys.stderr)
        return 1
    per = total / calls
    if args.mode == "echo":
        print(f"echo {args.size} B{' over TLS' if args.tls else ''}, {args.connections} connections, window {args.window}: "
              f"{total:,} instructions / {calls:,} messages = {per:,.0f} per message")
        for obj, n in sorted(objects.items(), key=lambda kv: -kv[1]):
            print(f"  {obj}: {n / calls:,.0f} per message ({100 * n / max(1, sum(objects.values())):.1f}%)")
    else:
        deliveries = calls * args.connections
        print(f"broadcast {args.size} B to {args.connections} connections, window {args.window}: "
              f"{total:,} instructions / {calls:,} broadcasts = {per:,.0f} per broadcast, "
              f"{total / deliveries:,.1f} per delivery")
    return 0


if __name__ == "__main__":
    sys.exit(main())
