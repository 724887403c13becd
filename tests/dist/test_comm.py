"""train/comm.h under mpirun: every collective's values on 1, 2 and 3 ranks; an error on one rank reaches all;
a rank that hangs or dies ends the whole job non-zero, well within dist.timeout_s, instead of hanging it.

Run by ctest as: python3 tests/dist/test_comm.py S2S_BINARY BUILD_DIR. Skipped (exit 77) without mpirun.
"""
import os
import shutil
import subprocess
import sys
import time

BUILD = sys.argv[2] if len(sys.argv) > 2 else "build"
CHECK = os.path.join(BUILD, "tests", "comm_check")
failures = []
if not shutil.which("mpirun"):
    print("test_comm: no mpirun: skipped")
    sys.exit(77)
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")
# In the sanitized rerun: Open MPI's libraries keep no frame pointers, and only the slow unwinder names them, which
# the leak suppressions (tests/sanitize/lsan.supp: what MPI leaves at MPI_Finalize) need.
if "ASAN_OPTIONS" in env:
    env["ASAN_OPTIONS"] += ":fast_unwind_on_malloc=0"


def check(cond, what):
    print(("ok    " if cond else "FAILED ") + what)
    if not cond:
        failures.append(what)


def mpirun(n, *args, timeout=120):
    t0 = time.time()
    p = subprocess.run(["mpirun", "-np", str(n), "--oversubscribe", CHECK, *args], capture_output=True, text=True,
                       timeout=timeout, env=env)
    return p, time.time() - t0


p = subprocess.run([CHECK, "ok"], capture_output=True, text=True, timeout=60)
check(p.returncode == 0 and "(self): ok" in p.stdout, f"one process without mpirun: {p.stdout.strip()}")
for n in (1, 2, 3):
    p, _ = mpirun(n, "ok")
    check(p.returncode == 0 and p.stdout.count("(mpi): ok") == n, f"{n} ranks: every collective "
          f"{p.stdout.strip().splitlines()[-1:] if p.stdout else p.stderr[-300:]}")
p, _ = mpirun(3, "agree")
lines = [l for l in p.stdout.splitlines() if "agree -1 who 2: rank 2: shard x.h5: sample 3: corrupt" in l]
check(p.returncode == 0 and len(lines) == 3, "an error on rank 2 reaches every rank with its message")
p, dt = mpirun(3, "hang", "4")
check(p.returncode != 0 and "did not complete within dist.timeout_s" in p.stderr and dt < 60,
      f"a hanging rank: the job ends non-zero in {dt:.1f} s (timeout 4 s), naming the collective")
p, dt = mpirun(3, "die", "30")
check(p.returncode != 0 and "second all-reduce returned" not in p.stdout and dt < 60,
      f"a SIGKILLed rank: the job ends non-zero in {dt:.1f} s")
print("test_comm:", "FAILED" if failures else "ok", f"({len(failures)} failures)")
sys.exit(1 if failures else 0)
