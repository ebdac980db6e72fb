#!/usr/bin/env bash
# Edge proxy benchmark (figures printed, nothing asserted).
#
# One upstream, fast enough that the proxy is the bottleneck: nginx answering a static
# 200, run by lakeflyd as the app's machine. wrk measures requests/s and p99 (and p50)
# latency at 32 connections and at one, three ways in the same run:
#   direct  wrk -> the machine
#   nginx   wrk -> nginx reverse proxy (keepalive upstream) -> the machine
#   edge    wrk -> lakeflyd's edge (Host: bench.localhost) -> the machine
# and prints edge/nginx ratios of the medians over several rounds. Many short rounds beat
# a few long ones: a noisy moment of this shared machine (a neighbour's burst, a
# descheduled vCPU) then lands on a single round of a single target, and the interval of
# the ratio narrows (at one connection, 60 rounds of 1 s bounded the throughput ratio to
# 1.02-1.09 where 12 rounds of 4 s left 1.01-1.26; the p99 ratio, noisier, takes about
# 150 rounds of 1 s to narrow to +-4%).
# Placement (BENCH_PLACEMENT), the same for nginx and the edge:
#   scheduler  (default) left to the kernel. At one connection on 2 vCPUs the three
#              processes land one way or another from run to run, and that, not the
#              proxy, puts a run at ~17k or ~10k req/s (direct included).
#   one-core   wrk, the proxy and the upstream all on CPU 0: no cross-core wake-ups, so a
#              request's time is the three programs' CPU and the proxy's share is its own
#              cost; the steadiest figures at one connection (at 32 it measures CPU per
#              request, not throughput on the machine's cores).
#   split      the proxy on the upper half of the cores, wrk and the upstream on the
#              lower: every request crosses cores twice, and on a VM those wake-ups
#              (~60 µs each here) dwarf either proxy.
# Body (BENCH_BODY):
#   ok         (default) a 3-byte answer: the proxy's own cost per request.
#   page       a 15 KB HTML page, asked for with `Accept-Encoding: gzip`: compression's
#              cost, the edge's against nginx's `gzip on` at the same level (4); direct
#              is the page as it is. The bytes each sends are printed first.
# Usage: [BENCH_PLACEMENT=scheduler|one-core|split] [BENCH_BODY=ok|page] scripts/bench/proxy.sh
#          [SECONDS per run, default 2] [ROUNDS, default 20] [CONNECTIONS, default "32 1"]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration="${1:-2}"
rounds="${2:-20}"
connections="${3:-32 1}"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk; then
    echo "installing nginx and wrk (Debian packages)..." >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >&2
fi
cargo build --release --quiet
bin="$PWD/target/release"

cores="$(nproc)"
placement="${BENCH_PLACEMENT:-scheduler}"
case "$placement" in
scheduler) load_cpus="" proxy_cpus="" proxy_cores="" ;;
one-core) load_cpus=0 proxy_cpus=0 proxy_cores=1 ;;
split)
    if [ "$cores" -lt 2 ]; then
        echo "error: BENCH_PLACEMENT=split needs 2 cores or more; this machine has $cores" >&2
        exit 2
    fi
    cpus() { if [ "$1" = "$2" ]; then echo "$1"; else echo "$1-$2"; fi; }
    load_cpus="$(cpus 0 $((cores / 2 - 1)))"
    proxy_cpus="$(cpus $((cores / 2)) $((cores - 1)))"
    proxy_cores=$((cores - cores / 2))
    ;;
*)
    echo "error: BENCH_PLACEMENT=$placement: use scheduler, one-core or split" >&2
    exit 2
    ;;
esac
# A page of the kind apps render: a table whose rows differ in their figures.
page_html() {
    python3 - <<'EOF'
rows = "".join(
    f"<tr><td>order {n}</td><td>{n * 37 % 1000}.{n % 100:02d} EUR</td>"
    f"<td>{('shipped', 'paid', 'new')[n % 3]}</td></tr>\n"
    for n in range(250)
)
print(f"<!doctype html><html><head><title>Orders</title></head><body><table>\n{rows}</table></body></html>")
EOF
}
body="${BENCH_BODY:-ok}"
case "$body" in
ok)
    upstream_main="" upstream_location='location / { return 200 "ok\n"; }'
    wrk_extra=() gzip_block=""
    ;;
