// units_kmeans.c — k-means++ seeding and Lloyd's iterations on float32 frames.
//
// Why not the GEMM form (|x|^2 - 2 x.c + |c|^2): it cancels catastrophically for frames near a centroid, and a
// BLAS result may depend on its thread count; the argmin must not. Distances here are direct sums of squared
// differences in double, each frame's on one thread, so assignments are the same for any OpenMP thread count
// and agree with a float64 NumPy rendering except on exact ties. Every sum over frames (D2 totals, centroid
// means, inertia) runs in frame order on one thread.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "units.h"

// Squared distance of two dim-vectors: 8 independent double lanes (vectorisable without reassociation), then a
// fixed-order sum of the lanes.
static double sqdist(const float *a, const float *b, int dim) {
    double acc[8] = {0};
    int j = 0;
    for (; j + 8 <= dim; j += 8)
        for (int l = 0; l < 8; l++) {
            double d = (double)a[j + l] - (double)b[j + l];
            acc[l] += d * d;
        }
    for (; j < dim; j++) {
        double d = (double)a[j] - (double)b[j];
        acc[0] += d * d;
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// Below this many distance terms a parallel region costs more than it saves (one utterance's units).
#define PAR_MIN ((int64_t)1 << 18)

void s2s_kmeans_assign(const float *x, int64_t n, int dim, const float *c, int k, int32_t *assign, double *dist) {
#pragma omp parallel for schedule(static) if (n * k * dim >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * dim;
        double best = sqdist(xi, c, dim);
        int32_t bj = 0;
        for (int j = 1; j < k; j++) {
            double d = sqdist(xi, c + (int64_t)j * dim, dim);
            if (d < best) best = d, bj = j;
        }
        assign[i] = bj;
        if (dist) dist[i] = best;
    }
}

int s2s_kmeans_pp(const float *x, int64_t n, int dim, int k, uint64_t seed, int64_t *picks, s2s_derr *e) {
    if (k < 1 || k > n) return s2s_derr_set(e, "k-means++: k = %d needs 1 <= k <= frames (%lld)", k, (long long)n);
    // [n] each: D2 so far, the candidate being tried, the best candidate's min(D2, d^2)
    double *d2 = malloc(sizeof(double) * n), *cand = malloc(sizeof(double) * n), *keep = malloc(sizeof(double) * n);
    if (!d2 || !cand || !keep) {
        free(d2), free(cand), free(keep);
        return s2s_derr_set(e, "k-means++: out of memory for %lld frames", (long long)n);
    }
    // Greedy k-means++ (as scikit-learn): L candidates a pick, keep the one that lowers sum(D2) most. One candidate
    // lands a second centroid in an already covered cluster with probability ~ within / between spread, a local
    // optimum Lloyd cannot leave; needing all L to do so makes that rare.
    int L = 2 + (int)log((double)k);
    uint64_t rng = seed;
    int64_t p = (int64_t)(s2s_units_rng_uniform(&rng) * (double)n);
    picks[0] = p < n ? p : n - 1;
    const float *c0 = x + picks[0] * dim;
#pragma omp parallel for schedule(static) if (n * dim >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) d2[i] = sqdist(x + i * dim, c0, dim);
    double total = 0;
    for (int64_t i = 0; i < n; i++) total += d2[i];
    for (int m = 1; m < k; m++) {
        if (!(total > 0)) {
            free(d2), free(cand), free(keep);
            return s2s_derr_set(e, "k-means++: only %d distinct frames among %lld, fewer than k = %d", m,
                                (long long)n, k);
        }
        int64_t best = -1;
        double best_pot = 0;
        for (int l = 0; l < L; l++) {
            double target = s2s_units_rng_uniform(&rng) * total, cum = 0;
            int64_t pick = -1, last = -1;
            for (int64_t i = 0; i < n; i++) {
                if (d2[i] > 0) last = i;
                cum += d2[i];
                if (cum > target && d2[i] > 0) {
                    pick = i;
                    break;
                }
            }
            if (pick < 0) pick = last;  // rounding can leave target at the very end of the sum
            const float *cm = x + pick * dim;
#pragma omp parallel for schedule(static) if (n * dim >= PAR_MIN)
            for (int64_t i = 0; i < n; i++) {
                double d = sqdist(x + i * dim, cm, dim);
                cand[i] = d < d2[i] ? d : d2[i];
            }
            double pot = 0;
            for (int64_t i = 0; i < n; i++) pot += cand[i];
            if (best < 0 || pot < best_pot) {
                double *t = keep;
                keep = cand, cand = t;
                best = pick, best_pot = pot;
            }
        }
        picks[m] = best;
        double *t = d2;
        d2 = keep, keep = t;
        total = best_pot;
    }
    free(d2), free(cand), free(keep);
    return 0;
}

// Empty clusters (in increasing index) each take the frame farthest from its centroid among frames whose cluster
// keeps another frame; the taken frame's distance becomes 0 so no later empty cluster takes it too.
static int relocate_empty(int64_t n, int k, int32_t *assign, double *dist, int64_t *count) {
    int moved = 0;
    for (int j = 0; j < k; j++) {
        if (count[j]) continue;
        int64_t far = -1;
        for (int64_t i = 0; i < n; i++)
            if (count[assign[i]] > 1 && (far < 0 || dist[i] > dist[far])) far = i;
        if (far < 0) break;  // cannot happen with k <= n
        count[assign[far]]--;
        assign[far] = j;
        count[j] = 1;
        dist[far] = 0;
        moved++;
    }
    return moved;
}

// c[j] = mean of the frames assigned to j, summed in frame order in double (a counting sort groups them).
static void update_means(const float *x, int64_t n, int dim, int k, const int32_t *assign, const int64_t *count,
                         int64_t *start, int64_t *order, float *c) {
    start[0] = 0;
    for (int j = 0; j < k; j++) start[j + 1] = start[j] + count[j];
    int64_t *fill = start + k + 1;  // [k] scratch after start
    memcpy(fill, start, sizeof(int64_t) * k);
    for (int64_t i = 0; i < n; i++) order[fill[assign[i]]++] = i;
#pragma omp parallel if (n * dim >= PAR_MIN)
    {
        double acc[S2S_UNITS_DIM];
        double *s = dim <= S2S_UNITS_DIM ? acc : malloc(sizeof(double) * dim);
#pragma omp for schedule(static)
        for (int j = 0; j < k; j++) {
            if (!count[j]) continue;  // kept as it was (relocation leaves no empty cluster when k <= n)
            for (int d = 0; d < dim; d++) s[d] = 0;
            for (int64_t q = start[j]; q < start[j + 1]; q++) {
                const float *xi = x + order[q] * dim;
                for (int d = 0; d < dim; d++) s[d] += xi[d];
            }
            for (int d = 0; d < dim; d++) c[(int64_t)j * dim + d] = (float)(s[d] / (double)count[j]);
        }
        if (s != acc) free(s);
    }
}

int s2s_kmeans_lloyd(const float *x, int64_t n, int dim, int k, int max_iters, float *c, int32_t *assign,
                     int64_t *counts, s2s_kmeans_stats *st, s2s_derr *e) {
    memset(st, 0, sizeof *st);
    if (k < 1 || k > n) return s2s_derr_set(e, "k-means: k = %d needs 1 <= k <= frames (%lld)", k, (long long)n);
    int32_t *prev = malloc(sizeof(int32_t) * n);
    double *dist = malloc(sizeof(double) * n);
    int64_t *order = malloc(sizeof(int64_t) * n), *count = calloc((size_t)k, sizeof(int64_t)),
            *start = malloc(sizeof(int64_t) * (2 * (size_t)k + 1));
    if (!prev || !dist || !order || !count || !start) {
        free(prev), free(dist), free(order), free(count), free(start);
        return s2s_derr_set(e, "k-means: out of memory for %lld frames", (long long)n);
    }
    for (int it = 0;; it++) {
        s2s_kmeans_assign(x, n, dim, c, k, assign, dist);
        if (it > 0 && !memcmp(assign, prev, sizeof(int32_t) * n)) {
            st->converged = 1;
            break;
        }
        if (it == max_iters) break;
        memset(count, 0, sizeof(int64_t) * k);
        for (int64_t i = 0; i < n; i++) count[assign[i]]++;
        st->relocated += relocate_empty(n, k, assign, dist, count);
        update_means(x, n, dim, k, assign, count, start, order, c);
        memcpy(prev, assign, sizeof(int32_t) * n);
        st->iterations++;
    }
    // assign and dist are now the assignment to the final centroids.
    memset(count, 0, sizeof(int64_t) * k);
    double s = 0;
    for (int64_t i = 0; i < n; i++) count[assign[i]]++, s += dist[i];
    st->inertia = s / (double)n;
    if (counts) memcpy(counts, count, sizeof(int64_t) * k);
    free(prev), free(dist), free(order), free(count), free(start);
    return 0;
}
