#!/usr/bin/env bash
# On a machine with CUDA GPUs: run the showcase graphs on one GPU, then on every GPU, and print per-device
# utilisation (sampled by nvidia-smi) and the speedup of all GPUs over one. Needs the Hub (real model ids) or the
# weights already in the Hugging Face cache. Usage: bench/gpu_check.sh [graph.json ...]
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE
NODEFORGE=${NODEFORGE:-.venv/bin/nodeforge}
command -v nvidia-smi >/dev/null || { echo "gpu_check: nvidia-smi not found: this machine has no CUDA GPU" >&2; exit 1; }
mapfile -t GPUS < <(nvidia-smi --query-gpu=index --format=csv,noheader)
[ "${#GPUS[@]}" -gt 0 ] || { echo "gpu_check: no GPU listed by nvidia-smi" >&2; exit 1; }
ALL=$(printf 'cuda:%s,' "${GPUS[@]}"); ALL=${ALL%,}
GRAPHS=("$@")
[ "${#GRAPHS[@]}" -gt 0 ] || mapfile -t GRAPHS < <(ls graphs/showcase-*.json)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

run_all() {  # $1 = device list, $2 = label; prints wall seconds
  local devices=$1 label=$2 start end
  nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 200 \
    > "$WORK/util-$label.csv" &
  local sampler=$!
  start=$(date +%s.%N)
  for graph in "${GRAPHS[@]}"; do
    "$NODEFORGE" run "$graph" --devices "$devices" --no-cache --json --data-dir "$WORK/data" \
      --out "$WORK/out-$label" > "$WORK/record-$label-$(basename "$graph")" \
      || echo "gpu_check: $graph failed on $devices (see $WORK/record-$label-$(basename "$graph"))" >&2
  done
  end=$(date +%s.%N)
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  echo "$end - $start" | bc
}

echo "warming the model cache (first loads are not timed)"
run_all "cuda:${GPUS[0]}" warm > /dev/null
one=$(run_all "cuda:${GPUS[0]}" one)
all=$(run_all "$ALL" all)
echo "showcase graphs: ${GRAPHS[*]}"
printf 'one GPU (cuda:%s): %.2f s\n' "${GPUS[0]}" "$one"
printf 'all GPUs (%s): %.2f s   speedup %.2fx\n' "$ALL" "$all" "$(echo "$one / $all" | bc -l)"
for label in one all; do
  echo "per-device utilisation, $label:"
  awk -F', ' '{n[$1]++; u[$1]+=$2; if ($3>m[$1]) m[$1]=$3} END {for (d in n) printf "  cuda:%s  mean util %5.1f%%  peak memory %6d MiB\n", d, u[d]/n[d], m[d]}' \
    "$WORK/util-$label.csv" | sort
done

# Memory modes: peak VRAM and seconds per picture at SDXL size (1024x1024) in each --memory-mode, one fresh process
# per mode. tiny/sdxl by default (offline: the activations of a full-size picture over tiny weights); set
# MEMORY_MODEL to a real model (e.g. sdxl-turbo, weights in the cache) to see the weights' share too.
echo "memory modes on cuda:${GPUS[0]}:"
NODEFORGE_DATA_DIR="$WORK/data" "${PYTHON:-.venv/bin/python}" bench/memory_modes.py --device "cuda:${GPUS[0]}" \
  --model "${MEMORY_MODEL:-tiny/sdxl}" --size 1024 \
  || echo "gpu_check: the memory-mode measurement failed" >&2
