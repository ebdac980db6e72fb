#!/usr/bin/env python3
"""Supervisor benchmark: prints figures, asserts nothing.

  * daemon RSS idle and with 50 machines;
  * time from request to N healthy machines, N = 1, 10, 50;
  * restart latency after SIGKILL of a machine (until the app answers again), median and p99;
  * the floor: spawning the same app by hand until it answers, and the ratios to it;
  * the same scenarios under PM2 and supervisord when they are installed
    (`npm install -g pm2`, `apt-get install supervisor`), with the ratios, else a line
    saying so. (Their "time to answering" has no health checks to wait on; lakeflyd's
    includes its own check passing and being recorded.)

Usage: scripts/bench/supervisor.py [--lakeflyd target/release/lakeflyd] [--kills 20]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from daemon import Daemon
from procstat import rss_mb

APP = r"""
import os, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(os.environ["PORT"]))); s.listen(64)
while True:
    c, _ = s.accept(); c.recv(1024)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"); c.close()
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
            c.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return c.recv(16).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def wait_until(pred, timeout=60.0, every=0.002):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(every)
    raise TimeoutError("condition not met in time")


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def ms(seconds):
    return f"{seconds * 1000:8.1f} ms"


class Lakeflyd:
    name = "lakeflyd"

    def __init__(self, binary, workdir):
        self.daemon = Daemon(binary)
        self.workdir = workdir
        self.call("POST", "/v1/apps", {"name": "bench"})

    def call(self, method, path, body=None):
        return self.daemon.call(method, path, body)

    def start(self, n):
        ids = []
        for _ in range(n):
            m = self.call("POST", "/v1/apps/bench/machines", {
                "command": "exec python3 app.py", "workdir": self.workdir,
                "internal_port": 8080, "kill_signal": "SIGTERM", "kill_timeout": "2s"})
            ids.append(m["id"])
        return ids

    def machines(self):
        return self.call("GET", "/v1/apps/bench/machines")

    def healthy(self, ids):
        ms_ = {m["id"]: m for m in self.machines()}
        return all(ms_.get(i, {}).get("health") == "passing" for i in ids)

    def port_and_pid(self, mid):
        m = self.call("GET", f"/v1/apps/bench/machines/{mid}")
        return m.get("port"), m.get("pid")

    def destroy_all(self):
        for m in self.machines():
            self.call("DELETE", f"/v1/apps/bench/machines/{m['id']}")

    def rss(self):
        return rss_mb(self.daemon.pid)

    def close(self):
        self.daemon.close()


def floor(workdir, n):
    """Spawn n copies by hand and wait until each answers."""
    ports = [free_port() for _ in range(n)]
    start = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "app.py"], cwd=workdir, env={**os.environ, "PORT": str(p)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ports]
    for p in ports:
        wait_until(lambda p=p: answers(p))
    took = time.monotonic() - start
    for p in procs:
        p.kill()
        p.wait()
    return took


def floor_restart(workdir, kills):
    """Kill and respawn by hand: the least a supervisor could take."""
    port = free_port()
    env = {**os.environ, "PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=workdir, env=env, stdout=subprocess.DEVNULL)
    wait_until(lambda: answers(port))
    times = []
    for _ in range(kills):
        proc.kill()
        proc.wait()
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=workdir, env=env, stdout=subprocess.DEVNULL)
        wait_until(lambda: answers(port))
        times.append(time.monotonic() - start)
    proc.kill()
    proc.wait()
    return times


def bench_lakeflyd(binary, workdir, kills):
    d = Lakeflyd(binary, workdir)
    try:
        time.sleep(0.5)
        figures = {"rss_idle_mb": d.rss(), "healthy": {}}
        for n in (1, 10, 50):
            start = time.monotonic()
            ids = d.start(n)
            wait_until(lambda: d.healthy(ids), timeout=120, every=0.005)
            figures["healthy"][n] = time.monotonic() - start
            if n == 50:
                figures["rss_50_mb"] = d.rss()
            d.destroy_all()
        # The first restart after a crash, on a fresh machine each time (later restarts
        # of a crash-looping machine back off on purpose).
        restarts = []
        for _ in range(kills):
            [mid] = d.start(1)
            wait_until(lambda: d.healthy([mid]))
            port, pid = d.port_and_pid(mid)
            os.kill(pid, signal.SIGKILL)
            start = time.monotonic()

            def back():
                p, new_pid = d.port_and_pid(mid)
                return new_pid not in (None, pid) and answers(p)
            wait_until(back)
            restarts.append(time.monotonic() - start)
            d.destroy_all()
        figures["restart"] = restarts
        return figures
    finally:
        d.close()


