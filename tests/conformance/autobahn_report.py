#!/usr/bin/env python3
"""Check an Autobahn-format report (index.json, as written by kosoku).

    autobahn_report.py INDEX_JSON --expect N --allowed docs/conformance.md
    autobahn_report.py INDEX_JSON --informational   (print outcomes, never fail
                                                     except on FAILED)

A case passes when both its behaviour and its close behaviour are OK. A
NON-STRICT or INFORMATIONAL outcome passes only if the case is listed, with
that outcome and a reason, in the table of the --allowed Markdown file: a row
`| 7.1.6 | INFORMATIONAL | why ... |`. UNIMPLEMENTED passes only with
--informational (the compression groups). FAILED never passes. Fewer cases
than --expect fails too: a crash of the server or of the runner must not look
like a shorter, green run.

Prints the count per outcome and one line per case that is not OK; exits 1
on any failure.
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import sys

OUTCOMES = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
# One documented exception: case id, the outcome it is allowed, a reason.
_ROW = re.compile(r"^\|\s*(\d+(?:\.\d+)+)\s*\|\s*(NON-STRICT|INFORMATIONAL)\s*\|\s*(\S.*?)\s*\|\s*$")


def load_allowed(path: str) -> dict[str, str]:
    allowed: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = _ROW.match(line.strip())
            if m:
                allowed[m.group(1)] = m.group(2)
    return allowed


def case_key(case_id: str) -> list[int]:
    return [int(p) for p in case_id.split(".")]


def worst(a: str, b: str) -> str:
    """The worse of a behaviour and a close behaviour (FAILED is worst)."""
    rank = {o: i for i, o in enumerate(OUTCOMES)}
    return max(a, b, key=lambda o: rank.get(o, len(OUTCOMES)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("index")
    ap.add_argument("--expect", type=int, default=0, help="minimum number of cases")
    ap.add_argument("--allowed", help="Markdown file listing allowed non-OK cases")
    ap.add_argument("--informational", action="store_true",
                    help="only FAILED fails (for groups that are not implemented)")
    args = ap.parse_args()

    with open(args.index, encoding="utf-8") as f:
        index = json.load(f)
    cases = {cid: entry for agent in index.values() for cid, entry in agent.items()}
    allowed = load_allowed(args.allowed) if args.allowed else {}

    counts: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    notes: list[str] = []
    for cid in sorted(cases, key=case_key):
        entry = cases[cid]
        outcome = worst(entry["behavior"], entry["behaviorClose"])
        counts[outcome] += 1
        if outcome == "OK":
            continue
        line = (f"  {cid}: behavior={entry['behavior']} close={entry['behaviorClose']} "
                f"remoteCloseCode={entry.get('remoteCloseCode')}")
        if outcome == "FAILED":
            problems.append(line)
        elif args.informational:
            notes.append(line)
        elif allowed.get(cid) == outcome:
            notes.append(line + " (documented)")
        else:
            problems.append(line + " (not documented in " + str(args.allowed) + ")")

    summary = ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts[o])
    for line in notes:
        print(line)
    for line in problems:
        print(line, file=sys.stderr)
    short = len(cases) < args.expect
    if short:
        print(f"  only {len(cases)} cases in the report, expected {args.expect}", file=sys.stderr)
    print(f"{len(cases)} cases: {summary}")
    return 1 if problems or short else 0


if __name__ == "__main__":
    sys.exit(main())
