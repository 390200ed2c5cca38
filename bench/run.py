#!/usr/bin/env python3
"""Run chatws's benchmark comparison and write bench/results/<date>.{json,md,png}.

Every server runs pinned to CPU 0 and the load generator to CPU 1 (taskset),
so the figures compare what one core of server buys. Each (server, workload)
is measured --runs times; the report gives the median and the min-max.

    python3 bench/run.py                 # the full comparison, < 10 minutes
    python3 bench/run.py --quick         # smoke run, about a minute (CI)
    python3 bench/run.py --servers chatws,websocketpp --workloads echo-32
    python3 bench/run.py --workloads chat    # chat, history in memory vs SQLite (opt-in)

See BENCHMARKS.md for what each workload means and the targets.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from local_server import free_port, stop_server, wait_ready

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
SERVER_CPU, LOADGEN_CPU = "0", "1"
READY_TIMEOUT_S = 20.0  # a server must accept TCP connections within this
BUSY_LOADAVG = 1.5  # above this at the start, the report says the machine was busy
CPP_TARGETS = ["chatws-loadgen", "chatws-bench-server", "websocketpp-bench-server", "beast-bench-server"]

# name, loadgen mode and shape, the figure the target is stated in, and the target.
WORKLOADS = [
    dict(name="echo-32", mode="echo", connections=100, size=32, window=16,
         metric="msgs_per_server_cpu_s", target=5.0),
    dict(name="echo-4096", mode="echo", connections=100, size=4096, window=16,
         metric="msgs_per_server_cpu_s", target=3.3),
    dict(name="broadcast-1000", mode="broadcast", connections=1000, size=64, window=16,
         publishers=1, metric="deliveries_per_s", target=9.0),
    dict(name="broadcast-100", mode="broadcast", connections=100, size=64, window=16,
         publishers=1, metric="deliveries_per_s", target=6.0),
    dict(name="idle-10000", mode="idle", connections=10000, size=32, window=1,
         metric="rss_bytes_per_conn", target_max=200.0),
]
QUICK_CONNECTIONS = {"idle-10000": 1000}
# Opt-in (--workloads chat, or their names): the built-in chat's broadcast
# with history in memory against history in a SQLite file, both chatws; the
# in-memory server is the baseline of the ratio.
CHAT_WORKLOADS = [
    dict(name=f"chat-100-{p}pub", mode="broadcast", chat=True, connections=100, size=64, window=16,
         publishers=p, metric="deliveries_per_s", baseline="chatws-mem",
         servers=["chatws-mem", "chatws-sqlite"])
    for p in (1, 10)
]
CHAT_HISTORY_FILE = Path("/tmp/chatws-bench-history.db")
# Opt-in (--workloads tls, or their names): the same shapes over wss://, with
# chatws over plain ws:// in the same run ("chatws-plain") and a TLS peer
# (Node ws over Node's https server). Targets: chatws TLS keeps >= `vs_plain`
# of chatws plain per server-CPU-second, and is >= `target`x the TLS peer.
TLS_PEER = "node-ws"
TLS_WORKLOADS = [
    dict(name="tls-echo-32", mode="echo", tls=True, connections=100, size=32, window=16,
         metric="msgs_per_server_cpu_s", target=3.0, vs_plain=0.8, baseline=TLS_PEER,
         servers=["chatws", "chatws-plain", TLS_PEER]),
    dict(name="tls-echo-4096", mode="echo", tls=True, connections=100, size=4096, window=16,
         metric="msgs_per_server_cpu_s", baseline=TLS_PEER, servers=["chatws", "chatws-plain", TLS_PEER]),
    dict(name="tls-broadcast-1000", mode="broadcast", tls=True, connections=1000, size=64, window=16,
         publishers=1, metric="deliveries_per_server_cpu_s", target=3.0, vs_plain=0.6, baseline=TLS_PEER,
         servers=["chatws", "chatws-plain", TLS_PEER]),
    dict(name="tls-idle-10000", mode="idle", tls=True, connections=10000, size=32, window=1,
         metric="rss_bytes_per_conn", target_max=8192.0, servers=["chatws", "chatws-plain", TLS_PEER]),
]
QUICK_CONNECTIONS["tls-idle-10000"] = 1000
TLS_DIR = Path("/tmp/chatws-bench-tls")
# Opt-in (--workloads metrics, or their names): what the metrics listener
# costs. "chatws" has none, "chatws-metrics" has one that nobody reads,
# "chatws-scraped" has one that this script scrapes every SCRAPE_INTERVAL_S
# during the run. Targets (issue 17): within 2% of chatws in the workload's
# figure, and the scraped server's p99 within 5% of chatws's.
METRICS_SERVERS = ["chatws", "chatws-metrics", "chatws-scraped"]
SCRAPE_INTERVAL_S = 1.0
METRICS_WORKLOADS = [
    dict(name="metrics-echo-32", mode="echo", metrics=True, connections=100, size=32, window=16,
         metric="msgs_per_server_cpu_s", baseline="chatws", servers=METRICS_SERVERS),
    dict(name="metrics-broadcast-1000", mode="broadcast", metrics=True, connections=1000, size=64,
         window=16, publishers=1, metric="deliveries_per_s", baseline="chatws", servers=METRICS_SERVERS),
]
BASELINE = "websocketpp"
# Python servers (echo only): the chatws package against the Python libraries.
PYTHON_SERVERS = {"py-chatws": "chatws", "py-websockets": "websockets", "py-picows": "picows"}


def log(msg: str) -> None:
    print(f"[run] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ servers

def tls_files() -> list[str]:
    """--tls-cert/--tls-key of a self-signed P-256 certificate made once per run."""
    cert, key = TLS_DIR / "cert.pem", TLS_DIR / "key.pem"
    if not cert.exists():
        TLS_DIR.mkdir(exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost"],
                       check=True, capture_output=True)
    return ["--tls-cert", str(cert), "--tls-key", str(key)]


def server_command(name: str, mode: str, port: int, build: Path, tls: bool = False) -> list[str] | None:
    """The command line of server `name`, or None if it is not available here."""
    peers = BENCH / "peers"
    common = ["--mode", mode, "--port", str(port)]
    if name == "chatws-plain":  # the plain server beside the TLS rows
        name, tls = "chatws", False
    if name in ("chatws-metrics", "chatws-scraped"):
        base = server_command("chatws", mode, port, build, tls)
        return None if base is None else [*base, "--metrics-port", str(free_port())]
    if tls:
        if name not in ("chatws", TLS_PEER):
            raise ValueError(f"{name} has no TLS variant")
        common += tls_files()
    if name == "chatws":
        exe = build / "bench" / "chatws-bench-server"
        return [str(exe), *common] if exe.exists() else None
    if name in ("chatws-mem", "chatws-sqlite"):
        exe = build / "bench" / "chatws-bench-server"
        history = ["--history", str(CHAT_HISTORY_FILE)] if name == "chatws-sqlite" else []
        return [str(exe), "--mode", "chat", "--port", str(port), *history] if exe.exists() else None
    if name in ("websocketpp", "beast"):
        exe = build / "bench" / f"{name}-bench-server"
        return [str(exe), *common] if exe.exists() else None
    if name == "node-ws":
        node_dir = peers / "node"
        if not shutil.which("node") or not (node_dir / "node_modules" / "ws").exists():
            return None
        return ["node", str(node_dir / "server.js"), *common]
    if name in PYTHON_SERVERS:
        module = PYTHON_SERVERS[name]
        script = peers / "python" / f"{module}_server.py"
        probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
        return [sys.executable, str(script), *common] if probe.returncode == 0 else None
    raise ValueError(name)


def raise_nofile() -> None:
    """In the child before exec: one descriptor per connection plus some."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Server:
    """One server process pinned to SERVER_CPU; always stopped by stop()."""

    def __init__(self, cmd: list[str], port: int, logfile: Path, pin: bool):
        self.port = port
        self.log = open(logfile, "ab")
        full = (["taskset", "-c", SERVER_CPU] if pin else []) + cmd
        self.proc = subprocess.Popen(full, stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=raise_nofile, cwd=cmd_dir(cmd))

    @property
    def pid(self) -> int:
        return self.proc.pid  # taskset execs the server: same pid

    def stop(self) -> None:
        stop_server(self.proc)
        self.log.close()


