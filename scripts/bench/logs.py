#!/usr/bin/env python3
"""Log pipeline benchmark: prints figures, asserts nothing.

One machine writes N lines (default 1,000,000) to stdout as fast as it can; prints
  * the ingest rate: lines per second from machine start until the last line is stored;
  * the time to read the last 50 lines of that log (median and max of 50 reads),
    which is what `lakefly logs -n 50` does first;
  * the daemon's RSS before and after, and its CPU time during ingest (and per line).

Usage: scripts/bench/logs.py [--lakeflyd target/release/lakeflyd] [--lines 1000000]
"""

import argparse
import statistics
import time

from daemon import Daemon
from procstat import cpu_seconds, rss_mb


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lakeflyd", default="target/release/lakeflyd")
    ap.add_argument("--lines", type=int, default=1_000_000)
    args = ap.parse_args()
    with Daemon(args.lakeflyd, "--log-lines-per-app", str(args.lines * 2)) as d:
        d.call("POST", "/v1/apps", {"name": "chatty"})
        rss_before, cpu_before = rss_mb(d.pid), cpu_seconds(d.pid)
        start = time.monotonic()
        d.call("POST", "/v1/apps/chatty/machines", {"command": f"seq 1 {args.lines}"})
        deadline = start + 600
        while True:
            last = d.call("GET", "/v1/apps/chatty/logs?limit=1")
            if last and last[0]["line"] == str(args.lines):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the last line was not stored within 600 s: {last}")
            time.sleep(0.02)
        took = time.monotonic() - start
        cpu = cpu_seconds(d.pid) - cpu_before
        rss_after = rss_mb(d.pid)

        reads = []
        for _ in range(50):
            t = time.monotonic()
            tail = d.call("GET", "/v1/apps/chatty/logs?limit=50")
            reads.append(time.monotonic() - t)
        if len(tail) != 50 or tail[-1]["line"] != str(args.lines):
            raise SystemExit(f"unexpected tail: {tail[-3:]}")

        print(f"{args.lines} lines from one machine, all stored in {took:.2f} s")
        print(f"  ingest rate                 {args.lines / took:,.0f} lines/s")
        print(f"  last 50 lines median / max  {statistics.median(reads) * 1000:.1f} / "
              f"{max(reads) * 1000:.1f} ms")
        print(f"  daemon RSS before / after   {rss_before:.1f} / {rss_after:.1f} MB")
        print(f"  daemon CPU during ingest    {cpu:.2f} s ({cpu / took * 100:.0f}% of one core)")
        print(f"  daemon CPU per line         {cpu / args.lines * 1e6:.2f} µs")


if __name__ == "__main__":
    main()
