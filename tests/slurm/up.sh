#!/bin/bash
# A real single-node Slurm cluster on this machine, for the tests marked `slurm`:
#   tests/slurm/up.sh STATE_DIR    installs slurmctld, slurmd, slurm-client and munge with apt-get
#                                  where they are missing, writes STATE_DIR/slurm.conf (this node's
#                                  CPUs and memory), starts munged, slurmctld and slurmd, and waits
#                                  until sinfo shows the node idle
#   tests/slurm/up.sh STATE_DIR stop   stops what it started
# Commands then need SLURM_CONF=STATE_DIR/slurm.conf; no file under /etc/slurm is written.
# Needs root. Exits 3 with one line on stderr when it cannot (the tests then skip).
set -euo pipefail
state=$(realpath -m "${1:?usage: up.sh STATE_DIR [stop]}")
export SLURM_CONF=$state/slurm.conf

if [ "${2:-}" = stop ]; then
  for pidfile in "$state"/slurmd.pid "$state"/slurmctld.pid "$state"/munged.pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  exit 0
fi

cannot() { echo "cannot start a Slurm cluster: $*" >&2; exit 3; }
[ "$(id -u)" = 0 ] || cannot "needs root (to install packages and run slurmd)"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null ||
   ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || cannot "slurmctld/slurmd/munge are missing and there is no apt-get"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      slurmctld slurmd slurm-client munge; } >"$state.apt.log" 2>&1 ||
    cannot "apt-get install slurmctld slurmd slurm-client munge failed (see $state.apt.log)"
fi

mkdir -p "$state"/{ctld,d,log}
host=$(hostname -s)
cpus=$(nproc)
memory=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 9 / 10 ))  # MB, 10% for the OS
cat > "$SLURM_CONF" <<CONF
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=${SLURMCTLD_PORT:-6817}
SlurmdPort=${SLURMD_PORT:-6818}
AuthType=auth/munge
AuthInfo=cred_expire=10	# a requeued job waits this long before it starts again (default 120 s)
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
KillWait=10
MinJobAge=10
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  mkdir -p /run/munge && chown munge:munge /run/munge
  runuser -u munge -- munged 2>/dev/null || munged --force || cannot "munged does not start"
  cp /run/munge/munged.pid "$state/munged.pid"  # started here, so stopped here
fi
slurmctld -f "$SLURM_CONF" || cannot "slurmctld does not start (see $state/log/slurmctld.log)"
slurmd -f "$SLURM_CONF" || cannot "slurmd does not start (see $state/log/slurmd.log)"
for _ in $(seq 120); do
  [ "$(sinfo -h -N -o %T 2>/dev/null)" = idle ] && exit 0
  sleep 1
done
cannot "the node is not idle after 2 minutes: $(sinfo -h -N -o '%T %E' 2>&1)"
