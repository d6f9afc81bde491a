#!/usr/bin/env bash
# A real single-node Slurm cluster (Debian 12's Slurm 22.05 + munge + slurmdbd/MariaDB for sacct), for the
# slurm-marked tests and CI. No systemd: every daemon runs in the foreground under setsid, its pid recorded
# in $STATE, and `down` stops exactly those pids.
#   scripts/slurm-cluster.sh up      install (first time, as root) and start; idempotent
#   scripts/slurm-cluster.sh down    cancel jobs, stop the daemons this script started
#   scripts/slurm-cluster.sh status  print what runs; exit 0 only when the node is usable
set -uo pipefail

STATE=${VIRTUE_SLURM_STATE:-/run/virtue-slurm}
CLUSTER=virtue
PKGS=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
# Order matters: started left to right, stopped right to left.
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)

log() { echo "slurm-cluster: $*" >&2; }
die() {
  log "cannot continue: $*"
  exit 1
}

# wait_for SECONDS DESCRIPTION CMD...: poll CMD every 0.1 s until it succeeds.
wait_for() {
  local limit=$1 what=$2
  shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || return 1
    sleep 0.1
  done
  log "$what ready"
}

pid_alive() { # pid_alive NAME: the recorded pid still runs the expected program (pids are recycled)
  local f="$STATE/$1.pid" pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]
}

start() { # start NAME CMD...: run in its own session, remember the pid
  local name=$1
  shift
  if pid_alive "$name"; then
    return 0
  fi
  setsid "$@" >>"$STATE/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
}

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null &&
    command -v munged >/dev/null && command -v slurmdbd >/dev/null && command -v mariadbd >/dev/null; then
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "Slurm is not installed and installing it needs root"
  command -v apt-get >/dev/null || die "Slurm is not installed and this is not a Debian system (no apt-get)"
  log "installing ${PKGS[*]} (apt-get)"
  # Package scripts try to start services; with no init system a policy-rc.d exiting 101 keeps them quiet.
  local policy=/usr/sbin/policy-rc.d had_policy=0
  [ -e $policy ] && had_policy=1
  if [ $had_policy = 0 ]; then
    printf '#!/bin/sh\nexit 101\n' >$policy
    chmod 755 $policy
  fi
  local ok=0
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$STATE/apt.log" 2>&1 &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >>"$STATE/apt.log" 2>&1 ||
    ok=1
  [ $had_policy = 0 ] && rm -f $policy
  [ $ok = 0 ] || die "apt-get failed (see $STATE/apt.log): $(tail -n 3 "$STATE/apt.log" | tr '\n' ' ')"
}

write_config() {
  local host cpus boards sockets cores threads mem
  host=$(hostname -s)
  getent hosts "$host" >/dev/null || echo "127.0.0.1 $host" >>/etc/hosts
  # slurmd -C prints this node's real layout; RealMemory must not exceed what it reports.
  local probe
  probe=$(slurmd -C 2>/dev/null | head -n 1) || die "slurmd -C failed"
  cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$probe")
  boards=$(sed -n 's/.*Boards=\([0-9]*\).*/\1/p' <<<"$probe")
  sockets=$(sed -n 's/.*SocketsPerBoard=\([0-9]*\).*/\1/p' <<<"$probe")
  cores=$(sed -n 's/.*CoresPerSocket=\([0-9]*\).*/\1/p' <<<"$probe")
  threads=$(sed -n 's/.*ThreadsPerCore=\([0-9]*\).*/\1/p' <<<"$probe")
  mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$probe")
  [ -n "$cpus" ] && [ -n "$mem" ] || die "cannot parse slurmd -C output: $probe"
  local defmem=$((mem / cpus / 2))
  ((defmem > 0)) || defmem=1
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
  cat >/etc/slurm/slurm.conf.new <<EOF
# Written by scripts/slurm-cluster.sh: a single-node test cluster.
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$defmem
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
SlurmctldPidFile=$STATE/slurmctld.daemon.pid
SlurmdPidFile=$STATE/slurmd.daemon.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
MinJobAge=300
KillWait=5
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus Boards=${boards:-1} SocketsPerBoard=${sockets:-1} CoresPerSocket=${cores:-$cpus} ThreadsPerCore=${threads:-1} RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  mv /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf
  (
    umask 077
    cat >/etc/slurm/slurmdbd.conf <<EOF
# Written by scripts/slurm-cluster.sh
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
PidFile=$STATE/slurmdbd.daemon.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=root
EOF
  )
  chmod 600 /etc/slurm/slurmdbd.conf
}

