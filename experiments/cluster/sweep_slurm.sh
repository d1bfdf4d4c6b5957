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
# exits 75; this script then requeues its own array task, which resumes
# after Slurm's requeue delay (AuthInfo=cred_expire, 120 s by default). A
# signal that arrives while Python is still starting (before the sweep's
# handler is installed) kills it with nothing new to save; the task is
# requeued then too. The log (--output) is appended to, so it keeps every
# attempt. tests/test_slurm_cluster.py runs this script on a real cluster.
#
# Claims: on (the default) wherever the sweep dir has hard links; a task
# waits for runs of its share that another process holds (--wait_for_claimed:
# after a lost node, until the dead holder's claim is stale, --claim_timeout_s
# = 600 s), so it ends only when its share is done. CLAIMS=off
# for a sweep dir without them (a bucket mount): safe here only because the
# array runs at most one live instance of each task and nothing else trains
# in the sweep dir (docs/sweeps.md, "Claims").
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
#SBATCH --open-mode=append

set -uo pipefail

SWEEP="${SWEEP:-experiments/sweeps/factorvae_study.py}"
SWEEP_DIR="${SWEEP_DIR:-runs/factorvae_study}"
# Runs packed into one program per GPU (docs/sweeps.md, "Packing"); empty =
# the platform's default (16 on a GPU).
RUNS_PER_GROUP="${RUNS_PER_GROUP:-}"
CLAIMS="${CLAIMS:-on}"
VENV="${VENV:-.venv}"
EXIT_RESUMABLE=75
# This array task, or the job itself when submitted without --array.
TASK_JOB="${SLURM_ARRAY_JOB_ID:-${SLURM_JOB_ID:-}}${SLURM_ARRAY_TASK_ID:+_${SLURM_ARRAY_TASK_ID}}"

cd "${SLURM_SUBMIT_DIR:-.}" || exit 1
# shellcheck disable=SC1091
source "${VENV}/bin/activate" || exit 1
echo "Task ${TASK_JOB} starting on $(hostname) (attempt" \
     "$(( ${SLURM_RESTART_COUNT:-0} + 1 ))) at $(date -u +%FT%TZ)."

# Python runs in the background so this shell can pass SIGTERM on (with
# B:TERM Slurm signals the batch shell only) and requeue afterwards.
python -m experiments.sweep --sweep="${SWEEP}" --sweep_dir="${SWEEP_DIR}" \
    --claims="${CLAIMS}" --wait_for_claimed \
    ${RUNS_PER_GROUP:+--runs_per_group="${RUNS_PER_GROUP}"} &
child=$!
forwarded=0
forward() {
  echo "Task ${TASK_JOB}: $1 received at $(date -u +%FT%TZ); passing it" \
       "on to the sweep."
  forwarded=1
  interrupted=1
  kill -"$1" "${child}" 2>/dev/null
}
trap 'forward TERM' TERM
trap 'forward INT' INT
# A trapped signal ends `wait` early (status > 128) while the sweep still
# saves; wait again until it has really exited. Bash keeps the status of a
# child it has already reaped, so the last `wait` returns the sweep's own.
while :; do
  interrupted=0
  wait "${child}"
  status=$?
  [[ ${interrupted} -eq 1 ]] || break
done

if [[ ${status} -eq ${EXIT_RESUMABLE} ]] ||
   [[ ${forwarded} -eq 1 && ${status} -gt 128 ]]; then
  echo "Task ${TASK_JOB} stopped (status ${status}); requeueing it to resume" \
       "from its checkpoints."
  scontrol requeue "${TASK_JOB}"
fi
exit "${status}"
