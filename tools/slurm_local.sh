#!/usr/bin/env bash
# A single-node SLURM on this machine, for tools/check_slurm.sh: this host is controller and compute node.
#
#   tools/slurm_local.sh          install (apt-get, idempotent) slurm-wlm + munge, write the config, start munged,
#                                 slurmctld and slurmd as background daemons (no systemd), wait for the node to be idle
#   tools/slurm_local.sh stop     stop the three daemons
#
# Debian 12 / Ubuntu, as root (SlurmUser=root). It overwrites /etc/slurm/slurm.conf: a development machine only,
# never a node of a real cluster. State and logs go under $S2S_SLURM_DIR (default /var/tmp/s2s-slurm).
set -euo pipefail
DIR=${S2S_SLURM_DIR:-/var/tmp/s2s-slurm}
CONF=/etc/slurm/slurm.conf
[ "$(id -u)" = 0 ] || { echo "slurm_local.sh: run as root" >&2; exit 2; }

stop_daemons() {
    local name pidf pid
    for name in slurmd slurmctld munged; do
        pidf=$DIR/$name.pid
        [ -f "$pidf" ] || continue
        pid=$(cat "$pidf")
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
            echo "stopped $name ($pid)"
        fi
        rm -f "$pidf"
    done
}

if [ "${1:-start}" = stop ]; then
    stop_daemons
    exit 0
fi
[ "${1:-start}" = start ] || { echo "usage: tools/slurm_local.sh [start|stop]" >&2; exit 2; }

# ---- install ------------------------------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
    || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge
fi
[ -s /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || create-munge-key -f; }

# ---- config -------------------------------------------------------------------------------------------------------
host=$(hostname -s)
mkdir -p "$DIR/state" "$DIR/spool" /etc/slurm /run/munge
# slurmd -C: this machine's CPUs, sockets, cores, threads and RealMemory, as a NodeName line.
node=$(slurmd -C | head -1)
case $node in NodeName=*) ;; *) echo "slurm_local.sh: slurmd -C said: $node" >&2; exit 1 ;; esac
node=$(sed "s/^NodeName=[^ ]*/NodeName=$host/" <<<"$node")
write_conf() {
    cat >"$CONF" <<EOF
# Written by s2s tools/slurm_local.sh: a single-node SLURM for tools/check_slurm.sh. Not for a real cluster.
ClusterName=s2slocal
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups (none in a container, no systemd): processes tracked through /proc, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
JobRequeue=1
ReturnToService=2
# Finished jobs stay known (and requeueable by scontrol requeue) for 30 minutes.
MinJobAge=1800
KillWait=30
$1
$node State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}
# MpiDefault: pmix when this SLURM has the PMIx plugin and the Open MPI here was built against PMIx (Debian 12's
# is: ompi_info lists "MCA pmix: ext3x", external PMIx 4.2) -- srun then starts the ranks and Open MPI's MPI_Init
# wires up through SLURM's PMIx server, as on a real cluster. Otherwise none (then srun cannot start MPI ranks).
write_conf "MpiDefault=none"
if srun --mpi=list 2>&1 | grep -qw pmix && command -v ompi_info >/dev/null && ompi_info | grep -q "MCA pmix: ext"; then
    mpi=pmix
else
    mpi=none
fi
write_conf "# srun --mpi=list offers pmix and Open MPI uses an external PMIx: $mpi
MpiDefault=$mpi"

# ---- start --------------------------------------------------------------------------------------------------------
stop_daemons >/dev/null
# munged as root on a copy of the key (the package's files, owned by the munge user, stay as they are); its
# socket where the clients look: /run/munge/munge.socket.2.
install -m 0400 -o root -g root /etc/munge/munge.key "$DIR/munge.key"
chmod 0755 /run/munge
munged --force --key-file="$DIR/munge.key" --pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log" \
    --seed-file="$DIR/munged.seed"
for _ in $(seq 50); do munge -n </dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
munge -n </dev/null | unmunge >/dev/null || { echo "slurm_local.sh: munge does not work" >&2; exit 1; }
slurmctld                       # daemons by default: they fork into the background
slurmd
for _ in $(seq 60); do
    state=$(sinfo -h -n "$host" -o %t 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 1
done
if [ "$state" != idle ]; then
    echo "slurm_local.sh: node $host is '${state:-unknown}', not idle; see $DIR/slurmctld.log and $DIR/slurmd.log" >&2
    exit 1
fi
echo "SLURM $(sinfo -V | awk '{print $2}') up on $host (MpiDefault=$mpi): $(sinfo -h -o '%P %D %c CPUs %m MB %t')"
