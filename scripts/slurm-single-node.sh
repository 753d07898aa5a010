#!/usr/bin/env bash
# A one-node SLURM "cluster" on this machine, for testing the slurm profile (tests/slurm/).
#
#   scripts/slurm-single-node.sh start    # install slurm-wlm + munge if absent, start munged, slurmctld, slurmd
#   scripts/slurm-single-node.sh stop     # cancel its jobs, kill exactly the daemons `start` started
#   scripts/slurm-single-node.sh status   # what `start` recorded, and whether it is still alive
#
# Debian (apt) and root only. No systemd, no cgroups, no accounting database (use
# `--slurm-status-command squeue`). GPUs are fake: dummy character devices listed in gres.conf, so
# that `--gpus`/`--gres` requests are scheduled (jobs see CUDA_VISIBLE_DEVICES, no real device).
# The node claims the CPUs this process may use (nproc) and 90 % of the memory.
#
# Both commands are idempotent: `start` on a running cluster that it started does nothing; `stop`
# without a record does nothing. `start` records every PID and device file it created in
# $SLURM_TEST_STATE/started; `stop` kills those PIDs only (after checking each one's name).
#
# Settings (environment): SLURM_TEST_PARTITION (debug), SLURM_TEST_GPUS (2),
# SLURM_TEST_STATE (/var/lib/pose-study-slurm: record, spool, logs).
set -euo pipefail

PARTITION=${SLURM_TEST_PARTITION:-debug}
NGPU=${SLURM_TEST_GPUS:-2}
STATE=${SLURM_TEST_STATE:-/var/lib/pose-study-slurm}
RECORD=$STATE/started
CONF=/etc/slurm/slurm.conf
GRES_CONF=/etc/slurm/gres.conf
MARK="# written by pose_study scripts/slurm-single-node.sh"
PIDDIR=/run/slurm

die() { echo "slurm-single-node: $*" >&2; exit 1; }
say() { echo "slurm-single-node: $*"; }

require_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (installs packages, writes /etc/slurm, starts daemons); uid is $(id -u)"
}

alive() {  # alive NAME PID: PID runs (not a zombie) and is NAME (a recycled PID is not ours)
  [ -n "$2" ] && [ -r "/proc/$2/status" ] && [ "$(cat "/proc/$2/comm" 2>/dev/null)" = "$1" ] \
    && ! grep -q '^State:[[:space:]]*Z' "/proc/$2/status" 2>/dev/null
}

live_pids() {  # live_pids NAME: running processes called NAME
  local pid
  for pid in $(pgrep -x "$1"); do alive "$1" "$pid" && echo "$pid"; done
  return 0
}

recorded_alive() {  # every daemon in the record is still running
  [ -s "$RECORD" ] || return 1
  local kind name pid
  while read -r kind name pid; do
    [ "$kind" = pid ] || continue
    alive "$name" "$pid" || return 1
  done < "$RECORD"
}

install_packages() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null && return 0
  command -v apt-get >/dev/null || die "slurm-wlm/munge are not installed and apt-get is unavailable (not Debian?)"
  say "installing slurm-wlm and munge"
  apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null \
    || die "apt-get install slurm-wlm munge failed"
}

refuse_foreign_daemons() {
  local name pids
  for name in munged slurmctld slurmd; do
    pids=$(live_pids "$name" | tr '\n' ' ')
    [ -z "$pids" ] || die "$name is already running (pid ${pids% }) and was not started by this script; stop it first"
  done
}

write_file_if_ours() {  # write_file_if_ours PATH CONTENT: never overwrite a config someone else wrote
  if [ -e "$1" ] && ! head -1 "$1" | grep -qxF "$MARK"; then
    die "$1 exists and was not written by this script; move it away first"
  fi
  printf '%s\n%s\n' "$MARK" "$2" > "$1"
}

start_munged() {
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged || die "munged did not start"
  record_pid munged /run/munge/munged.pid
  munge -n | unmunge >/dev/null || die "munge credentials do not round-trip"
}

make_fake_gpus() {
  local i dev
  for i in $(seq 0 $((NGPU - 1))); do
    dev=/dev/fakegpu$i
    [ -e "$dev" ] && continue
    mknod "$dev" c 1 3 || die "cannot create $dev (mknod not permitted here?)"
    echo "dev $dev" >> "$RECORD"
  done
}

node_line() {  # the node as slurmd sees it, with CPUs capped at what this process may use
  local host=$1 detected cpus nproc mem
  detected=$(slurmd -C | head -1)
  cpus=$(sed -nE 's/.* CPUs=([0-9]+).*/\1/p' <<< "$detected")
  mem=$(( $(sed -nE 's/.*RealMemory=([0-9]+).*/\1/p' <<< "$detected") * 9 / 10 ))
  nproc=$(nproc)
  if [ "$nproc" -lt "$cpus" ]; then
    echo "NodeName=$host CPUs=$nproc RealMemory=$mem"
  else
    echo "$(sed -E 's/ RealMemory=[0-9]+//' <<< "$detected") RealMemory=$mem"
  fi
}