def cmd_dir(cmd: list[str]) -> str:
    # The Python peers import their sibling peer_args module.
    for part in cmd:
        if part.endswith(".py"):
            return str(Path(part).parent)
    return str(BENCH)


class Scraper:
    """GET /metrics every SCRAPE_INTERVAL_S from a thread, as Prometheus would,
    until stop(); counts the scrapes that got a 200 and those that did not."""

    def __init__(self, cmd: list[str]):
        import threading
        self.port = int(cmd[cmd.index("--metrics-port") + 1])
        self.ok = self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import urllib.request
        url = f"http://127.0.0.1:{self.port}/metrics"
        while not self._stop.wait(SCRAPE_INTERVAL_S):
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    r.read()
                    self.ok += r.status == 200
                    self.failed += r.status != 200
            except OSError:
                self.failed += 1

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(timeout=10)
        return {"scrapes_ok": self.ok, "scrapes_failed": self.failed}


# ------------------------------------------------------------------ running

def run_loadgen(loadgen: Path, wl: dict, port: int, pid: int, duration: float, warmup: float,
                pin: bool, label: str, batch_writes: bool = False, tls: bool = False,
                threads: int = 1) -> dict:
    cmd = (["taskset", "-c", LOADGEN_CPU] if pin else []) + [
        str(loadgen), "--port", str(port), "--mode", wl["mode"],
        "--connections", str(wl["connections"]), "--size", str(wl["size"]),
        "--window", str(wl["window"]), "--publishers", str(wl.get("publishers", 1)),
        "--duration", str(duration), "--warmup", str(warmup),
        "--server-pid", str(pid), "--json", "--label", label,
    ] + (["--chat"] if wl.get("chat") else []) + (["--batch-writes"] if batch_writes else []) \
      + (["--tls"] if tls else []) + (["--threads", str(threads)] if threads > 1 else [])
    limit = duration + warmup + 120  # connect + drain + close are bounded inside the loadgen
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"error": "loadgen timed out"}
    lines = out.stdout.strip().splitlines()
    human = lines[0] if lines else ""
    log(f"  {human}")
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": f"no JSON from loadgen (rc={out.returncode}): {out.stderr.strip()[:300]}"}
    if out.returncode != 0:
        result["error"] = result.get("warning") or f"loadgen exit {out.returncode}"
    result["loadavg_1m"] = os.getloadavg()[0]
    return result