setup_munge() {
  mkdir -p /run/munge /var/lib/munge /var/log/munge /etc/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge /etc/munge
  chmod 0755 /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0600 /etc/munge/munge.key
}

node_idle() { sinfo -h -N -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; }
port_open() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

all_running() {
  local name
  for name in "${DAEMONS[@]}"; do pid_alive "$name" || return 1; done
}

cmd_up() {
  if all_running && node_idle; then
    log "already up: $(sinfo -h -o '%P %D %t %c CPUs' | head -n 1)"
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "the cluster is not running and starting it needs root (daemons run as root/munge)"
  mkdir -p "$STATE"
  install_packages
  write_config
  setup_munge

  # setpriv keeps the pid (runuser would fork), so the pid file names munged itself.
  start munged setpriv --reuid=munge --regid=munge --init-groups munged -F
  wait_for 10 munge bash -c 'munge -n | unmunge' || die "munged did not start (see $STATE/munged.log)"

  mkdir -p /run/mysqld
  chown mysql:mysql /run/mysqld
  if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$STATE/mariadb-install.log" 2>&1 ||
      die "mariadb-install-db failed (see $STATE/mariadb-install.log)"
  fi
  start mariadbd mariadbd --user=mysql --skip-networking --socket=/run/mysqld/mysqld.sock
  wait_for 30 mariadb mariadb-admin --socket=/run/mysqld/mysqld.sock ping ||
    die "mariadbd did not answer (see $STATE/mariadbd.log)"

  start slurmdbd slurmdbd -D
  wait_for 30 slurmdbd port_open 6819 || die "slurmdbd did not listen on 6819 (see /var/log/slurm/slurmdbd.log)"
  # The cluster must be known to the accounting database before slurmctld registers (it adds itself
  # on first contact too, but doing it here makes the first sacct reliable).
  sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null 2>&1 || true

  start slurmctld slurmctld -D
  wait_for 30 slurmctld bash -c 'scontrol ping | grep -q UP' ||
    die "slurmctld did not come up (see /var/log/slurm/slurmctld.log)"
  start slurmd slurmd -D
  if ! wait_for 30 "node $(hostname -s)" node_idle; then
    scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
    wait_for 10 "node $(hostname -s)" node_idle || die "node not idle: $(sinfo -N 2>&1 | tail -n 1)"
  fi
  wait_for 20 sacct sacct -n -X -S now ||
    die "sacct does not answer (see /var/log/slurm/slurmdbd.log)"
  log "up: $(sinfo -h -o '%P %D %t %c CPUs' | head -n 1)"
}

stop_pid() { # stop_pid NAME: SIGTERM the recorded pid if it is still that program, wait, then SIGKILL
  local name=$1 pid
  if pid_alive "$name"; then
    pid=$(cat "$STATE/$name.pid")
    kill -TERM "$pid" 2>/dev/null
    local end=$((SECONDS + 15))
    while pid_alive "$name" && ((SECONDS < end)); do sleep 0.1; done
    if pid_alive "$name"; then
      log "$name ($pid) ignored SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null
    fi
    log "stopped $name ($pid)"
  fi
  rm -f "$STATE/$name.pid"
}

cmd_down() {
  [ -d "$STATE" ] || {
    log "nothing to stop ($STATE does not exist)"
    return 0
  }
  # Running jobs outlive slurmd: cancel them while the controller can still signal them.
  if pid_alive slurmctld && command -v scancel >/dev/null; then
    scancel --full --signal=KILL --user=root >/dev/null 2>&1 || true
    scancel --user=root >/dev/null 2>&1 || true
    local end=$((SECONDS + 10))
    while [ -n "$(squeue -h -o %i 2>/dev/null)" ] && ((SECONDS < end)); do sleep 0.2; done
  fi
  local i
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    stop_pid "${DAEMONS[$i]}"
  done
}

cmd_status() {
  local name rc=0
  for name in "${DAEMONS[@]}"; do
    if pid_alive "$name"; then
      echo "$name: running (pid $(cat "$STATE/$name.pid"))"
    else
      echo "$name: stopped"
      rc=1
    fi
  done
  if [ $rc = 0 ]; then
    sinfo -N 2>&1 | sed 's/^/  /'
    node_idle || rc=1
  fi
  return $rc
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
*)
  echo "usage: $0 up|down|status" >&2
  exit 2
  ;;
esac
