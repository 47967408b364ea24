#!/usr/bin/env bash
# Starts a single-node Slurm cluster on loopback for the cluster test (cargo xtask slurm-test):
# installs Debian's slurm-wlm and munge if missing, writes slurm.conf, starts munged,
# slurmctld and slurmd, and waits until `sinfo` shows the node idle. Needs root.
# Idempotent: a cluster already up is left as it is. Exits non-zero, saying why, otherwise.
set -euo pipefail

CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm
WAIT_S=${SLURM_UP_WAIT_S:-60}

say() { printf 'slurm-up: %s\n' "$*" >&2; }
fail() {
  say "FAILED: $*"
  for log in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" /var/log/munge/munged.log; do
    if [ -s "$log" ]; then
      say "--- last lines of $log"
      tail -n 15 "$log" >&2
    fi
  done
  exit 1
}
since() { echo "$(($(date +%s) - $1)) s"; }

[ "$(id -u)" = 0 ] || fail "needs root (installs packages, starts daemons)"
T0=$(date +%s)

node_state() { sinfo -h -N -n localhost -o %T 2>/dev/null | head -n 1; }

if command -v sinfo >/dev/null 2>&1 && [ "$(node_state)" = idle ]; then
  say "already up: node localhost idle"
  exit 0
fi

# 1. Packages.
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
  || ! command -v sbatch >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || fail "slurm-wlm is not installed and there is no apt-get"
  say "installing slurm-wlm and munge (apt)"
  export DEBIAN_FRONTEND=noninteractive
  # No init system runs the daemons here: keep package scripts from starting services.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq || fail "apt-get update failed (no package mirror reachable?)"
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null \
    || fail "apt-get install slurm-wlm munge failed"
  rm -f /usr/sbin/policy-rc.d
  trap - EXIT
  say "installed in $(since "$T0"): $(slurmctld -V)"
fi

# 2. Munge: a key, then the daemon (as the munge user).
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  if command -v mungekey >/dev/null 2>&1; then
    mungekey --create --keyfile=/etc/munge/munge.key --force
  else
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- munged || fail "munged did not start"
  for _ in $(seq 1 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.1
  done
  munge -n | unmunge >/dev/null 2>&1 || fail "munge credentials do not round-trip"
fi

# 3. slurm.conf: one node (this machine, on loopback), one partition, no cgroups/accounting.
CPUS=$(nproc)
install -d -m 0755 "$CONF_DIR" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd
cat >"$CONF_DIR/slurm.conf" <<EOF
# Written by .ci/slurm-up.sh: a single-node test cluster on loopback.
ClusterName=siamese-ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
KillWait=10
MinJobAge=300
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

# 4. The daemons (each forks into the background).
if ! scontrol ping 2>/dev/null | grep -q UP; then
  slurmctld || fail "slurmctld did not start"
fi
if ! pgrep -x slurmd >/dev/null 2>&1; then
  slurmd -N localhost || fail "slurmd did not start"
fi

# 5. Wait for the node to be idle (resume it once if it registered down or drained).
resumed=no
deadline=$(($(date +%s) + WAIT_S))
state=""
while [ "$(date +%s)" -lt "$deadline" ]; do
  state=$(node_state || true)
  case "$state" in
    idle) say "up in $(since "$T0"): node localhost idle, $CPUS CPUs, partition debug"; exit 0 ;;
    down* | drain* | *\*)
      if [ "$resumed" = no ]; then
        scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
        resumed=yes
      fi ;;
  esac
  sleep 0.5
done
fail "node localhost is '${state:-unknown}' after ${WAIT_S} s, expected idle"
