#include <stdio.h>
#include "autograd/device.h"
#include "cli.h"

static int run(int argc, char **argv) {
    printf("s2s 0.1.0\n");
#ifdef S2S_HAVE_CUDA
    printf("cuda: built, %d device(s) visible\n", s2s_cuda_available());
#else
    printf("cuda: not built\n");
#endif
#ifdef S2S_HAVE_MPI
    printf("mpi: built\n");
#else
    printf("mpi: not built\n");
#endif
    return 0;
}

const s2s_cmd s2s_cmd_version = {"version", "print the version and which backends are built", run};
