"""The soak's report, printed."""

from __future__ import annotations




def print_report(r: dict) -> None:
    m, c = r["messages"], r["connections"]
    print(f"soak: {r['clients']} clients ({r['slow_readers']} slow) in {r['rooms']} rooms, "
          f"{r['seconds']:.0f} s of traffic, {r['duration_s']} s in all, seed {r['seed']}, "
          f"restarts {r['restarts']}")
    print(f"  messages: sent {m['sent']} (well-behaved {m['sent_well_behaved']}, bulk {m['sent_bulk']}), acked "
          f"{m['acked_well_behaved']} + {m['acked_slow']} slow, delivered {m['delivered']}, "
          f"window checks {m['window_checks']}, in flight at kill {m['in_flight_at_kill']}")
    print(f"  connections: {c['connects']} opened, slow readers closed {c['slow_reader_closes_seen']} "
          f"(server log 1008: {r['server_1008_closes']}), "
          f"close codes {c['close_codes']}, session ends {c['session_ends']}")
    for p in r["processes"]:
        print(f"  server pid {p['pid']}: RSS baseline {p['rss_baseline_kb']} KiB, peak "
              f"{p.get('rss_peak_kb')} KiB, after {p.get('rss_after_kb', '-')} KiB (anon "
              f"{p['anon_baseline_kb']} -> {p.get('anon_after_kb', '-')}), after malloc_trim "
              f"{p.get('rss_trimmed_kb', '-')} KiB (anon {p.get('anon_trimmed_kb', '-')}); fds baseline "
              f"{p['fds_baseline']}, peak {p.get('fds_peak')}, after {p.get('fds_after', '-')}; "
              f"{p.get('end')}")
    print(f"  phases (s since start): {r['phases_s']}; client loop lag {r['client_loop_lag']}")
    for name in ("after_restart", "audit"):
        if name in r:
            print(f"  history {name}: {r[name]}")
    for ch in r["checks"]:
        print(f"  [{'ok' if ch['ok'] else 'FAIL'}] {ch['name']}: {ch['value']}")
    for p in r["problems"][:20]:
        print(f"  problem: {p}")
    print("soak: PASS" if r["ok"] else "soak: FAIL")
