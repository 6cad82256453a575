#!/usr/bin/env bash
# Every query file of queries/ on one synthetic store, through leafe
# (DataFusion) and through DuckDB, Spark in local mode and Spark on a
# standalone cluster (one master, two workers on 127.0.0.1), all over the
# store's catalog; wall times per query, every engine writing all the rows
# as CSV to /dev/null (Spark: its noop sink). leafe and DuckDB are timed as
# whole processes (leafe: `leafe sql --format csv`; DuckDB: Python, the
# import, the views from the catalog and `COPY … TO '/dev/null'`), DuckDB
# also inside one open session. That the rows are the same is the parity
# test's job (python/leafe_views.py parity).
#
#   benches/engines.sh [STEPS] [STORE_DIR]     default 10000000 steps, /tmp/leafe-bench-engines-STEPS
#
# ENGINES picks the peers (default "duckdb spark spark-standalone"; ENGINES=duckdb
# for DuckDB alone); REPEAT runs each query that many times in leafe and in
# the peer, alternating, and reports medians (default 3).
#
# Needs a release build (cargo build --release; LEAFE_BIN overrides the
# binary), python3 with duckdb (and pyspark with Java 17 for Spark). Spark's
# times are measured inside one session (its start, ~20-30 s, printed apart).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-10000000}
store=${2:-/tmp/leafe-bench-engines-$steps}
export LEAFE_BIN=${LEAFE_BIN:-$PWD/target/release/leafe}
[ -x "$LEAFE_BIN" ] || { echo "no $LEAFE_BIN: cargo build --release, or set LEAFE_BIN" >&2; exit 2; }

if [ ! -f "$store/_leafe/catalog.json" ]; then
  # ~22 steps per episode in the synthetic trees.
  "$LEAFE_BIN" synth --store "$store" --episodes $((steps / 22)) --seed 7 --run-id bench
  "$LEAFE_BIN" catalog --store "$store"
fi
out=${OUT:-/tmp/leafe-bench-engines-results}
mkdir -p "$out"
rm -f "$out"/*.json
repeat=${REPEAT:-3}
for peer in ${ENGINES:-duckdb spark spark-standalone}; do
  case $peer in
    duckdb) run="duckdb local[2]" ;;
    spark) run="spark local[2]" ;;
    spark-standalone) run="spark standalone:2" ;;
    *) echo "ENGINES: unknown peer $peer (duckdb, spark, spark-standalone)" >&2; exit 2 ;;
  esac
  set -- $run
  echo "== $1 $2 (medians of $repeat)"
  python3 python/leafe_views.py bench --store "$store" --engine "$1" --master "$2" --repeat "$repeat" \
    --json "$out/$1-${2//[^a-z0-9]/}.json" 2> >(grep -v -E 'WARN|log4j|setLogLevel|pandas|require_minimum' >&2)
done
python3 - "$out" <<'EOF'
import json, sys, glob, os
runs = {os.path.basename(p)[:-5]: json.load(open(p)) for p in sorted(glob.glob(sys.argv[1] + "/*.json"))}
names = [r["query"] for r in next(iter(runs.values()))]
cols = list(runs)
# leafe's time for a query: the median of its runs beside the first peer
# (each peer's bench times leafe again; every run is kept in the JSON).
leafe = [runs[cols[0]][i]["leafe_s"] for i in range(len(names))]
head = {c: (f"{c} whole process s | leafe / {c} | {c} in one session s" if c.startswith("duckdb")
            else f"{c} in one session s | leafe / {c}") for c in cols}
print("\n| query | rows | leafe s | " + " | ".join(head[c] for c in cols) + " |")
print("|---|---:|---:|" + "".join("---:|" * len(head[c].split("|")) for c in cols))
def cells(c, i):
    r = runs[c][i]
    out = f"{r['engine_s']:.2f} | {leafe[i] / max(r['engine_s'], 1e-9):.2f}"
    return out + (f" | {r['session_s']:.2f}" if c.startswith("duckdb") else "")
for i, n in enumerate(names):
    print(f"| {n} | {runs[cols[0]][i]['rows']:,} | {leafe[i]:.2f} | " + " | ".join(cells(c, i) for c in cols) + " |")
tot = lambda c, k="engine_s": sum(runs[c][i][k] for i in range(len(names)))
print(f"| **all {len(names)}** | | {sum(leafe):.1f} | " + " | ".join(
    f"{tot(c):.1f} | {sum(leafe) / tot(c):.2f}" + (f" | {tot(c, 'session_s'):.1f}" if c.startswith("duckdb") else "")
    for c in cols) + " |")
EOF
