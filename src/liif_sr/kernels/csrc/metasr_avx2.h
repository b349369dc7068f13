/* MetaSR kernel, AVX2 + FMA path (K = 3, H a multiple of 8): included by metasr.c when __AVX2__ and __FMA__
 * (and not __AVX512F__), after its Args, Shared and MAXH. The AVX-512 path's step with 8 lanes and 2 queries
 * per step (16 ymm registers). */
#ifndef LIIF_SR_METASR_AVX2_H
#define LIIF_SR_METASR_AVX2_H

#include <immintrin.h>

#ifndef QB2
#define QB2 2 /* queries per step */
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

/* acc[3q + r] += G_r(row q)[j:j+8] * max(w1 x1_q + u_q, 0) for the step's queries. */
#define STEP_BODY(UQ)                                                                             \
    for (int q = 0; q < QB2; q++) {                                                               \
        const __m256 t = _mm256_max_ps(_mm256_fmadd_ps(p1[q], v1, (UQ)), zero);                   \
        acc[3 * q] = _mm256_fmadd_ps(_mm256_loadu_ps(g[q] + j), t, acc[3 * q]);                    \
        acc[3 * q + 1] = _mm256_fmadd_ps(_mm256_loadu_ps(g[q] + hid + j), t, acc[3 * q + 1]);      \
        acc[3 * q + 2] = _mm256_fmadd_ps(_mm256_loadu_ps(g[q] + 2 * hid + j), t, acc[3 * q + 2]);  \
    }

/* QB2 queries (rows ``row``, inputs x0..x2 [0, QB2)) → out (QB2, 3). */
static inline void step_avx2(const Args *a, Shared *c, const int64_t *row, const float *x0, const float *x1,
                             const float *x2, float *out) {
    const int64_t hid = a->hid;
    const float *w1 = a->w1t + hid;
    const float *g[QB2];
    __m256 p1[QB2], acc[3 * QB2];
    int shared = hid <= MAXH;
    for (int q = 0; q < QB2; q++) {
        g[q] = a->table + row[q] * a->ld;
        p1[q] = _mm256_set1_ps(x1[q]);
        acc[3 * q] = acc[3 * q + 1] = acc[3 * q + 2] = _mm256_setzero_ps();
        shared &= x0[q] == x0[0] && x2[q] == x2[0];
    }
    const __m256 zero = _mm256_setzero_ps();
    if (shared) {
        if (!c->valid || c->x0 != x0[0] || c->x2 != x2[0]) {
            const __m256 p0 = _mm256_set1_ps(x0[0]), p2 = _mm256_set1_ps(x2[0]);
            for (int64_t j = 0; j < hid; j += 8) _mm256_storeu_ps(c->u + j, shared_terms(a, j, p0, p2));
            c->x0 = x0[0], c->x2 = x2[0], c->valid = 1;
        }
        for (int64_t j = 0; j < hid; j += 8) {
            const __m256 uj = _mm256_loadu_ps(c->u + j), v1 = _mm256_loadu_ps(w1 + j);
            STEP_BODY(uj)
        }
    } else {
        __m256 p0[QB2], p2[QB2];
        for (int q = 0; q < QB2; q++) p0[q] = _mm256_set1_ps(x0[q]), p2[q] = _mm256_set1_ps(x2[q]);
        for (int64_t j = 0; j < hid; j += 8) {
            const __m256 v1 = _mm256_loadu_ps(w1 + j);
            STEP_BODY(shared_terms(a, j, p0[q], p2[q]))
        }
    }
    for (int q = 0; q < QB2; q++)
        for (int r = 0; r < 3; r++) out[q * 3 + r] = hsum8(acc[3 * q + r]) + g[q][3 * hid + r];
}
#undef STEP_BODY

/* n queries; a partial last step repeats its last query (results do not depend on the chunking). The next
 * step's table rows are prefetched. */
static void mlp_avx2(const Args *a, int64_t n, const int64_t *row, const float *x0, const float *x1,
                     const float *x2, float *out) {
    int64_t i = 0;
    Shared c;
    c.valid = 0;
    for (; i + QB2 <= n; i += QB2) {
        if (i + QB2 < n && row[i + QB2] != row[i + QB2 - 1]) {
            const char *p = (const char *)(a->table + row[i + QB2] * a->ld);
            for (int64_t off = 0; off < a->ld * (int64_t)sizeof(float); off += 64) _mm_prefetch(p + off, _MM_HINT_T0);
        }
        step_avx2(a, &c, row + i, x0 + i, x1 + i, x2 + i, out + 3 * i);
    }
    if (i < n) {
        int64_t pr[QB2];
        float p0[QB2], p1[QB2], p2[QB2], po[3 * QB2];
        for (int q = 0; q < QB2; q++) {
            const int64_t m = i + q < n ? i + q : n - 1;
            pr[q] = row[m], p0[q] = x0[m], p1[q] = x1[m], p2[q] = x2[m];
        }
        step_avx2(a, &c, pr, p0, p1, p2, po);
        for (int64_t m = 0; m < 3 * (n - i); m++) out[3 * i + m] = po[m];
    }
}

#endif
