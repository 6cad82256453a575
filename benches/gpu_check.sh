#!/usr/bin/env bash
# A GPU build checked against the CPU build: the same behaviour cloning and
# the same held-out evaluation, run by each binary on its own device; prints
# each one's result lines (loss, Pass@k) and wall time. The figures agree up
# to the order of floating-point sums (a GPU adds in another order), so the
# losses match to about 3 decimals and Pass@k to within sampling noise.
#
#   benches/gpu_check.sh GPU_BIN [CPU_BIN]
#
# GPU_BIN: a binary built with `--features vulkan` (or `cuda`); CPU_BIN
# defaults to target/release/leafe. With the vulkan feature, the device is
# the Vulkan adapter wgpu ranks first (CUBECL_WGPU_DEFAULT_DEVICE picks
# another, e.g. `DiscreteGpu(1)`). Debian 12's software Vulkan (Mesa 22.3's
# lavapipe) crashes compiling the first kernel: use a GPU's own driver.
#
# LEVELS (default 300) training levels and EVAL (default 50) held-out levels,
# 6×6 with 2 boxes; EPOCHS (default 2).
set -euo pipefail
gpu=${1:?usage: benches/gpu_check.sh GPU_BIN [CPU_BIN]}
cpu=${2:-target/release/leafe}
work=$(mktemp -d /tmp/leafe-gpu-check.XXXXXX)
"$cpu" levels generate --size 6x6 --boxes 2 --min-pushes 5 --count "${LEVELS:-300}" --seed 1 \
    --out "$work/train.txt" >/dev/null
"$cpu" levels generate --size 6x6 --boxes 2 --min-pushes 5 --count "${EVAL:-50}" --seed 2 \
    --out "$work/test.txt" >/dev/null
for side in cpu gpu; do
    bin=${!side}
    echo "== $side: $bin"
    t0=$(date +%s.%N)
    "$bin" pretrain --store "$work/$side" --levels "$work/train.txt" --out-model base \
        --epochs "${EPOCHS:-2}" --seed 1 --eval-levels "$work/test.txt" --eval-samples 16 2>&1 \
        | grep -v -E '^\s*$' | tail -4
    echo "$side wall: $(echo "$(date +%s.%N) - $t0" | bc) s"
done
rm -rf "$work"
