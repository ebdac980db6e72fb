#!/usr/bin/env python3
"""Deploy benchmark: prints figures, asserts nothing.

  * time to deploy examples/hello cold (new app, bundle uploaded) and unchanged;
  * bytes uploaded for a one-file change in a 50 MB tree;
  * time to scale from 1 to 10 healthy machines and back to 1;
  * time for a rolling deploy of 10 machines.

The daemon runs with `--smoke-time 0s`: the figures are lakefly's own work, not the
10 s a deploy watches each new machine by default (flyctl's smoke checks).

Usage: scripts/bench/deploy.py [--bin target/release]   (after `cargo build --release`)
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

from daemon import Daemon

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def copy_hello(work, name):
    """examples/hello copied under `work` as app `name`; returns its directory."""
    app = os.path.join(work, name)
    shutil.copytree(os.path.join(ROOT, "examples/hello"), app)
    with open(os.path.join(app, "fly.toml")) as f:
        text = f.read().replace('app = "hello"', f'app = "{name}"')
    with open(os.path.join(app, "fly.toml"), "w") as f:
        f.write(text)
    return app


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release"))
    args = ap.parse_args()
    lakefly, lakeflyd = os.path.join(args.bin, "lakefly"), os.path.join(args.bin, "lakeflyd")
    if not os.path.exists(lakefly):
        raise SystemExit(f"{lakefly} not found: run `cargo build --release` first")
    d = Daemon(lakeflyd, "--smoke-time", "0s")
    api = d.api
    work = tempfile.mkdtemp(prefix="lakefly-bench-apps-")

    def deploy(config, *extra):
        start = time.monotonic()
        out = subprocess.run([lakefly, "--remote", api, "deploy", "-c", config, "--json", *extra],
                             capture_output=True, text=True)
        took = time.monotonic() - start
        if out.returncode != 0:
            raise SystemExit(f"deploy failed ({out.returncode}): {out.stderr}")
        head = json.loads(out.stdout.splitlines()[0])
        return took, head

    try:
        hello = copy_hello(work, "hello")
        config = os.path.join(hello, "fly.toml")
        cold, head = deploy(config)
        warm, head2 = deploy(config)
        print("examples/hello:")
        print(f"  cold deploy             {cold * 1000:8.0f} ms  (uploaded {head['uploaded_bytes']} bytes)")
        print(f"  unchanged redeploy      {warm * 1000:8.0f} ms  (uploaded {head2['uploaded_bytes']} bytes;"
              " includes the check's 1s grace period)")

        big = copy_hello(work, "big")
        os.makedirs(os.path.join(big, "assets"))
        for i in range(50):
            with open(os.path.join(big, "assets", f"blob{i}.bin"), "wb") as f:
                f.write(os.urandom(1 << 20))
        _, first = deploy(os.path.join(big, "fly.toml"))
        with open(os.path.join(big, "assets", "blob0.bin"), "r+b") as f:
            f.write(b"changed")
        took, changed = deploy(os.path.join(big, "fly.toml"))
        print("50 MB tree:")
        print(f"  first deploy uploaded   {first['uploaded_bytes'] / (1 << 20):8.1f} MiB")
        print(f"  one-file change uploads {changed['uploaded_bytes'] / (1 << 20):8.1f} MiB in {took * 1000:.0f} ms"
              "  (bundles are whole; no per-file dedup yet)")

        # Scaling a separate app: up to 10 machines (waits for each to be healthy), back to 1.
        scaled = copy_hello(work, "scaled")
        deploy(os.path.join(scaled, "fly.toml"))
        for count in ("10", "1"):
            start = time.monotonic()
            out = subprocess.run([lakefly, "--remote", api, "scale", "count", count, "--yes", "-a", "scaled"],
                                 capture_output=True, text=True)
            took = time.monotonic() - start
            if out.returncode != 0:
                raise SystemExit(f"scale failed ({out.returncode}): {out.stderr}")
            print(f"scale count {count:>2} (hello)        {took * 1000:8.0f} ms"
                  + ("  (waits for every new machine's check)" if count == "10" else ""))

        # Ten machines of hello, then a rolling deploy of a change.
        machines = json.loads(urllib.request.urlopen(f"{api}/v1/apps/hello/machines").read())
        spec = machines[0]["spec"]
        for _ in range(9):
            req = urllib.request.Request(f"{api}/v1/apps/hello/machines", data=json.dumps(spec).encode(),
                                         headers={"content-type": "application/json"}, method="POST")
            urllib.request.urlopen(req).read()
        with open(os.path.join(hello, "app.py"), "a") as f:
            f.write("\n# changed\n")
        took, _ = deploy(config, "--strategy", "rolling")
        print(f"rolling deploy of 10 machines  {took * 1000:8.0f} ms  (max_unavailable 0.33: batches of 4)")
    finally:
        d.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
