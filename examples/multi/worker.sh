#!/bin/sh
# multi/worker: does one unit of work every few seconds and records it in the mount.
set -eu
queue="${QUEUE_DIR:-/data/queue}"
mkdir -p "$queue"
trap 'echo "worker stopping"; exit 0' INT TERM
while :; do
    date +%s > "$queue/job-$(date +%s%N)"
    echo "worker: job done"
    sleep 5 &
    wait $!
done
