#!/usr/bin/env bash
# The model path on a GPU: vLLM with and without automatic prefix caching, measured through
# `switchboard serve --backend openai` (python -m eval.bench openai).
#
#   eval/bench/gpu.sh /path/to/Qwen2.5-7B-Instruct [served-name]
#
# Needs: an NVIDIA GPU with a working driver, `pip install vllm` in the active Python (or
# VLLM="docker run --gpus all ... vllm/vllm-openai:v0.11.0" style command in $VLLM), the model's
# weights in a local directory (no hub download: HF_HUB_OFFLINE=1), and this repo's .venv.
# Writes eval/out/gpu/{cached,uncached}.json and prints both tables; copy them to
# docs/performance.md with the GPU model and driver from nvidia-smi.
set -euo pipefail

MODEL_DIR=${1:?usage: eval/bench/gpu.sh MODEL_DIR [SERVED_NAME]}
NAME=${2:-qwen2.5-7b-instruct}
PORT=${PORT:-8011}
VLLM=${VLLM:-python -m vllm.entrypoints.openai.api_server}
OUT=eval/out/gpu
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1

command -v nvidia-smi >/dev/null || { echo "no nvidia-smi: this needs a GPU machine" >&2; exit 2; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"

run() {  # $1 = label, rest = extra vLLM flags
  local label=$1; shift
  # shellcheck disable=SC2086  # $VLLM is a command line on purpose
  $VLLM --model "$MODEL_DIR" --served-model-name "$NAME" --host 127.0.0.1 --port "$PORT" \
    --max-model-len 2048 --max-logprobs 20 --enable-prompt-tokens-details "$@" \
    >"$OUT/vllm-$label.log" 2>&1 &
  local pid=$!
  trap 'kill $pid 2>/dev/null || true' EXIT
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null && break
    kill -0 "$pid" 2>/dev/null || { tail -50 "$OUT/vllm-$label.log"; exit 1; }
    sleep 1
  done
  SWITCHBOARD_OPENAI_CACHE_PROMPT=false .venv/bin/python -m eval.bench openai --long \
    --openai-base-url "http://127.0.0.1:$PORT/v1" --openai-model "$NAME" | tee "$OUT/$label.txt"
  head -1 "$OUT/$label.txt" >"$OUT/$label.json"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  trap - EXIT
}

run cached --enable-prefix-caching
run uncached --no-enable-prefix-caching
