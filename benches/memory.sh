#!/usr/bin/env bash
# Peak RSS and wall time against store size: every row of
# queries/counterfactual_pairs.sql and queries/rehearsal.sql streamed as JSON Lines
# to /dev/null by `leafe sql` under a memory limit, and by DuckDB over the
# same files (the store's catalog) with its memory_limit set to the same
# value.
#
#   benches/memory.sh [LIMIT] [MILLIONS_OF_STEPS...]   default 1G and 10 20 40
#
# Stores are synthesised once into /tmp/leafe-bench-mem-<N>M (about 25 bytes
# a step on disk). Needs a release build (LEAFE_BIN overrides), python3 with
# duckdb, and GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:-1G}
shift || true
sizes=${*:-10 20 40}
leafe=${LEAFE_BIN:-$PWD/target/release/leafe}
[ -x "$leafe" ] || { echo "no $leafe: cargo build --release, or set LEAFE_BIN" >&2; exit 2; }
. benches/synth_store.sh
spill=${LEAFE_SPILL_DIR:-/tmp/leafe-bench-spill}
mkdir -p "$spill"
duck_limit=$(python3 -c "import sys; s='$limit'; u=s[-1].upper(); print(s[:-1] + {'G':'GB','M':'MB'}[u] if u in 'GM' else s)")

echo "| steps | query | rows | leafe s | leafe peak RSS | duckdb s | duckdb peak RSS |"
echo "|---:|---|---:|---:|---:|---:|---:|"
for m in $sizes; do
  store=$(synth_store "$leafe" "$m")
  for q in counterfactual_pairs rehearsal; do
    rows=$( { /usr/bin/time -f "%e %M" -o /tmp/leafe-bench-time "$leafe" sql --store "$store" \
              --memory-limit "$limit" --spill-dir "$spill" --file "queries/$q.sql" --format json | wc -l; } )
    read -r ls lk < /tmp/leafe-bench-time
    sql=$("$leafe" query render "queries/$q.sql")
    /usr/bin/time -f "%e %M" -o /tmp/leafe-bench-time python3 - "$store" "$duck_limit" "$spill" <<EOF
import sys, duckdb
sys.path.insert(0, "python")
import leafe_views as lv
con = duckdb.connect()
con.execute(f"SET memory_limit = '{sys.argv[2]}'")
con.execute(f"SET temp_directory = '{sys.argv[3]}'")
con.execute("SET preserve_insertion_order = true")
lv.register_duckdb(con, sys.argv[1])
sql = """$sql""".strip().rstrip(";")
con.execute(f"COPY ({sql}) TO '/dev/null' (FORMAT CSV, HEADER)")
EOF
    read -r ds dk < /tmp/leafe-bench-time
    printf "| %sM | %s | %s | %.1f | %d MiB | %.1f | %d MiB |\n" "$m" "$q" "$rows" "$ls" $((lk / 1024)) "$ds" $((dk / 1024))
  done
done