def summarize(runs: list[dict], metric: str) -> dict:
    good = [r for r in runs if "error" not in r and r.get(metric) is not None]
    out: dict = {"runs": len(runs), "ok_runs": len(good)}
    if not good:
        out["error"] = next((r["error"] for r in runs if "error" in r), "no successful run")
        return out
    keys = ["msgs_per_s", "deliveries_per_s", "p50_us", "p99_us", "server_cpu_s",
            "server_cpu_pct", "msgs_per_server_cpu_s", "deliveries_per_server_cpu_s", "server_rss_kb",
            "rss_bytes_per_conn", "loadgen_cpu_pct", "loadavg_1m"]
    for k in keys:
        vals = [r[k] for r in good if r.get(k) is not None]
        if vals:
            out[k] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
    warnings = sorted({r["warning"] for r in good if r.get("warning")})
    if warnings:
        out["warnings"] = warnings
    return out


def run_all(args, build: Path, results_dir: Path) -> dict:
    loadgen = build / "bench" / "chatws-loadgen"
    pin = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    if not pin:
        log("fewer than 2 CPUs or no taskset: running unpinned")
    elif args.loadgen_threads > 1:
        # Scaling runs: the generator's threads and the server's loops share
        # every core, as on a machine with one service.
        pin = False
        log(f"load generator on {args.loadgen_threads} threads: server and generator unpinned")
    duration, warmup, runs = (1.0, 0.5, 1) if args.quick else (args.duration, args.warmup, args.runs)
    servers = args.servers.split(",")
    wanted = set(args.workloads.split(",")) if args.workloads else None
    logfile = results_dir / "servers.log"
    report: dict = {"workloads": {}}
    chat_wanted = bool(wanted) and "chat" in wanted
    tls_wanted = bool(wanted) and "tls" in wanted
    metrics_wanted = bool(wanted) and "metrics" in wanted
    for wl in WORKLOADS + CHAT_WORKLOADS + TLS_WORKLOADS + METRICS_WORKLOADS:
        if wl.get("chat") and not (chat_wanted or (wanted and wl["name"] in wanted)):
            continue
        if wl.get("tls") and not (tls_wanted or (wanted and wl["name"] in wanted)):
            continue
        if wl.get("metrics") and not (metrics_wanted or (wanted and wl["name"] in wanted)):
            continue
        opt_in = wl.get("chat") or wl.get("tls") or wl.get("metrics")
        if not opt_in and wanted and wl["name"] not in wanted:
            continue
        wl = dict(wl)
        if args.quick:
            wl["connections"] = QUICK_CONNECTIONS.get(wl["name"], wl["connections"])
        names = wl.get("servers", servers)
        if wl["mode"] == "idle" and not args.idle_peers:
            names = [s for s in names if s.startswith("chatws")]
        if wl["mode"] != "echo":
            # The Python peers are there for the echo comparison of the Python package.
            names = [s for s in names if not s.startswith("py-")]
        entry = {"spec": wl, "servers": {}}
        available = []
        for name in names:
            tls = bool(wl.get("tls")) and name != "chatws-plain"
            if server_command(name, "echo", 1, build, tls) is None:
                log(f"{wl['name']}: {name} not available, skipped")
                entry["servers"][name] = {"error": "not available"}
            else:
                available.append(name)
        if args.interleave:
            # Round-robin: run i of every server before run i+1 of any, each on
            # a fresh server, so that a machine's drift (other load, thermal)
            # spreads over all of them instead of biasing the one measured last.
            results = {name: [] for name in available}
            for i in range(runs):
                for name in available:
                    log(f"{wl['name']}: {name} (run {i + 1}/{runs})")
                    results[name] += measure(name, wl, 1, build, loadgen, logfile, pin,
                                             duration, warmup, args)
        else:
            results = {}
            for name in available:
                log(f"{wl['name']}: {name}")
                results[name] = measure(name, wl, runs, build, loadgen, logfile, pin,
                                        duration, warmup, args)
        for name in available:
            summary = summarize(results[name], wl["metric"])
            summary["raw"] = results[name]
            entry["servers"][name] = summary
        report["workloads"][wl["name"]] = entry
    report["settings"] = {"duration_s": duration, "warmup_s": warmup, "runs": runs,
                          "pinned": pin, "quick": args.quick, "batch_writes": args.batch_writes,
                          "interleave": args.interleave, "loadgen_threads": args.loadgen_threads}
    return report