page)
    # Its workers as this user: run by root, nginx's would be nobody, who cannot read
    # the page in lakeflyd's state directory.
    upstream_main="user $(id -un);"
    upstream_location='location / { root @DIR@/www; default_type text/html; try_files /page.html =404; }'
    wrk_extra=(-H "Accept-Encoding: gzip")
    gzip_block="gzip on; gzip_proxied any; gzip_comp_level 4; gzip_min_length 512; gzip_vary on;"
    ;;
*)
    echo "error: BENCH_BODY=$body: use ok or page" >&2
    exit 2
    ;;
esac
# Command prefixes rather than functions: `$!` of `"${on_proxy[@]}" nginx ... &` is then
# the proxy's own pid (taskset execs it), which the CPU figures read.
on_load=() on_proxy=()
if [ -n "$proxy_cpus" ]; then
    on_load=(taskset -c "$load_cpus")
    on_proxy=(taskset -c "$proxy_cpus")
fi
# One worker a core it may run on; nginx 1.22's `auto` counts the machine's cores, not those.
nginx_workers="${proxy_cores:-auto}"

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The app: nginx on $PORT answering 200 "ok" (or the page), as a lakefly machine.
app="$work/app"
mkdir -p "$app/www"
[ "$body" = page ] && page_html >"$app/www/page.html"
cat >"$app/upstream.conf.in" <<'EOF'
@MAIN@
worker_processes 1;
pid @DIR@/upstream.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path @DIR@/tmp;
    proxy_temp_path @DIR@/tmp;
    fastcgi_temp_path @DIR@/tmp;
    uwsgi_temp_path @DIR@/tmp;
    scgi_temp_path @DIR@/tmp;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:@PORT@;
        @LOCATION@
    }
}
EOF
python3 - "$app/upstream.conf.in" "$upstream_main" "$upstream_location" <<'EOF'
import sys
path, main, location = sys.argv[1:]
text = open(path).read().replace("@MAIN@", main).replace("@LOCATION@", location)
open(path, "w").write(text)
EOF
cat >"$app/run.sh" <<'EOF'
#!/bin/sh
dir="$(pwd)"
mkdir -p "$dir/tmp"
sed -e "s|@PORT@|$PORT|" -e "s|@DIR@|$dir|g" upstream.conf.in >upstream.conf
exec nginx -p "$dir" -c "$dir/upstream.conf" -g 'daemon off;'
EOF
cat >"$app/fly.toml" <<'EOF'
app = "bench"
kill_signal = "SIGQUIT"
[processes]
  app = "sh run.sh"
[http_service]
  internal_port = 8080
EOF

"${on_proxy[@]}" "$bin/lakeflyd" --api 127.0.0.1:0 --edge 127.0.0.1:0 --state "$work/state" \
    >"$work/ready" 2>"$work/lakeflyd.log" &
pids+=($!)
daemon_pid=$!
for _ in $(seq 200); do [ -s "$work/ready" ] && break; sleep 0.05; done
api="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api"])' "$work/ready")"
edge="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["edge"])' "$work/ready")"
"$bin/lakefly" --remote "$api" deploy -c "$app/fly.toml" >/dev/null 2>"$work/deploy.log" || {
    cat "$work/deploy.log" >&2
    exit 1
}
# The machine's port, and its pid: nginx's master (run.sh execs it).
read -r port upstream_pid < <("$bin/lakefly" --remote "$api" status -a bench --json |
    python3 -c 'import json,sys; m = json.load(sys.stdin)["machines"][0]; print(m["port"], m["pid"])')

