/* MetaSR kernel, AVX2 + FMA path (K = 3, H a multiple of 8): included by metasr.c when __AVX2__ and __FMA__
 * (and not __AVX512F__), after its Args, Shared and MAXH. The AVX-512 path's step with 8 lanes and 2 queries
 * per step (16 ymm registers). */
#ifndef LIIF_SR_METASR_AVX2_H
#define LIIF_SR_METASR_AVX2_H

#include <immintrin.h>

#ifndef QB2
#define QB2 2 /* queries per step */
#endif
#ifndef PF2
#define PF2 6 /* steps ahead (12 queries, as the AVX-512 path) whose table rows are prefetched */
#endif

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}

static inline __m256 shared_terms(const Args *a, int64_t j, __m256 p0, __m256 p2) {
    const __m256 u = _mm256_fmadd_ps(p0, _mm256_loadu_ps(a->w1t + j), _mm256_loadu_ps(a->b1 + j));
    return _mm256_fmadd_ps(p2, _mm256_loadu_ps(a->w1t + 2 * a->hid + j), u);
}

static void fill_terms(const Args *a, float *dst, float x0, float x2) {
    const __m256 p0 = _mm256_set1_ps(x0), p2 = _mm256_set1_ps(x2);
    for (int64_t j = 0; j < a->hid; j += 8) _mm256_storeu_ps(dst + j, shared_terms(a, j, p0, p2));
}

/* acc[3q + r] += G_r(row q)[j:j+8] * max(w1 x1_q + u_q, 0) for the step's queries. */
#define STEP_BODY(UQ)                                                                             \
    for (int q = 0; q < QB2; q++) {                                                               \
        const __m256 t = _mm256_max_ps(_mm256_fmadd_ps(p1[q], v1, (UQ)), zero);                   \
        acc[3 * q] = _mm256_fmadd_ps(_mm256_loadu_ps(g[q] + j), t, acc[3 * q]);                    \
        acc[3 * q + 1] = _mm256_fmadd_ps(_mm256_loadu_ps(g[q] + hid + j), t, acc[3 * q + 1]);      \
        acc[3 * q + 2] = _mm256_fmadd_ps(_mm256_loadu_ps(g[q] + 2 * hid + j), t, acc[3 * q + 2]);  \
    }

/* Prefetch of the table rows ``pa``, ``pb`` (PF2 steps ahead), spread over the step's j loop. */
#define PF_J                                                                                         \
    if (j % 16 == 0) {                                                                               \
        _mm_prefetch((const char *)(pa + j), _MM_HINT_T0);                                          \
        _mm_prefetch((const char *)(pa + hid + j), _MM_HINT_T0);                                    \
        _mm_prefetch((const char *)(pa + 2 * hid + j), _MM_HINT_T0);                                \
        _mm_prefetch((const char *)(pb + j), _MM_HINT_T0);                                          \
        _mm_prefetch((const char *)(pb + hid + j), _MM_HINT_T0);                                    \
        _mm_prefetch((const char *)(pb + 2 * hid + j), _MM_HINT_T0);                                \
    }

/* QB2 queries (rows ``row``, inputs x0..x2 [0, QB2)) → out (QB2, 3). */
static inline void step_avx2(const Args *a, Shared *c, const int64_t *row, const float *x0, const float *x1,
                             const float *x2, float **out, const float *pa, const float *pb) {
    const int64_t hid = a->hid;
    const float *w1 = a->w1t + hid;
    const float *g[QB2];
    __m256 p1[QB2], acc[3 * QB2];
    int shared = hid <= MAXH;
    for (int q = 0; q < QB2; q++) {
        g[q] = a->table + row[q] * a->ld;
        p1[q] = _mm256_set1_ps(x1[q]);
        acc[3 * q] = acc[3 * q + 1] = acc[3 * q + 2] = _mm256_setzero_ps();
    }
    const __m256 zero = _mm256_setzero_ps();
    if (shared) {
        const float *u[QB2];
        const int same = step_terms(a, c, x0, x2, QB2, u);
        if (same) {
            for (int64_t j = 0; j < hid; j += 8) {
                PF_J
                const __m256 uj = _mm256_loadu_ps(u[0] + j), v1 = _mm256_loadu_ps(w1 + j);
                STEP_BODY(uj)
            }
        } else {
            for (int64_t j = 0; j < hid; j += 8) {
                PF_J
                const __m256 v1 = _mm256_loadu_ps(w1 + j);
                STEP_BODY(_mm256_loadu_ps(u[q] + j))
            }
        }
        _mm_prefetch((const char *)(pa + 3 * hid), _MM_HINT_T0);
        _mm_prefetch((const char *)(pb + 3 * hid), _MM_HINT_T0);
    } else {
        __m256 p0[QB2], p2[QB2];
        for (int q = 0; q < QB2; q++) p0[q] = _mm256_set1_ps(x0[q]), p2[q] = _mm256_set1_ps(x2[q]);
        for (int64_t j = 0; j < hid; j += 8) {
            const __m256 v1 = _mm256_loadu_ps(w1 + j);
            STEP_BODY(shared_terms(a, j, p0[q], p2[q]))
        }
    }
    for (int q = 0; q < QB2; q++)
        for (int r = 0; r < 3; r++) out[q][r] = hsum8(acc[3 * q + r]) + g[q][3 * hid + r];
}
#undef STEP_BODY
#undef PF_J

/* n queries in ``order`` (NULL: as given), QB2 per step; the table rows of the step PF2 steps ahead are
 * prefetched during each step (its first and last query's rows). */
static void mlp_avx2(const Args *a, int64_t n, const int32_t *order, const int64_t *row, const float *x0,
                     const float *x1, const float *x2, float *out) {
    Shared c;
    c.n = 0, c.next = 0;
    for (int64_t m = 0; m < n; m += QB2) {
        int64_t pr[QB2];
        float p0[QB2], p1[QB2], p2[QB2], *po[QB2];
        const float *ahead[2];
        step_queries(a, order, m, n, QB2, PF2 * QB2, row, x0, x1, x2, out, pr, p0, p1, p2, po, ahead);
        step_avx2(a, &c, pr, p0, p1, p2, po, ahead[0], ahead[1]);
    }
}

#endif