class Pm2:
    """PM2 with its own PM2_HOME; programs from an ecosystem file."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.home = tempfile.mkdtemp(prefix="pm2-bench-")
        self.env = {**os.environ, "PM2_HOME": self.home}
        self.run("ping")
        self.count = 0

    def run(self, *args):
        return subprocess.run(["pm2", *args], env=self.env, capture_output=True, text=True, check=True).stdout

    def daemon_pid(self):
        with open(os.path.join(self.home, "pm2.pid")) as f:
            return int(f.read())

    def start(self, ports):
        apps = []
        for port in ports:
            self.count += 1
            apps.append({"name": f"a{self.count}", "script": "app.py", "interpreter": "python3",
                         "cwd": self.workdir, "env": {"PORT": str(port)}, "autorestart": True})
        eco = os.path.join(self.home, f"eco{self.count}.config.js")
        with open(eco, "w") as f:
            f.write("module.exports = " + json.dumps({"apps": apps}))
        self.run("start", eco)

    def pid_on(self, port):
        for app in json.loads(self.run("jlist")):
            if app["pm2_env"].get("PORT") == str(port) or app["pm2_env"].get("env", {}).get("PORT") == str(port):
                return app["pid"]
        return None

    def delete_all(self):
        self.run("delete", "all")

    def rss(self):
        return rss_mb(self.daemon_pid())

    def close(self):
        subprocess.run(["pm2", "kill"], env=self.env, capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)


class Supervisord:
    """supervisord in the foreground; programs are added with `supervisorctl update`."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.dir = tempfile.mkdtemp(prefix="supervisord-bench-")
        self.conf = os.path.join(self.dir, "supervisord.conf")
        self.programs = {}
        self.write()
        self.proc = subprocess.Popen(["supervisord", "-n", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.ctl("pid").strip().isdigit(), timeout=20, every=0.02)

    def write(self):
        sock = os.path.join(self.dir, "s.sock")
        lines = [f"[unix_http_server]\nfile={sock}\n", f"[supervisord]\nlogfile={self.dir}/d.log\npidfile={self.dir}/d.pid\n",
                 "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
                 f"[supervisorctl]\nserverurl=unix://{sock}\n"]
        for name, port in self.programs.items():
            lines.append(f"[program:{name}]\ncommand=python3 app.py\ndirectory={self.workdir}\n"
                         f"environment=PORT=\"{port}\"\nautorestart=true\nstdout_logfile=NONE\nstderr_logfile=NONE\n")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines))

    def ctl(self, *args):
        return subprocess.run(["supervisorctl", "-c", self.conf, *args], capture_output=True, text=True).stdout

    def start(self, ports):
        for port in ports:
            self.programs[f"p{port}"] = port
        self.write()
        self.ctl("update")

    def pid_on(self, port):
        out = self.ctl("pid", f"p{port}").strip()
        return int(out) if out.isdigit() else None

    def delete_all(self):
        self.programs = {}
        self.write()
        self.ctl("update")

    def rss(self):
        return rss_mb(self.proc.pid)

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def bench_other(runner, workdir, kills):
    """The lakeflyd scenarios under another supervisor."""
    r = runner(workdir)
    try:
        time.sleep(0.5)
        figures = {"rss_idle_mb": r.rss(), "healthy": {}}
        for n in (1, 10, 50):
            ports = [free_port() for _ in range(n)]
            start = time.monotonic()
            r.start(ports)
            for p in ports:
                wait_until(lambda p=p: answers(p), timeout=120)
            figures["healthy"][n] = time.monotonic() - start
            if n == 50:
                figures["rss_50_mb"] = r.rss()
            r.delete_all()
        restarts = []
        for _ in range(kills):
            port = free_port()
            r.start([port])
            wait_until(lambda: answers(port))
            pid = r.pid_on(port)
            os.kill(pid, signal.SIGKILL)
            start = time.monotonic()
            wait_until(lambda: answers(port), timeout=60)
            restarts.append(time.monotonic() - start)
            r.delete_all()
        figures["restart"] = restarts
        return figures
    finally:
        r.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lakeflyd", default="target/release/lakeflyd")
    ap.add_argument("--kills", type=int, default=20)
    args = ap.parse_args()
    if not os.path.exists(args.lakeflyd):
        sys.exit(f"{args.lakeflyd} not found: run `cargo build --release` first")
    workdir = tempfile.mkdtemp(prefix="lakefly-bench-app-")
    with open(os.path.join(workdir, "app.py"), "w") as f:
        f.write(APP)

    print("floor (spawn by hand until it answers):")
    floors = {n: floor(workdir, n) for n in (1, 10, 50)}
    for n, t in floors.items():
        print(f"  {n:3d} apps answering      {ms(t)}")
    floor_restarts = floor_restart(workdir, args.kills)
    print(f"  restart median / p99    {ms(statistics.median(floor_restarts))} / {ms(pct(floor_restarts, 99))}")

    f = bench_lakeflyd(args.lakeflyd, workdir, args.kills)
    print("lakeflyd:")
    print(f"  RSS idle                {f['rss_idle_mb']:8.1f} MB")
    print(f"  RSS with 50 machines    {f['rss_50_mb']:8.1f} MB")
    for n, t in f["healthy"].items():
        print(f"  {n:3d} machines healthy    {ms(t)}   ({t / floors[n]:.2f}x floor)")
    med, p99 = statistics.median(f["restart"]), pct(f["restart"], 99)
    print(f"  restart median / p99    {ms(med)} / {ms(p99)}   "
          f"({med / statistics.median(floor_restarts):.2f}x floor median)")

    for runner, tool, how in ((Pm2, "pm2", "npm install -g pm2"),
                              (Supervisord, "supervisord", "apt-get install supervisor")):
        if shutil.which(tool) is None:
            print(f"{tool}: not installed ({how}); skipped")
            continue
        g = bench_other(runner, workdir, args.kills)
        print(f"{tool}:")
        print(f"  RSS idle                {g['rss_idle_mb']:8.1f} MB   (lakeflyd {f['rss_idle_mb']:.1f})")
        print(f"  RSS with 50 programs    {g['rss_50_mb']:8.1f} MB   (lakeflyd {f['rss_50_mb']:.1f})")
        for n, t in g["healthy"].items():
            print(f"  {n:3d} programs answering  {ms(t)}   ({t / floors[n]:.2f}x floor; "
                  f"lakeflyd/{tool} {f['healthy'][n] / t:.2f})")
        gmed = statistics.median(g["restart"])
        print(f"  restart median / p99    {ms(gmed)} / {ms(pct(g['restart'], 99))}   "
              f"({gmed / statistics.median(floor_restarts):.2f}x floor median; lakeflyd/{tool} {med / gmed:.2f})")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
