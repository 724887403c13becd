"""The test suite again on a build with AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer (CPU only):
every memory error, leak or undefined operation any test provokes, in any process, fails this test. Reports go to
files (log_path), so a sanitizer error in a run that a test expects to fail (a broken-input check) still counts.
No test compares speeds (bench/ does), so every test but the other builds' runs here.

usage: python3 tests/sanitize/test_sanitize.py S2S_BINARY BUILD_DIR   (from the repository root; ctest does this)
"""
import glob
import os
import subprocess
import sys
import tempfile

BUILD = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "build")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAN = os.path.join(BUILD, "sanitize")
FLAGS = "-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
SKIP = "isa\\.|gpu\\.|sanitize\\.|train\\.test_torch_ref|eval\\.test_chat"  # other builds, this test; and two
# comparisons with PyTorch renderings whose s2s side other tests run here too: test_torch_ref's (a 3-step stage-3
# run) test_train covers many times over, test_chat's (chat, prompts, checkpoint and export loading) test_answer and
# test_demo do; together they would add ~4 minutes (mostly PyTorch) to the suite's critical path. No test times
# anything, so test_mel and test_tokenizer run here too.
TIMEOUT_SCALE = 4


def main():
    with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
        if "fsanitize" in f.read():
            print("this build is sanitized already: nothing to do")
            return
    # Instrumented code runs several times slower: every test's TIMEOUT (tests/CMakeLists.txt) is scaled to match.
    subprocess.run(["cmake", "-S", ROOT, "-B", SAN, "-DCMAKE_BUILD_TYPE=Release", "-DS2S_CUDA=OFF",
                    f"-DCMAKE_C_FLAGS={FLAGS}", "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined",
                    f"-DS2S_TEST_TIMEOUT_SCALE={TIMEOUT_SCALE}"],
                   check=True, stdout=subprocess.DEVNULL)
    r = subprocess.run(["cmake", "--build", SAN, "-j", str(os.cpu_count() or 2)], capture_output=True, text=True)
    if r.returncode:
        print(r.stdout[-2000:], r.stderr[-2000:])
        sys.exit("FAIL: the sanitized build did not build")
    with tempfile.TemporaryDirectory() as logs:
        env = dict(os.environ,
                   ASAN_OPTIONS=f"detect_leaks=1:log_path={logs}/asan",
                   LSAN_OPTIONS=f"suppressions={os.path.join(ROOT, 'tests', 'sanitize', 'lsan.supp')}",
                   OMPI_MCA_mca_base_component_disable_dlclose="1",
                   UBSAN_OPTIONS=f"print_stacktrace=1:log_path={logs}/ubsan")
        r = subprocess.run(["ctest", "-j", str(os.cpu_count() or 2), "-E", SKIP], cwd=SAN, env=env,
                           capture_output=True, text=True)
        print("\n".join(l for l in r.stdout.splitlines() if "Test #" in l or "tests passed" in l))
        reports = []
        for path in sorted(glob.glob(os.path.join(logs, "*"))):
            with open(path, errors="replace") as f:
                text = f.read()
            # LeakSanitizer may also leave a note that it could not suspend a thread: not a finding
            if "ERROR: " in text or "SUMMARY: " in text or "runtime error" in text:
                reports.append(path)
                if len(reports) <= 5:
                    print(f"---- {os.path.basename(path)}\n{text[:3000]}")
    if reports:
        sys.exit(f"FAIL: {len(reports)} sanitizer report(s)")
    if r.returncode:
        sys.exit("FAIL: a test failed on the sanitized build")
    print("no sanitizer reports; every test passed on the sanitized build")


if __name__ == "__main__":
    main()
