#!/usr/bin/env bash
# The accelerator numbers the docs still lack, in one run of about 10 minutes
# on one GPU (an H200 was the lent kind): packed sweep throughput for N up to
# 64 (docs/performance.md, docs/sweeps.md), the train step with both
# convolution forms (config.model.conv_impl 'fast' and 'standard': the
# numbers that decide the accelerator default of 'auto'), where the step's
# time goes (benchmarks/profile_step.py), the evaluation
# encoder's images/s against its FLOP rate, and the metric suite with both
# DCI backends (docs/metrics.md).
#
#   python3 -m venv .venv && . .venv/bin/activate && \
#       pip install -r requirements.txt "jax[cuda12]"
#   OUT=/tmp/device_check bash benchmarks/device_check.sh
#
# Each benchmark's output goes to $OUT/<name>.txt; a benchmark that fails or
# runs out of its time limit does not stop the others. Paste the printed
# summary lines into the docs with the date and the device.
set -uo pipefail

OUT="${OUT:-/tmp/device_check}"
mkdir -p "${OUT}"
export PYTHONUNBUFFERED=1

run() {  # name, seconds, command...
  local name=$1 limit=$2
  shift 2
  echo "== ${name} (limit ${limit} s): $*"
  { nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv || true
    python -c "import jax; print(jax.__version__, jax.devices())"
    timeout "${limit}" "$@"; echo "exit status $?"; } > "${OUT}/${name}.txt" 2>&1
  grep -E "sweep_throughput|metrics_suite|steps/s|^train_step |^encode |^part=|exit status" \
      "${OUT}/${name}.txt" | tail -20
}

run sweep_throughput 300 python benchmarks/sweep_throughput.py \
    --models=1,4,16,64 --modes=vmap,map --steps=100 --rounds=2 \
    --steps_per_dispatch=50
# One labelled line per form: "train_step steps_per_s=... conv_impl=fast ..."
# and "... conv_impl=standard ...", timed round by round side by side.
run train_step 180 python benchmarks/train_step.py \
    --config=experiments/configs/factorvae_dsprites.py --steps=200 --rounds=3 \
    --steps_per_dispatch=50 --conv_impl=fast,standard
# Where the accelerator's step time goes (each part and layer alone).
run profile_step 120 python benchmarks/profile_step.py --steps=50 --rounds=3 \
    --layers
run encode 60 python benchmarks/encode.py --images=50000 --chunks=500,5000
run metrics 300 python benchmarks/metrics.py --dci_backends=jax,numba,sklearn