def measure(name: str, wl: dict, runs: int, build: Path, loadgen: Path, logfile: Path, pin: bool,
            duration: float, warmup: float, args) -> list[dict]:
    """`runs` load-generator runs against server `name`: one server for all of
    them, except a fresh one for every idle run (its RSS baseline) and chat run
    (an empty history file)."""
    tls = bool(wl.get("tls")) and name != "chatws-plain"
    server_mode = "echo" if wl["mode"] in ("echo", "idle") else "broadcast"
    results: list[dict] = []
    server = None
    try:
        for _ in range(runs):
            if server is None or wl["mode"] == "idle" or wl.get("chat"):
                if server:
                    server.stop()
                if wl.get("chat"):
                    for suffix in ("", "-wal", "-shm"):
                        Path(str(CHAT_HISTORY_FILE) + suffix).unlink(missing_ok=True)
                port = free_port()
                cmd = server_command(name, server_mode, port, build, tls)
                server = Server(cmd, port, logfile, pin)
                if not wait_ready(server.proc, port, READY_TIMEOUT_S):
                    results.append({"error": "server did not become ready"})
                    break
            scraper = Scraper(cmd) if name == "chatws-scraped" else None
            results.append(run_loadgen(loadgen, wl, server.port, server.pid, duration,
                                       warmup, pin, name, args.batch_writes, tls,
                                       args.loadgen_threads))
            if scraper:
                results[-1].update(scraper.stop())
    finally:
        if server:
            server.stop()
    return results


