#!/usr/bin/env bash
# Runs the test suite N times in a row while a busy loop keeps one core loaded, as a noisy CI machine would.
# Usage: scripts/test-stress.sh PYTEST N. Stops at the first failing run.
set -euo pipefail
pytest=$1
runs=${2:-3}
python3 -c 'while True: pass' &
busy=$!
trap 'kill $busy' EXIT
for run in $(seq "$runs"); do
    start=$(date +%s)
    "$pytest" -q -p no:cacheprovider
    echo "stress run $run/$runs passed in $(( $(date +%s) - start )) s (one core kept busy)"
done