# nginx as the reverse proxy, with kept-alive upstream connections, the usual headers.
proxy="$work/proxy"
mkdir -p "$proxy/tmp"
proxy_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$proxy/nginx.conf" <<EOF
worker_processes $nginx_workers;
pid $proxy/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $proxy/tmp;
    proxy_temp_path $proxy/tmp;
    fastcgi_temp_path $proxy/tmp;
    uwsgi_temp_path $proxy/tmp;
    scgi_temp_path $proxy/tmp;
    keepalive_requests 1000000;
    $gzip_block
    upstream app { server 127.0.0.1:$port; keepalive 64; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$proxy_port;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF
"${on_proxy[@]}" nginx -p "$proxy" -c "$proxy/nginx.conf" -g 'daemon off;' 2>"$proxy/error.log" &
pids+=($!)
for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$proxy_port/" && break
    sleep 0.05
done

nginx_pid=$!

# CPU time (clock ticks) of a process and its children: the proxy's own cost, steadier
# than throughput on a shared machine.
cpu_ticks() { # pid (empty: none)
    local total=0 p
    [ -n "$1" ] || { echo 0; return; }
    for p in "$1" $(pgrep -P "$1" || true); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

# wrk's requests/s, p99 (µs), non-2xx count, the proxy's CPU µs per request, and p50 (µs).
measure() { # url connections proxy-pid
    local url="$1" conns="$2" pid="$3" out before after
    before="$(cpu_ticks "$pid")"
    out="$("${on_load[@]}" wrk -t1 -c"$conns" -d"${duration}s" --latency -H "Host: bench.localhost" "${wrk_extra[@]}" "$url")"
    after="$(cpu_ticks "$pid")"
    python3 - "$out" "$((after - before))" "$(getconf CLK_TCK)" <<'EOF'
import re, sys
out, ticks, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
requests = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
def percentile(p):
    value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
    return float(value) * {"us": 1, "ms": 1000, "s": 1_000_000}[unit]
p99, p50 = percentile(99), percentile(50)
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
cpu = ticks * 1_000_000 / hz / max(requests, 1)
print(f"{rps:.0f} {p99:.0f} {errors.group(1) if errors else 0} {cpu:.1f} {p50:.0f}")
EOF
}

# The machine inherited the daemon's cores; it belongs with the load.
if [ -n "$load_cpus" ]; then
    for pid in "$upstream_pid" $(pgrep -P "$upstream_pid" || true); do
        taskset -apc "$load_cpus" "$pid" >/dev/null
    done
    echo "placement $placement: the proxy (lakeflyd or nginx) on CPU $proxy_cpus; wrk and the upstream on CPU $load_cpus"
else
    echo "placement $placement: left to the kernel (BENCH_PLACEMENT=one-core for the steadiest one-connection figures)"
fi
echo "upstream: nginx static 200 ($body) as lakefly machine on 127.0.0.1:$port; ${duration}s per run, $rounds rounds; $cores cores"
if [ "$body" = page ]; then
    declare -A page_urls=([direct]="http://127.0.0.1:$port/" [nginx]="http://127.0.0.1:$proxy_port/" [edge]="$edge/")
    for target in direct nginx edge; do
        head="$(curl -s -H "Host: bench.localhost" -H "Accept-Encoding: gzip" -o /dev/null \
            -D - -w 'size %{size_download}\n' "${page_urls[$target]}")"
        coding="$(echo "$head" | tr -d '\r' | awk -F': ' 'tolower($1) == "content-encoding" {print $2}')"
        echo "page through $target: $(echo "$head" | awk '/^size / {print $2}') bytes (${coding:-identity})"
    done
fi
echo "wrk runs one thread; CPU is the proxy's own (lakeflyd; nginx's master and workers)"
echo "edge threads: $(ls /proc/$daemon_pid/task | while read -r t; do cat "/proc/$daemon_pid/task/$t/comm"; done | grep -c '^lakefly-edge-') (lakeflyd's default, half the cores);" \
    "nginx workers: $(pgrep -c -P "$nginx_pid") (worker_processes $nginx_workers, one a core it may use)"
echo "Targets take turns within each round, so a noisy moment on this shared machine does"
echo "not land on one of them only, in each of the six orders in turn, so none always runs"
echo "first or right after another; each starts with a discarded 1 s warm-up. The summary"
echo "compares medians over the rounds, and each round's edge/nginx ratio as a geometric"
echo "mean with a 95% bootstrap interval."
printf '%-6s %-8s %6s %12s %10s %10s %8s %12s\n' round target conns 'req/s' 'p50 µs' 'p99 µs' non-2xx 'CPU µs/req'
orders=("direct nginx edge" "edge direct nginx" "nginx edge direct"
    "direct edge nginx" "nginx direct edge" "edge nginx direct")
declare -A runs
declare -A urls=([direct]="http://127.0.0.1:$port/" [nginx]="http://127.0.0.1:$proxy_port/" [edge]="$edge/")
declare -A pids_of=([direct]="" [nginx]="$nginx_pid" [edge]="$daemon_pid")
for conns in $connections; do
    for target in direct nginx edge; do
        "${on_load[@]}" wrk -t1 -c"$conns" -d1s -H "Host: bench.localhost" "${wrk_extra[@]}" "${urls[$target]}" >/dev/null
    done
    for round in $(seq "$rounds"); do
        for target in ${orders[$(((round - 1) % ${#orders[@]}))]}; do
            read -r r p e c m < <(measure "${urls[$target]}" "$conns" "${pids_of[$target]}")
            runs[$target$conns]+="$r,$p,$c,$m "
            [ "$target" = direct ] && c=-
            printf '%-6s %-8s %6s %12s %10s %10s %8s %12s\n' "$round" "$target" "$conns" "$r" "$m" "$p" "$e" "$c"
        done
    done
done
echo
for conns in $connections; do
    python3 - "$conns" "${runs[direct$conns]}" "${runs[nginx$conns]}" "${runs[edge$conns]}" <<'EOF'
import statistics, sys
conns = sys.argv[1]
def medians(runs):
    rows = [tuple(map(float, run.split(","))) for run in runs.split()]
    return [statistics.median(column) for column in zip(*rows)]
(dr, dp, _, dm), (nr, np, nc, nm), (er, ep, ec, em) = (medians(r) for r in sys.argv[2:])
print(f"{conns:>2} conns, medians: direct {dr:.0f} req/s p50 {dm:.0f} p99 {dp:.0f} µs; "
      f"nginx {nr:.0f} req/s p50 {nm:.0f} p99 {np:.0f} µs {nc:.1f} µs/req; "
      f"edge {er:.0f} req/s p50 {em:.0f} p99 {ep:.0f} µs {ec:.1f} µs/req")
print(f"{conns:>2} conns: edge/nginx throughput {er / nr:.2f}x (target >= 1.00), "
      f"p99 {ep / np:.2f}x (target <= 1.00), CPU per request {ec / nc:.2f}x")
# Rounds pair the two proxies in time, so counting the rounds each one wins shows how
# much of a difference in the medians is the machine's noise.
pairs = list(zip((run.split(",") for run in sys.argv[3].split()),
                 (run.split(",") for run in sys.argv[4].split())))
faster = sum(float(e[0]) >= float(n[0]) for n, e in pairs)
tighter = sum(float(e[1]) <= float(n[1]) for n, e in pairs)
print(f"{conns:>2} conns: rounds where the edge met nginx: throughput {faster} of {len(pairs)}, "
      f"p99 {tighter} of {len(pairs)}")
# The ratio of each round's pair, as a geometric mean with a 95% bootstrap interval over
# the rounds (seeded: the same figures give the same interval). An interval on one side
# of 1.00 is a difference; one that spans it is parity within this run's noise.
import math, random
def interval(ratios, draws=2000):
    logs = [math.log(r) for r in ratios]
    mean = lambda xs: math.exp(sum(xs) / len(xs))
    rng = random.Random(6)
    boot = sorted(mean(rng.choices(logs, k=len(logs))) for _ in range(draws))
    return mean(logs), boot[int(draws * 0.025)], boot[int(draws * 0.975)]
def verdict(low, high, better_above):
    if (low > 1) if better_above else (high < 1):
        return "edge better"
    if (high < 1) if better_above else (low > 1):
        return "nginx better"
    return "parity within the noise"
# p50 is no target; it moves far less between rounds than p99 on a shared machine.
for name, column, better_above in (("throughput", 0, True), ("p99", 1, False), ("p50", 3, False)):
    ratios = [float(e[column]) / float(n[column]) for n, e in pairs]
    g, low, high = interval(ratios)
    print(f"{conns:>2} conns: edge/nginx {name} by round {g:.2f}x "
          f"(95% {low:.2f}-{high:.2f}): {verdict(low, high, better_above)}")
if conns == "1":
    # One request at a time: the time each proxy adds to a request over going direct.
    added = lambda r: (1 / r - 1 / dr) * 1e6
    print(f" 1 conn: nginx adds {added(nr):.0f} µs a request, the edge {added(er):.0f} µs")
EOF
done
rss="$(awk '/VmRSS/ {print $2}' "/proc/$daemon_pid/status")"
echo "lakeflyd RSS after the runs: $((rss / 1024)) MiB"
