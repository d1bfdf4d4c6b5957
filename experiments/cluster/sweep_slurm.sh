#!/bin/bash
# A sweep as a Slurm job array: each array task trains its share of the runs.
#
#   sbatch --array=0-9 experiments/cluster/sweep_slurm.sh
#   SWEEP=experiments/sweeps/dlib_study.py:seeds=5 SWEEP_DIR=runs/dlib \
#       sbatch --array=0-29 experiments/cluster/sweep_slurm.sh
#
# Edit the #SBATCH lines for your cluster (partition, GPUs, time). The task
# index and count come from SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT; the
# array must be a contiguous range (0-9, not 0-9:2). Submitting the same
# array again (or any task twice) is safe: finished runs are skipped,
# partial ones resume, and a run being trained elsewhere is left alone.
#
# Preemption and time limits: Slurm sends SIGTERM (here also 120 s before
# the time limit, --signal). The sweep checkpoints the runs in flight and
# exits 75; this script then requeues its own array task, which resumes.
#
#SBATCH --job-name=factorvae-sweep
#SBATCH --array=0-9
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --signal=B:TERM@120
#SBATCH --output=slurm-%A_%a.out

set -uo pipefail

SWEEP="${SWEEP:-experiments/sweeps/factorvae_study.py}"
SWEEP_DIR="${SWEEP_DIR:-runs/factorvae_study}"
# Runs packed into one program per GPU (docs/sweeps.md, "Packing"); empty =
# the platform's default (16 on a GPU).
RUNS_PER_GROUP="${RUNS_PER_GROUP:-}"
EXIT_RESUMABLE=75

cd "${SLURM_SUBMIT_DIR:-.}"
# shellcheck disable=SC1091
source .venv/bin/activate

# Python runs in the background so this shell can pass SIGTERM on (with
# B:TERM Slurm signals the batch shell only) and requeue afterwards.
python -m experiments.sweep --sweep="${SWEEP}" --sweep_dir="${SWEEP_DIR}" \
    ${RUNS_PER_GROUP:+--runs_per_group="${RUNS_PER_GROUP}"} &
child=$!
trap 'kill -TERM "${child}" 2>/dev/null' TERM INT
wait "${child}"
status=$?
# A trapped signal interrupts the first wait; wait again for the real status.
if kill -0 "${child}" 2>/dev/null; then
  wait "${child}"
  status=$?
fi

if [[ ${status} -eq ${EXIT_RESUMABLE} ]]; then
  echo "Task ${SLURM_ARRAY_TASK_ID:-?} stopped with its runs checkpointed;" \
       "requeueing it to resume."
  scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
fi
exit "${status}"