# ------------------------------------------------------------------ output

def machine_info() -> dict:
    model = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next((l.split(":", 1)[1].strip() for l in out.splitlines()
                      if l.startswith("Model name")), "")
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "python": platform.python_version(), "loadavg_at_start": os.getloadavg(),
            "ktls": ktls_available()}


def ktls_available() -> str:
    """Whether this kernel has kernel TLS: the "tls" upper-layer protocol can
    be set on a connected TCP socket ("yes", or why not)."""
    tcp_ulp = 31  # TCP_ULP, linux/tcp.h
    with socket.socket() as lst, socket.socket() as cli:
        lst.bind(("127.0.0.1", 0))
        lst.listen(1)
        cli.connect(lst.getsockname())
        try:
            cli.setsockopt(socket.IPPROTO_TCP, tcp_ulp, b"tls")
            return "yes"
        except OSError as e:
            return f"no ({e.strerror})"


def cpu_metric(spec: dict) -> str:
    """The per-server-CPU-second figure of a workload (robust to a busy machine)."""
    return "msgs_per_server_cpu_s" if spec["mode"] == "echo" else "deliveries_per_server_cpu_s"


def ratio(report: dict, wl_name: str, server: str, metric: str | None = None,
          baseline: str | None = None) -> float | None:
    entry = report["workloads"].get(wl_name)
    if not entry:
        return None
    metric = metric or entry["spec"]["metric"]
    baseline = baseline or entry["spec"].get("baseline", BASELINE)
    mine = entry["servers"].get(server, {}).get(metric, {}).get("median")
    base = entry["servers"].get(baseline, {}).get(metric, {}).get("median")
    if mine is None or not base:
        return None
    return mine / base


def fmt(v: dict | None, digits: int = 0) -> str:
    if not v:
        return "-"
    m, lo, hi = v["median"], v["min"], v["max"]
    if lo == hi:
        return f"{m:,.{digits}f}"
    return f"{m:,.{digits}f} ({lo:,.{digits}f}-{hi:,.{digits}f})"


