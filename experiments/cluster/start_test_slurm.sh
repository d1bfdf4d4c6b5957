#!/bin/bash
# A single-node Slurm cluster on this machine, for tests/test_slurm_cluster.py.
#
#   sudo bash experiments/cluster/start_test_slurm.sh     # as root
#
# Installs Debian's slurm-wlm and munge if they are missing, writes
# /etc/slurm/slurm.conf for this one machine (one partition, "test"), and
# starts munged, slurmctld and slurmd. Idempotent: run it again and it only
# starts what is not running (a cluster already answering sinfo with an
# idle or allocated node is left alone). For a test machine only: it runs
# the daemons as root and refuses to overwrite a slurm.conf it did not
# write.
#
# Timings are shortened so the integration test fits in a few minutes:
#   AuthInfo=cred_expire=10        a requeued job waits 10 s before it may
#                                  start again (default 120 s);
#   SchedulerParameters=sched_interval=2
#                                  pending jobs are looked at every 2 s
#                                  (default 60 s), so a requeued job starts
#                                  soon after its wait;
#   KillWait=10                    SIGKILL 10 s after a time limit's SIGTERM.
# Slurm checks time limits (and sends --signal=...@N warnings) every 30 s;
# that is compiled in.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# Written by factorvae_jax experiments/cluster/start_test_slurm.sh"
LOG_DIR=/var/log/slurm

if [[ $(id -u) -ne 0 ]]; then
  echo "error: run as root (it installs packages and starts daemons):" \
       "sudo bash $0" >&2
  exit 2
fi

cluster_up() {
  local state
  state=$(timeout 10 sinfo -h -o %T 2>/dev/null | head -1) || return 1
  [[ ${state} =~ ^(idle|mixed|allocated|completing)$ ]]
}

if command -v sinfo >/dev/null && cluster_up; then
  echo "Slurm is already up: $(sinfo -h -o '%P %T %D node(s)')"
  exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null ||
   ! command -v munged >/dev/null; then
  echo "Installing slurm-wlm and munge..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# munge: a key (the package makes one; make it if it did not), then the
# daemon, as the munge user.
if [[ ! -s /etc/munge/munge.key ]]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do
    munge -n >/dev/null 2>&1 && break
    sleep 0.1
  done
  munge -n >/dev/null || { echo "error: munged did not start" >&2; exit 1; }
fi

# slurm.conf for this machine: slurmd -C prints its CPUs and memory.
host=$(hostname -s)
if [[ -e ${CONF} ]] && ! grep -qF "${MARK}" "${CONF}"; then
  echo "error: ${CONF} exists and was not written by this script; this" \
       "script only sets up a test machine. Move it away to continue." >&2
  exit 2
fi
node_line=$(slurmd -C | head -1)
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "${LOG_DIR}"
cat >"${CONF}.new" <<EOF
${MARK}
ClusterName=factorvae-test
SlurmctldHost=${host}(127.0.0.1)
AuthType=auth/munge
CryptoType=crypto/munge
AuthInfo=cred_expire=10
SlurmUser=root
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobRequeue=1
ReturnToService=2
KillWait=10
MinJobAge=600
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
${node_line% UpTime=*} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=test Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF
mv "${CONF}.new" "${CONF}"

pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 60); do
  cluster_up && break
  # A node left down by an earlier start (e.g. the machine restarted).
  scontrol update nodename="${host}" state=resume >/dev/null 2>&1 || true
  sleep 1
done
if ! cluster_up; then
  echo "error: the node did not come up; see ${LOG_DIR}/slurmctld.log and" \
       "${LOG_DIR}/slurmd.log" >&2
  sinfo >&2 || true
  exit 1
fi
echo "Slurm is up: $(sinfo -h -o '%P %T %D node(s)')"