write_config() {
  local host
  host=$(hostname)
  install -d -o slurm -g slurm "$STATE/slurmctld" "$STATE/log" "$PIDDIR"
  install -d "$STATE/slurmd"
  rm -rf "${STATE:?}/slurmctld/"*  # a clean controller: no jobs or job ids from an earlier start
  write_file_if_ours "$CONF" "ClusterName=pose-study-test
SlurmctldHost=$host
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$PIDDIR/slurmctld.pid
SlurmdPidFile=$PIDDIR/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=300
KillWait=30
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
GresTypes=gpu
$(node_line "$host") Gres=gpu:$NGPU State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP"
  write_file_if_ours "$GRES_CONF" "NodeName=$host Name=gpu File=/dev/fakegpu[0-$((NGPU - 1))]"
}

record_pid() {  # record_pid NAME PIDFILE: wait for the daemon's pid file, then record it
  local _
  for _ in $(seq 50); do
    if [ -s "$2" ] && alive "$1" "$(cat "$2")"; then
      echo "pid $1 $(cat "$2")" >> "$RECORD"
      return 0
    fi
    sleep 0.2
  done
  die "$1 did not start (no live pid in $2; see $STATE/log/)"
}

wait_for_idle_node() {
  local _
  for _ in $(seq 30); do
    sinfo -h -o %T 2>/dev/null | grep -qx idle && return 0
    sleep 1
  done
  sinfo -R >&2 || true
  tail -5 "$STATE/log/slurmd.log" "$STATE/log/slurmctld.log" >&2 || true
  die "the node did not become idle within 30 s"
}

start() {
  require_root
  if recorded_alive; then
    say "already running (started earlier by this script; see $RECORD)"
    return 0
  fi
  [ -e "$RECORD" ] && stop  # a half-dead earlier start: clean it up first
  install_packages
  refuse_foreign_daemons
  install -d "$STATE"
  : > "$RECORD"
  trap 'undo_failed_start $?' EXIT
  start_munged
  make_fake_gpus
  write_config
  /usr/sbin/slurmctld || die "slurmctld did not start (see $STATE/log/slurmctld.log)"
  record_pid slurmctld "$PIDDIR/slurmctld.pid"
  /usr/sbin/slurmd || die "slurmd did not start (see $STATE/log/slurmd.log)"
  record_pid slurmd "$PIDDIR/slurmd.pid"
  wait_for_idle_node
  trap - EXIT
  sinfo -N -o "%N %P %c %m %G %T"
}

cancel_jobs() {
  local ctld_pid
  ctld_pid=$(awk '$1 == "pid" && $2 == "slurmctld" {print $3}' "$RECORD")
  alive slurmctld "$ctld_pid" || return 0
  squeue -h -o %i 2>/dev/null | xargs -r scancel --full 2>/dev/null || true
  local _
  for _ in $(seq 20); do
    [ -z "$(squeue -h -t RUNNING,COMPLETING,PENDING -o %i 2>/dev/null)" ] && return 0
    sleep 0.5
  done
}

kill_recorded() {  # slurmd, slurmctld, munged: the reverse of the order they were started in
  local name pid _
  tac "$RECORD" | while read -r kind name pid; do
    [ "$kind" = pid ] || continue
    alive "$name" "$pid" || continue
    kill "$pid"
    for _ in $(seq 50); do alive "$name" "$pid" || break; sleep 0.2; done
    alive "$name" "$pid" && kill -9 "$pid"
    for _ in $(seq 50); do [ -e "/proc/$pid" ] || break; sleep 0.2; done  # until init has reaped it
    echo "stopped $name (pid $pid)"
  done
}

undo_failed_start() {  # EXIT trap during `start`: leave nothing half-started behind
  trap - EXIT
  [ "$1" -eq 0 ] && return 0
  echo "slurm-single-node: start failed; stopping what it started" >&2
  stop >&2 || true
  exit "$1"
}

stop() {
  require_root
  if [ ! -e "$RECORD" ]; then
    say "nothing to stop (no $RECORD)"
    return 0
  fi
  cancel_jobs
  kill_recorded
  awk '$1 == "dev" {print $2}' "$RECORD" | xargs -r rm -f
  rm -f "$RECORD"
}

status() {
  [ -s "$RECORD" ] || { say "not started by this script"; return 1; }
  cat "$RECORD"
  recorded_alive && say "running" || { say "recorded, but not every daemon is alive"; return 1; }
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: $0 start|stop|status" ;;
esac
