#!/bin/sh
# worker: does a unit of work every few seconds until asked to stop.
set -eu
trap 'echo "worker: stopping"; exit 0' INT TERM
while :; do
    echo "worker: tick $(date +%s)"
    sleep 5 &
    wait $!
done
