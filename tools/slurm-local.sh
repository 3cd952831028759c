#!/usr/bin/env bash
# A private single-node SLURM on this machine, from Debian's packages:
#   apt-get install slurmctld slurmd slurm-client munge
#
#   tools/slurm-local.sh start [DIR]   # writes DIR/slurm.conf, starts munged, slurmctld, slurmd
#   export SLURM_CONF=DIR/slurm.conf   # then sbatch/squeue/sinfo (and submitit) use it
#   tools/slurm-local.sh stop [DIR]    # stops the three daemons (DIR stays for inspection)
#
# Everything lives in DIR (default /tmp/ovbench-slurm): its own munge key and
# socket, state, logs and free TCP ports, so it touches neither /etc/slurm nor a
# system munged, and two copies in two DIRs do not collide. The settings that
# work in a container without cgroups or an accounting database: one node with
# the machine's CPUs, ProctrackType=proctrack/linuxproc, TaskPlugin=task/none,
# no accounting. Daemons run as the calling user (root is fine).
set -euo pipefail

cmd=${1:-}
dir=$(realpath -m "${2:-/tmp/ovbench-slurm}")

need() { command -v "$1" >/dev/null || { echo "slurm-local: $1 not found; apt-get install slurmctld slurmd slurm-client munge" >&2; exit 3; }; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
stop_pid() {  # stop_pid FILE: TERM the daemon whose pid FILE holds, wait for it
    [ -s "$1" ] || return 0
    local pid; pid=$(cat "$1")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$1"
}

start() {
    for b in munged slurmctld slurmd sinfo; do need "$b"; done
    [ -s "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null && {
        echo "slurm-local: already running in $dir (export SLURM_CONF=$dir/slurm.conf)"; return 0; }
    mkdir -p "$dir"/{state,spool,munge}
    chmod 700 "$dir/munge"
    [ -s "$dir/munge/munge.key" ] || { head -c 1024 /dev/urandom > "$dir/munge/munge.key"; chmod 400 "$dir/munge/munge.key"; }
    munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
    local host cpus mem user
    host=$(hostname -s); cpus=$(nproc); user=$(id -un)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
    cat > "$dir/slurm.conf" <<CONF
ClusterName=ovbench-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    export SLURM_CONF="$dir/slurm.conf"
    slurmctld -i
    slurmd -N "$host"
    for _ in $(seq 100); do
        sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)' && {
            echo "slurm-local: up in $dir; export SLURM_CONF=$dir/slurm.conf"; return 0; }
        sleep 0.2
    done
    echo "slurm-local: the node did not come up; see $dir/slurmctld.log and $dir/slurmd.log" >&2
    sinfo >&2 || true
    exit 1
}

stop() {
    stop_pid "$dir/slurmd.pid"
    stop_pid "$dir/slurmctld.pid"
    stop_pid "$dir/munge/munged.pid"
    echo "slurm-local: stopped ($dir)"
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop [DIR]" >&2; exit 2 ;;
esac
