#!/usr/bin/env bash
# One node, N data-parallel ranks of `s2s train` under Open MPI: one rank per GPU, or on CPU one per socket (each
# rank then uses that socket's cores through OpenMP).
#
#   launch/mpirun.sh RECIPE.yaml [s2s train options...]        e.g. --set dist.zero=1 --resume auto
#
# EDIT (or set in the environment):
RANKS=${RANKS:-$(nvidia-smi -L 2>/dev/null | wc -l)}      # ranks: the GPUs here ...
[ "$RANKS" -gt 0 ] 2>/dev/null || RANKS=$(lscpu -p=SOCKET 2>/dev/null | grep -v '^#' | sort -u | wc -l)  # ... or sockets
[ "$RANKS" -gt 0 ] 2>/dev/null || RANKS=1
THREADS=${THREADS:-$(( $(nproc) / RANKS ))}              # OpenMP threads per rank
S2S=${S2S:-build/s2s}
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
recipe=$1; shift
# Open MPI refuses root unless told; containers often run as root.
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# --bind-to socket / --map-by socket: each rank's threads stay on its socket; -x passes the thread count.
# To preempt the job cleanly send SIGUSR1 to this mpirun (it forwards it; every rank checkpoints and exits 0).
exec mpirun -np "$RANKS" --map-by socket --bind-to socket -x OMP_NUM_THREADS="$THREADS" \
    "$S2S" train --config "$recipe" --set "train.threads=$THREADS" "$@"
