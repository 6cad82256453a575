#!/usr/bin/env bash
# Peak RSS and samples/s of `leafe train` against store size: one epoch of
# RFT (every rehearsal row of the synthetic runs) from a base policy, with
# the default shuffle buffer (rows stream from SQL in bounded memory) and,
# where it fits the machine, with a buffer larger than the data (the whole
# table held as tensors, as training did before it streamed).
#
#   benches/train_memory.sh [MILLIONS_OF_STEPS...]   default 10 20 40
#   WHOLE="1 2" benches/train_memory.sh 10 20        sizes also trained whole
#   LIMIT=1G benches/train_memory.sh                 the SQL memory limit (512M)
#
# Stores are synthesised once into /tmp/leafe-bench-mem-<N>M (shared with
# benches/memory.sh); a base policy is pretrained into each once (200
# generated levels, 1 epoch: its quality does not matter here). Needs a
# release build (LEAFE_BIN overrides) and GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${*:-10 20 40}
whole=${WHOLE:-}
limit=${LIMIT:-512M}
leafe=${LEAFE_BIN:-$PWD/target/release/leafe}
[ -x "$leafe" ] || { echo "no $leafe: cargo build --release, or set LEAFE_BIN" >&2; exit 2; }
. benches/synth_store.sh
work=/tmp/leafe-bench-train
mkdir -p "$work"
[ -f "$work/levels.txt" ] || "$leafe" levels generate --size 6x6 --boxes 2 --min-pushes 5 \
    --count 200 --seed 1 --out "$work/levels.txt" >/dev/null

run() { # store, millions of steps, shuffle buffer, label
  local store=$1 m=$2 buffer=$3 how=$4
  local model="bench-rft-$(date +%s%N)"
  /usr/bin/time -f "%e %M" -o "$work/time" "$leafe" -q train --store "$store" --method rft \
      --init base --runs 'bench%' --out-model "$model" --epochs 1 --shuffle-buffer "$buffer" --memory-limit "$limit" \
      >"$work/train.log" 2>&1 || { cat "$work/train.log" >&2; return 1; }
  read -r s k < "$work/time"
  local rows
  rows=$(grep -oE '[0-9]+ rehearsal rows' "$work/train.log" | grep -oE '^[0-9]+' || echo 0)
  printf "| %sM | %s | %s | %.1f | %.0f | %d MiB |\n" "$m" "$how" "$rows" "$s" \
      "$(python3 -c "print($rows / $s)")" $((k / 1024))
}

echo "SQL memory limit $limit"
echo "| steps | training rows held | rows | s | samples/s | peak RSS |"
echo "|---:|---|---:|---:|---:|---:|"
for m in $whole $sizes; do
  store=$(synth_store "$leafe" "$m")
  if [ ! -f "$store/models/base/model.json" ]; then
    "$leafe" -q pretrain --store "$store" --levels "$work/levels.txt" --out-model base --epochs 1 >/dev/null
  fi
done
for m in $whole; do
  run "/tmp/leafe-bench-mem-${m}M" "$m" 1000000000 "all (buffer > rows)"
  run "/tmp/leafe-bench-mem-${m}M" "$m" 131072 "131,072 (default)"
done
for m in $sizes; do
  run "/tmp/leafe-bench-mem-${m}M" "$m" 131072 "131,072 (default)"
done
