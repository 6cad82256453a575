#!/usr/bin/env bash
# Every query file of queries/ on one synthetic store, through leafe
# (DataFusion) and through Spark in local mode, Spark on a standalone
# cluster (one master, two workers on 127.0.0.1) and DuckDB, all over the
# store's catalog; wall times per query, every engine producing all the rows
# without collecting them into Python (Spark: the noop sink; DuckDB: COPY to
# /dev/null; leafe: `leafe sql --format json` into a pipe). That the rows are
# the same is the parity test's job (python/leafe_views.py parity).
#
#   benches/engines.sh [STEPS] [STORE_DIR]     default 10000000 steps, /tmp/leafe-bench-engines-STEPS
#
# Needs a release build (cargo build --release; LEAFE_BIN overrides the
# binary), python3 with pyspark and duckdb, and Java 17. Spark's times are
# measured inside one session (its start, ~20-30 s, printed apart); leafe's
# are whole processes (start and reading the commit markers included).
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
for run in "duckdb local[2]" "spark local[2]" "spark standalone:2"; do
  set -- $run
  echo "== $1 $2"
  python3 python/leafe_views.py bench --store "$store" --engine "$1" --master "$2" \
    --json "$out/$1-${2//[^a-z0-9]/}.json" 2> >(grep -v -E 'WARN|log4j|setLogLevel|pandas|require_minimum' >&2)
done
python3 - "$out" <<'EOF'
import json, sys, glob, os
runs = {os.path.basename(p)[:-5]: json.load(open(p)) for p in sorted(glob.glob(sys.argv[1] + "/*.json"))}
names = [r["query"] for r in next(iter(runs.values()))]
cols = list(runs)
print(f"\n| query | rows | leafe s | " + " | ".join(f"{c} s" for c in cols) + " |")
print("|---|---:|---:|" + "---:|" * len(cols))
for i, n in enumerate(names):
    first = runs[cols[0]][i]
    leafe = min(r[i]["leafe_s"] for r in runs.values())
    print(f"| {n} | {first['rows']:,} | {leafe:.2f} | " + " | ".join(f"{runs[c][i]['engine_s']:.2f}" for c in cols) + " |")
tot = lambda key, c=None: sum((runs[c] if c else runs[cols[0]])[i][key] for i in range(len(names)))
print(f"| **all** | | {min(sum(r[i]['leafe_s'] for i in range(len(names))) for r in runs.values()):.1f} | "
      + " | ".join(f"{tot('engine_s', c):.1f}" for c in cols) + " |")
EOF
