#!/usr/bin/env python3
"""Event stream benchmark: prints figures, asserts nothing.

N subscribers (default 1,000) follow /v1/events on loopback while events are produced;
prints the delivery latency from the producing request to receipt (median, p99, max),
the daemon's RSS before and after, and its CPU time during the run.

Usage: scripts/bench/events.py [--lakeflyd target/release/lakeflyd] [--subscribers 1000] [--events 200]
"""

import argparse
import asyncio
import json
import resource
import statistics
import time
import urllib.request

from daemon import Daemon
from procstat import cpu_seconds, rss_mb


async def subscriber(host, port, sent, latencies, ready, expected):
    reader, writer = await asyncio.open_connection(host, port)
    # HTTP/1.0: the body is not chunked, so every `data:` line arrives whole.
    writer.write(b"GET /v1/events?kind=app. HTTP/1.0\r\nHost: bench\r\n\r\n")
    await writer.drain()
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    ready.append(1)
    got = 0
    while got < expected:
        line = await reader.readline()
        if not line:
            break
        if line.startswith(b"data: "):
            now = time.monotonic()
            name = json.loads(line[6:])["app"]
            latencies.append(now - sent[name])
            got += 1
    writer.close()


async def run(api, n_subs, n_events):
    host, port = api.removeprefix("http://").split(":")
    sent, latencies, ready = {}, [], []
    subs = [asyncio.create_task(subscriber(host, int(port), sent, latencies, ready, n_events)) for _ in range(n_subs)]
    while len(ready) < n_subs:
        await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    for i in range(n_events):
        name = f"bench-{i}"
        sent[name] = time.monotonic()
        body = json.dumps({"name": name}).encode()
        req = urllib.request.Request(api + "/v1/apps", data=body, method="POST",
                                     headers={"content-type": "application/json"})
        await loop.run_in_executor(None, lambda: urllib.request.urlopen(req).read())
    await asyncio.wait_for(asyncio.gather(*subs), timeout=120)
    return latencies


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lakeflyd", default="target/release/lakeflyd")
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--events", type=int, default=200)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.subscribers * 2 + 256)), hard))
    with Daemon(args.lakeflyd) as d:
        api = d.api
        rss_before, cpu_before = rss_mb(d.pid), cpu_seconds(d.pid)
        start = time.monotonic()
        latencies = asyncio.run(run(api, args.subscribers, args.events))
        took = time.monotonic() - start
        rss_after, cpu = rss_mb(d.pid), cpu_seconds(d.pid) - cpu_before
        lat = sorted(latencies)
        print(f"{args.subscribers} subscribers x {args.events} events = {len(lat)} deliveries in {took:.2f} s")
        print(f"  latency median / p99 / max  {statistics.median(lat) * 1000:.1f} / "
              f"{lat[int(0.99 * (len(lat) - 1))] * 1000:.1f} / {lat[-1] * 1000:.1f} ms")
        print(f"  daemon RSS before / after   {rss_before:.1f} / {rss_after:.1f} MB")
        print(f"  daemon CPU during the run   {cpu:.2f} s ({cpu / took * 100:.0f}% of one core)")


if __name__ == "__main__":
    main()
