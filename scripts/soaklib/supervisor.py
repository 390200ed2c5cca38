"""The run: clients started and stopped, the kill -9 and restart, the resource checks."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from .config import default_server_template, free_port, raise_nofile
from .server import ServerProcess
from .model import Soak
from .client import Client
from .checks import check_history, check_losses, hello_histories, server_policy_closes, stored_histories

# -------------------------------------------------------------- supervisor

async def settle(server: ServerProcess, fd_target: int | None, timeout: float = 30.0) -> tuple[int, int]:
    """Waits (bounded) for the descriptors to drop to fd_target and VmRSS to
    stop moving; returns (rss_kb, fds)."""
    deadline = time.monotonic() + timeout
    while fd_target is not None and server.fds() > fd_target and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    prev, stable = -1, 0
    while stable < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        rss = server.rss_kb()
        stable = stable + 1 if abs(rss - prev) <= 64 else 0
        prev = rss
    return server.rss_kb(), server.fds()


async def loop_lag(out: dict) -> None:
    """How late the client process's event loop wakes up: a load generator
    that cannot keep up would show here, not as a server problem."""
    while True:
        t = time.monotonic()
        await asyncio.sleep(0.1)
        lag = time.monotonic() - t - 0.1
        out["max_ms"] = max(out.get("max_ms", 0), round(lag * 1000))
        out["samples"] = out.get("samples", 0) + 1
        out["over_100ms"] = out.get("over_100ms", 0) + (lag > 0.1)


class Sampler:
    """Peak RSS / descriptors of the current server process; notices a death we did not cause."""

    def __init__(self, server: ServerProcess) -> None:
        self.server, self.peak_rss, self.peak_fds, self.expect_exit, self.died = server, 0, 0, False, None

    async def run(self) -> None:
        while True:
            if self.server.alive():
                try:
                    self.peak_rss = max(self.peak_rss, self.server.rss_kb())
                    self.peak_fds = max(self.peak_fds, self.server.fds())
                except OSError:
                    pass
            elif not self.expect_exit and self.died is None:
                self.died = self.server.proc.returncode
            await asyncio.sleep(0.25)

    def reset(self) -> tuple[int, int]:
        peak = (self.peak_rss, self.peak_fds)
        self.peak_rss = self.peak_fds = 0
        return peak


async def run(a: argparse.Namespace) -> dict:
    raise_nofile(2 * a.clients + 1024)
    t_start = time.monotonic()
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix="chatws-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    history = workdir / "history.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{history}{suffix}").unlink(missing_ok=True)
    port = a.port or free_port()
    template = a.server or default_server_template()
    server = ServerProcess(template, port, history, a.history_size, workdir / "server")
    soak = Soak(a, port)
    st = soak.stats
    report: dict = dict(seed=a.seed, clients=a.clients, rooms=a.rooms + 1, seconds=a.seconds,
                        bulk_posters=a.bulk_posters, bulk_rate=a.bulk_rate, bulk_pad=a.bulk_pad,
                        slow_readers=round(a.clients * a.slow_fraction), server=template,
                        workdir=str(workdir), processes=[], restarts=0)

    phases: dict[str, float] = {}
    report["phases_s"] = phases

    def phase(name: str) -> None:
        phases[name] = round(time.monotonic() - t_start, 1)

    await server.start()
    rss0, fds0 = await settle(server, None)
    phase("started")
    proc_info = dict(pid=server.proc.pid, rss_baseline_kb=rss0, anon_baseline_kb=server.rss_kb("RssAnon"),
                     fds_baseline=fds0)
    report["processes"].append(proc_info)
    sampler = Sampler(server)
    sampler_task = asyncio.create_task(sampler.run())
    report["client_loop_lag"] = {}
    lag_task = asyncio.create_task(loop_lag(report["client_loop_lag"]))
    soak.server_up.set()

    picked = soak.rng.sample(range(a.clients), report["slow_readers"] + a.bulk_posters)
    kinds = {i: "slow" for i in picked[:report["slow_readers"]]}
    kinds.update({i: "bulk" for i in picked[report["slow_readers"]:]})
    ramp = min(5.0, a.seconds / 4)
    tasks = [asyncio.create_task(Client(soak, i, kinds.get(i, "well")).run(i * ramp / a.clients))
             for i in range(a.clients)]
    t_run = time.monotonic()
    if 0 < a.kill_at < 1:
        await asyncio.sleep(a.seconds * a.kill_at)
        soak.server_up.clear()
        soak.epoch += 1
        soak.proc_index += 1
        sampler.expect_exit = True
        server.kill9()
        proc_info["rss_peak_kb"], proc_info["fds_peak"] = sampler.reset()
        proc_info["end"] = "kill -9"
        report["restarts"] += 1
        await server.start()
        sampler.expect_exit = False
        rss0, fds0 = await settle(server, None, timeout=5)
        proc_info = dict(pid=server.proc.pid, rss_baseline_kb=rss0,
                         anon_baseline_kb=server.rss_kb("RssAnon"), fds_baseline=fds0)
        report["processes"].append(proc_info)
        phase("restarted")
        report["after_restart"] = check_history(soak, await hello_histories(soak, port), full=False)
        phase("restart checked")
        soak.server_up.set()
    await asyncio.sleep(max(0.0, a.seconds - (time.monotonic() - t_run)))
    soak.stop.set()
    soak.server_up.set()  # wake clients waiting for a server
    done, pending = await asyncio.wait(tasks, timeout=90)  # barriers take up to 30 s
    for t in pending:
        t.cancel()
    phase("clients done")
    report["clients_stuck"] = len(pending)
    report["client_errors"] = [repr(t.exception()) for t in done if t.exception()][:5]
    rss_after, fds_after = await settle(server, fds0)
    phase("settled")
    proc_info.update(rss_after_kb=rss_after, anon_after_kb=server.rss_kb("RssAnon"), fds_after=fds_after)
    if a.trim_probe and await asyncio.to_thread(server.malloc_trim):
        proc_info.update(rss_trimmed_kb=server.rss_kb(), anon_trimmed_kb=server.rss_kb("RssAnon"))
    proc_info["rss_peak_kb"], proc_info["fds_peak"] = sampler.reset()
    report["server_died"] = sampler.died
    sampler.expect_exit = True
    proc_info["end"] = f"SIGTERM, exit {await server.stop()}"
    sampler_task.cancel()
    lag_task.cancel()

    phase("stopped")
    stored = stored_histories(soak, history)
    report["audit"] = check_history(soak, stored, full=False)
    report["audit"]["rooms_over_history_size"] = sum(len(h) > a.history_size for h in stored.values())
    phase("audit")
    checked, losses, unacked, in_flight = check_losses(soak)
    policy = server_policy_closes(soak, server.logs)
    report["server_1008_closes"] = policy
    session_ends: dict[str, int] = {}
    for sess in soak.sessions:
        k = f"{'slow' if sess.slow else 'well'}:{sess.end}"
        session_ends[k] = session_ends.get(k, 0) + 1
    phase("checks")
    report.update(
        duration_s=round(time.monotonic() - t_start, 1),
        messages=dict(sent=st.sent, sent_well_behaved=st.sent_well, sent_bulk=st.sent_bulk, acked_well_behaved=st.acked_well,
                      acked_slow=st.acked_slow, delivered=st.delivered,
                      delivered_well_behaved=st.delivered_well, window_checks=checked,
                      in_flight_at_kill=in_flight),
        connections=dict(connects=st.connects, sessions=st.sessions, session_ends=session_ends,
                         slow_connect_failures=st.slow_connect_failures,
                         slow_reader_closes_seen=st.slow_closes,
                         close_codes=st.close_codes, presence_events=st.presence_events),
        problems=st.problems)
    last = report["processes"][-1]
    rss_limit = int(last["rss_baseline_kb"] * 1.10 + a.rss_allowance_mb * 1024)
    # Free memory glibc keeps in its arenas is reused by the next clients,
    # The engine trims its pool and the allocator when the last client leaves: judge raw VmRSS.
    rss_final = last["rss_after_kb"]
    rss_note = " malloc_trim" if "rss_trimmed_kb" in last else ""
    ar, au = report.get("after_restart", {}), report["audit"]
    checks = [
        ("losses", losses, losses == 0),
        ("unacknowledged (not at the kill)", unacked, unacked == 0),
        ("duplicates", st.duplicates, st.duplicates == 0),
        ("order violations", st.order_violations, st.order_violations == 0),
        ("gaps in a session", st.gaps, st.gaps == 0),
        ("id conflicts", st.id_conflicts, st.id_conflicts == 0),
        ("corrupted texts", st.corrupted, st.corrupted == 0),
        ("error frames", st.error_frames, st.error_frames == 0),
        ("unexpected closes", st.unexpected_closes, st.unexpected_closes == 0),
        ("leave barriers timed out", st.barrier_timeouts, st.barrier_timeouts == 0),
        ("connect failures of well-behaved clients (server up)", st.connect_failures_up, st.connect_failures_up == 0),
        ("clients stuck at the end", len(pending), not pending and not report["client_errors"]),
        ("messages acknowledged", st.acked_well, st.acked_well > 0),
        ("slow readers closed by the server (1008, its log)", policy and policy["slow"],
         not report["slow_readers"] or (policy["slow"] > 0 if policy else st.slow_closes > 0)),
        ("well-behaved closed as slow (1008)", policy and policy["well_behaved"] + policy["unknown"],
         not policy or policy["well_behaved"] + policy["unknown"] == 0),
        ("restart: missing acked/delivered", f"{ar.get('missing_acked')}/{ar.get('missing_delivered')}",
         a.kill_at <= 0 or a.kill_at >= 1 or (ar["missing_acked"] == 0 and ar["missing_delivered"] == 0
                                              and ar["holes"] == 0)),
        ("store: missing acked/delivered", f"{au['missing_acked']}/{au['missing_delivered']}",
         au["missing_acked"] == 0 and au["missing_delivered"] == 0),
        ("store: id holes", au["holes"], au["holes"] == 0),
        ("store: rooms with more than history_size messages", au["rooms_over_history_size"],
         au["rooms_over_history_size"] == 0),
        ("server died unexpectedly", report["server_died"], report["server_died"] is None),
        ("server exit after SIGTERM", last["end"], last["end"].endswith("exit 0")),
        (f"RSS after{rss_note} (KiB) <= limit", f"{rss_final} <= {rss_limit}", rss_final <= rss_limit),
        ("fds after == baseline", f"{last['fds_after']} == {last['fds_baseline']}",
         last["fds_after"] == last["fds_baseline"]),
    ]
    report["checks"] = [dict(name=n, value=v, ok=bool(ok)) for n, v, ok in checks]
    report["ok"] = all(ok for _, _, ok in checks)
    return report
