#!/usr/bin/env bash
# Latency of every `leafe view` endpoint on synthetic stores of 1 M and
# 10 M steps (the stores benches/memory.sh uses: one run, ~22 steps an
# episode). Each endpoint is asked 3 times; the table gives the slowest.
#
#   benches/view_latency.sh [MILLIONS_OF_STEPS...]   default 1 10
#
# Needs a leafe binary (LEAFE_BIN; default target/release/leafe, else
# target/debug/leafe: say which you measured) and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${*:-1 10}
target=${CARGO_TARGET_DIR:-$PWD/target}
leafe=${LEAFE_BIN:-}
if [ -z "$leafe" ]; then
  if [ -x "$target/release/leafe" ]; then leafe=$target/release/leafe; else leafe=$target/debug/leafe; fi
fi
[ -x "$leafe" ] || { echo "no leafe binary: cargo build --release, or set LEAFE_BIN" >&2; exit 2; }
. benches/synth_store.sh
echo "binary: $leafe"

one() { "$leafe" -q sql --store "$1" --format csv "$2" | sed -n 2p; }

echo "| steps | endpoint | rows | slowest of 3 (s) |"
echo "|---:|---|---:|---:|"
for m in $sizes; do
  store=$(synth_store "$leafe" "$m")
  log=$(mktemp)
  "$leafe" -q view --store "$store" --addr 127.0.0.1:0 >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do grep -q ' at http' "$log" && break; sleep 0.1; done
  base=$(sed -n 's/.* at \(http[^ ]*\)\/$/\1/p' "$log" | head -1)
  run=$(one "$store" "SELECT run_id FROM runs ORDER BY run_id LIMIT 1")
  task=$(one "$store" "SELECT task_id FROM episodes WHERE run_id = '$run' AND origin = 'branch' AND success GROUP BY task_id ORDER BY COUNT(*) DESC LIMIT 1")
  ep=$(one "$store" "SELECT episode_id FROM episodes WHERE run_id = '$run' AND task_id = '$task' AND origin = 'branch' ORDER BY episode_id LIMIT 1")
  for path in \
    "runs" \
    "tasks?run=$run" \
    "tasks?run=$run&outcome=rollback&sort=episodes&dir=desc&page=3" \
    "tasks?run=$run&where=depth%20%3E%3D%202%20AND%20NOT%20success" \
    "tree?run=$run&task=$task" \
    "episode?run=$run&episode=$ep" \
    "steps?run=$run&episode=$ep" \
    "reflections?runs=$run&category=wrong_push" \
    "patterns?runs=$run"; do
    worst=0
    for _ in 1 2 3; do
      t=$(curl -s -o /tmp/leafe-view-bench.json -w '%{time_total}' "$base/api/$path")
      worst=$(python3 -c "print(max($worst, $t))")
    done
    rows=$(python3 -c "import json; d=json.load(open('/tmp/leafe-view-bench.json')); print(d.get('error') or len(d.get('rows') or d.get('nodes') or d.get('sections') or [d.get('episode')]))")
    query=""; case $path in *\?*) query=${path#*\?};; esac
    echo "| ${m} M | \`${path%%\?*}\` $query | $rows | $worst |"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
