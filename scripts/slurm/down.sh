#!/usr/bin/env bash
# Stop the one-node cluster that scripts/slurm/up.sh started; safe to run when it is down.
# Cancels the jobs still queued or running, stops slurmctld and slurmd (`scontrol shutdown`),
# then munged if up.sh started it.
set -uo pipefail

DIR="${LABELBENCH_SLURM_DIR:-/tmp/labelbench-slurm}"
CONF="$DIR/slurm.conf"
export SLURM_CONF="$CONF"
PATH="$PATH:/usr/sbin:/sbin"

say() { echo "slurm/down.sh: $*" >&2; }
sudo=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; fi

# A process counts as running while it exists and is not a zombie (daemons that were
# started from a shell which has not reaped them linger as zombies).
alive() {
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "$state" != "Z" ]
}

# Stop the process named in a pid file, by its id: optionally TERM it first, then wait up to
# 10 s for it to exit, then TERM it (again).
stop_pid() {
  local name="$1" pidfile="$2" term="$3" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile" 2>/dev/null)"
  if [ -n "$pid" ] && alive "$pid"; then
    [ "$term" = term ] && { $sudo kill "$pid" 2>/dev/null || true; }
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.2; done
    if alive "$pid"; then
      say "$name ($pid) still running after 10 s; sending TERM"
      $sudo kill "$pid" 2>/dev/null || true
    fi
  fi
  $sudo rm -f "$pidfile"
}

if [ -f "$CONF" ]; then
  if command -v scontrol >/dev/null 2>&1 && scontrol ping >/dev/null 2>&1; then
    # A test cluster's jobs go with it: left queued, they would start at the next up.sh.
    jobs="$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')"
    if [ -n "${jobs// /}" ]; then
      # shellcheck disable=SC2086
      $sudo env SLURM_CONF="$CONF" scancel $jobs && say "cancelled jobs: $jobs"
      sleep 1
    fi
    $sudo env SLURM_CONF="$CONF" scontrol shutdown >/dev/null 2>&1 \
      && say "scontrol shutdown" || say "scontrol shutdown failed; stopping by pid"
  fi
  stop_pid slurmctld "$DIR/slurmctld.pid" wait
  stop_pid slurmd "$DIR/slurmd.pid" wait
fi
if [ -f "$DIR/munged.started" ]; then
  stop_pid munged /run/munge/munged.pid term
  $sudo rm -f "$DIR/munged.started"
  say "munged stopped"
fi
say "down"
