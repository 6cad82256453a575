#!/usr/bin/env bash
# Steps/s and rollback-by-replay cost per adapter, through leafe and without
# it. Needs a Python with openenv-core, gymnasium, minigrid and scienceworld
# ($LEAFE_ENVS_PYTHON; .ci/run shows the install) and Java.
#
#   LEAFE_ENVS_PYTHON=~/.cache/leafe-envs-venv/bin/python benches/adapters.sh [STEPS]
#
# Prints `leafe …` lines (benches/adapters.rs: the adapters as leafe's Env)
# and `direct …` lines (benches/adapters_direct.py: the same environments
# in-process, and OpenEnv through openenv-core's own Python client). The
# difference per step between `leafe` and `direct … in-process` is what the
# transport and leafe add to the environment's own time.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${LEAFE_ENVS_PYTHON:-python3}"
steps="${1:-2000}"
port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http_port=$(port); ws_port=$(port)
"$python" tests/fixtures/openenv_corridor.py --port "$http_port" --sessions shared >/dev/null 2>&1 &
http_pid=$!
"$python" tests/fixtures/openenv_corridor.py --port "$ws_port" --sessions 4 >/dev/null 2>&1 &
ws_pid=$!
trap 'kill $http_pid $ws_pid 2>/dev/null || true' EXIT
for p in "$http_port" "$ws_port"; do
  for _ in $(seq 1 200); do
    curl -fsS -o /dev/null "http://127.0.0.1:$p/health" 2>/dev/null && break
    sleep 0.1
  done
done
echo "== machine: $(nproc) cores, $(uname -m); $(date -u +%Y-%m-%dT%H:%MZ)"
ADAPTER_STEPS="$steps" LEAFE_ENVS_PYTHON="$python" \
ADAPTER_SPECS="openenv:http://127.0.0.1:$http_port#4|openenv:ws://127.0.0.1:$ws_port#4|gym:FrozenLake-v1?is_slippery=false#0|scienceworld:--simplifications easy#find-animal:0#$((steps / 10))" \
  cargo bench --bench adapters ${CARGO_BENCH_FLAGS:-}
"$python" benches/adapters_direct.py --steps "$steps" --ws-port "$ws_port" 2>/dev/null
