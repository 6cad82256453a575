# Sourced by benches/memory.sh and benches/train_memory.sh: the synthetic
# store of <N> million steps both measure, synthesised once into
# /tmp/leafe-bench-mem-<N>M (about 22 steps an episode, seed 11, run ids
# `bench…`) and catalogued.
#   synth_store LEAFE_BINARY MILLIONS   prints the store's path
synth_store() {
  local leafe=$1 m=$2
  local store=/tmp/leafe-bench-mem-${m}M
  if [ ! -f "$store/_leafe/catalog.json" ]; then
    "$leafe" -q synth --store "$store" --episodes $((m * 1000000 / 22)) --seed 11 --run-id bench >/dev/null
    "$leafe" -q catalog --store "$store" 2>/dev/null
  fi
  echo "$store"
}
