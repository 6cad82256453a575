#!/usr/bin/env bash
# What a newcomer waits for: a fresh clone, a clean target directory, the
# README's main command (build + the default experiment), timed as a whole,
# with cargo's per-crate build timings.
#
#   benches/first_result.sh [PROFILE_ARGS...]    default: the README's command (dev profile)
#   benches/first_result.sh --release            the release profile instead
#
# Writes /tmp/leafe-first-result/{build.log,run.log,timings.html} and prints
# the build, run and total wall times and the peak RSS of each.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
work=/tmp/leafe-first-result
rm -rf "$work"
mkdir -p "$work"
git clone -q "$src" "$work/leafe"
cd "$work/leafe"
export CARGO_TARGET_DIR="$work/target"
t0=$(date +%s)
/usr/bin/time -f "%e %M" -o "$work/build.time" cargo build --locked --timings "$@" >"$work/build.log" 2>&1
t1=$(date +%s)
cp "$CARGO_TARGET_DIR"/cargo-timings/cargo-timing.html "$work/timings.html" 2>/dev/null || true
# Progress lines (stderr) with the second each arrived, for the first seed's.
/usr/bin/time -f "%e %M" -o "$work/run.time" cargo run --locked -q "$@" -- run --store "$work/leafe-data" \
    >"$work/run.log" 2> >(while IFS= read -r line; do echo "$(date +%s) $line"; done >"$work/progress.log")
t2=$(date +%s)
sleep 1
read -r bs bk < "$work/build.time"
read -r rs rk < "$work/run.time"
first=$(grep -m1 "done (1 of" "$work/progress.log" | cut -d' ' -f1)
echo "build: ${bs}s (peak RSS $((bk / 1024)) MiB); run: ${rs}s (peak RSS $((rk / 1024)) MiB); total $((t2 - t0))s = $(( (t2 - t0) / 60 )) min $(( (t2 - t0) % 60 )) s"
if [ -n "$first" ]; then
    echo "first seed's held-out result: $((first - t0))s after the clone = $(( (first - t0) / 60 )) min $(( (first - t0) % 60 )) s"
fi
grep -E "^\| (base|LEAFE|RFT|GRPO)" "$work/run.log" | head -8 || true