def write_markdown(report: dict, path: Path) -> None:
    m = report["machine"]
    s = report["settings"]
    lines = [f"# chatws benchmark results, {report['date']}", "",
             f"Machine: {m['nproc']} CPUs, {m['cpu_model']}, Linux {m['kernel']} (kernel TLS: {m.get('ktls', '?')}); "
             f"load average at start {m['loadavg_at_start'][0]:.2f}.",
             f"Server pinned to CPU {SERVER_CPU}, load generator to CPU {LOADGEN_CPU}: "
             f"{'yes' if s['pinned'] else 'no'}. {s['runs']} run(s) of {s['duration_s']} s "
             f"measured after {s['warmup_s']} s warm-up; median (min-max)."
             + (" Load generator with --batch-writes (replies once per epoll batch)."
                if s.get("batch_writes") else ""), ""]
    if m["loadavg_at_start"][0] > BUSY_LOADAVG:
        lines += [f"**Warning: the machine was busy (load average {m['loadavg_at_start'][0]:.1f} on "
                  f"{m['nproc']} CPUs): servers and load generator shared their cores with other work, "
                  "so rates and latencies are low and noisy; the per-server-CPU-second figures are the "
                  "meaningful ones.**", ""]
    for name, entry in report["workloads"].items():
        spec = entry["spec"]
        lines.append(f"## {name}")
        lines.append("")
        if spec["mode"] == "idle":
            lines.append(f"{spec['connections']} idle connections{' (chatws over wss://)' if spec.get('tls') else ''}; "
                         f"server RSS growth per connection"
                         + (f"; target <= {spec['target_max']:.0f}" if "target_max" in spec else "") + ".")
            lines += ["", "| server | bytes/conn | server RSS kB |", "|---|---|---|"]
            for srv, r in entry["servers"].items():
                if "error" in r:
                    lines.append(f"| {srv} | {r['error']} | |")
                    continue
                lines.append(f"| {srv} | {fmt(r.get('rss_bytes_per_conn'))} | {fmt(r.get('server_rss_kb'))} |")
            lines.append("")
            continue
        shape = f"{spec['connections']} connections, {spec['size']} B, window {spec['window']}"
        if spec["mode"] == "broadcast":
            shape += f", {spec['publishers']} publisher"
        baseline = spec.get("baseline", BASELINE)
        if "target" in spec:
            target = f"target: chatws >= {spec['target']}x {baseline} in {spec['metric']}"
        else:
            target = f"no target; ratios against {baseline}"
        mode = "chat broadcast" if spec.get("chat") else spec["mode"] + (" over wss://" if spec.get("tls") else "")
        lines += [f"{mode}: {shape}; {target}.", "",
                  "| server | msgs/s | deliveries/s | msgs/server-CPU-s | deliveries/server-CPU-s "
                  f"| p50 us | p99 us | server CPU % | loadgen CPU % | {spec['metric']} vs {baseline} "
                  f"| per-CPU vs {baseline} |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for srv, r in entry["servers"].items():
            if "error" in r:
                lines.append(f"| {srv} | {r['error']} | | | | | | | | | |")
                continue
            rt = ratio(report, name, srv)
            rc = ratio(report, name, srv, cpu_metric(spec))
            lines.append(
                f"| {srv} | {fmt(r.get('msgs_per_s'))} | {fmt(r.get('deliveries_per_s'))} "
                f"| {fmt(r.get('msgs_per_server_cpu_s'))} | {fmt(r.get('deliveries_per_server_cpu_s'))} "
                f"| {fmt(r.get('p50_us'))} | {fmt(r.get('p99_us'))} | {fmt(r.get('server_cpu_pct'))} "
                f"| {fmt(r.get('loadgen_cpu_pct'))} | {'-' if rt is None else f'{rt:.2f}x'} "
                f"| {'-' if rc is None else f'{rc:.2f}x'} |")
        if spec.get("tls"):
            tp = ratio(report, name, "chatws", cpu_metric(spec), baseline="chatws-plain")
            lines += ["", f"chatws over wss:// against chatws over ws:// (per server-CPU-second): "
                          f"{'-' if tp is None else f'{tp:.2f}x'}"
                          + (f" (target >= {spec['vs_plain']})" if "vs_plain" in spec else "") + "."]
        if spec.get("metrics"):
            p99 = ratio(report, name, "chatws-scraped", "p99_us", baseline="chatws")
            scrapes = [(r.get("scrapes_ok", 0), r.get("scrapes_failed", 0))
                       for r in entry["servers"].get("chatws-scraped", {}).get("raw", [])]
            lines += ["", f"p99 of chatws-scraped against chatws: {'-' if p99 is None else f'{p99:.2f}x'} "
                          f"(target <= 1.05); {spec['metric']} target: chatws-metrics and chatws-scraped "
                          f"within 2% of chatws. Scrapes per run (ok, failed): {scrapes}."]
        warns = [f"{srv}: {w}" for srv, r in entry["servers"].items() for w in r.get("warnings", [])]
        if warns:
            lines += [""] + [f"- warning: {w}" for w in warns]
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


def ensure_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        pass
    # Installed only into a virtual environment (as scripts/bootstrap.sh does):
    # never into the system's interpreter behind the user's back.
    if sys.prefix == sys.base_prefix:
        log("matplotlib missing: no plot (pip install matplotlib, or run from a venv)")
        return False
    log("matplotlib missing: pip install matplotlib (into this venv)")
    rc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"]).returncode
    return rc == 0


def write_plot(report: dict, path: Path) -> None:
    if not ensure_matplotlib():
        log("no matplotlib: plot skipped")
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = list(report["workloads"].items())
    fig, axes = plt.subplots(1, len(entries), figsize=(4.2 * len(entries), 4.2), squeeze=False)
    for ax, (name, entry) in zip(axes[0], entries):
        metric = entry["spec"]["metric"]
        names, meds, lows, highs = [], [], [], []
        for srv, r in entry["servers"].items():
            v = r.get(metric)
            if not v:
                continue
            names.append(srv)
            meds.append(v["median"])
            lows.append(v["median"] - v["min"])
            highs.append(v["max"] - v["median"])
        colors = ["#d62728" if n == "chatws" else "#f08080" if n == "py-chatws" else "#7f7f7f"
                  for n in names]
        ax.bar(names, meds, yerr=[lows, highs], color=colors, capsize=3)
        if "target_max" in entry["spec"]:
            ax.axhline(entry["spec"]["target_max"], color="black", linestyle="--", linewidth=1,
                       label=f"target <= {entry['spec']['target_max']:.0f}")
            ax.legend(loc="upper right", fontsize=8)
        ax.set_title(name)
        ax.set_ylabel(metric.replace("_", " ") + (" (lower is better)" if metric.startswith("rss") else ""))
        ax.tick_params(axis="x", rotation=35)
    fig.suptitle(f"chatws vs peers, server on 1 core ({report['date']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------ setup

def ensure_built(build: Path) -> None:
    missing = [t for t in CPP_TARGETS if not (build / "bench" / t).exists()]
    if not missing:
        return
    log(f"building {', '.join(missing)} in {build}")
    if not (build / "CMakeCache.txt").exists():  # an existing tree keeps its settings
        subprocess.run(["cmake", "-S", str(REPO), "-B", str(build), "-G", "Ninja",
                        "-DCMAKE_BUILD_TYPE=Release", "-DCHATWS_TESTS=OFF", "-DCHATWS_EXAMPLES=OFF"],
                       check=True, stdout=subprocess.DEVNULL)
    for t in missing:
        # A peer whose library is not installed has no target: not an error.
        subprocess.run(["cmake", "--build", str(build), "-j2", "--target", t])


def ensure_node_deps() -> None:
    node_dir = BENCH / "peers" / "node"
    if (node_dir / "node_modules" / "ws").exists() or not shutil.which("npm"):
        return
    log("npm ci for the node ws peer")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=node_dir,
                   stdout=subprocess.DEVNULL)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build-dir", default=os.environ.get("CHATWS_BENCH_BUILD", str(REPO / "build-bench")))
    p.add_argument("--servers", default="chatws,websocketpp,beast,node-ws," + ",".join(PYTHON_SERVERS))
    p.add_argument("--workloads", default="",
                   help="comma-separated names (default: all but the chat and TLS ones); "
                        "'chat' selects the chat workloads (history in memory vs SQLite), "
                        "'tls' the wss:// ones (chatws TLS, chatws plain and the TLS peer), "
                        "'metrics' the metrics listener's overhead (none, unread, scraped every second)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--quick", action="store_true", help="1 short run each, 1000 idle connections")
    p.add_argument("--idle-peers", action="store_true", help="measure the peers' idle RSS too")
    p.add_argument("--out", default=str(BENCH / "results"))
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--interleave", action="store_true",
                   help="run a workload's servers round-robin, a fresh server per run "
                        "(A/B comparisons on a noisy machine)")
    p.add_argument("--loadgen-threads", type=int, default=1, metavar="N",
                   help="load generator on N threads (shards of the connections); with N > 1 "
                        "nothing is pinned (scaling runs; see BENCHMARKS.md)")
    p.add_argument("--batch-writes", action="store_true",
                   help="load generator writes replies once per epoll batch (see BENCHMARKS.md)")
    args = p.parse_args()

    build = Path(args.build_dir).resolve()
    results_dir = Path(args.out)
    results_dir.mkdir(parents=True, exist_ok=True)
    if not args.no_build:
        ensure_built(build)
    if not (build / "bench" / "chatws-loadgen").exists():
        log(f"no chatws-loadgen in {build}/bench")
        return 2
    if "node-ws" in args.servers or "tls" in args.workloads:
        ensure_node_deps()

    started = time.monotonic()
    report = {"date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "machine": machine_info()}
    report.update(run_all(args, build, results_dir))
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M") + ("-quick" if args.quick else "")
    (results_dir / f"{stamp}.json").write_text(json.dumps(report, indent=1) + "\n")
    write_markdown(report, results_dir / f"{stamp}.md")
    write_plot(report, results_dir / f"{stamp}.png")
    log(f"wrote {results_dir}/{stamp}.json, .md, .png in {report['elapsed_s']} s")
    failed = [f"{w}/{s}" for w, e in report["workloads"].items() for s, r in e["servers"].items()
              if "error" in r and r["error"] != "not available"]
    if failed:
        log(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
