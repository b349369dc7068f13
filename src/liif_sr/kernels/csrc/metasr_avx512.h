/* MetaSR kernel, AVX-512 path (K = 3, H a multiple of 16): included by metasr.c when __AVX512F__ (after its
 * Args, Shared and MAXH). */
#ifndef LIIF_SR_METASR_AVX512_H
#define LIIF_SR_METASR_AVX512_H

#include <immintrin.h>

#define QB 4 /* queries per step */
#ifndef PF
#define PF 3 /* steps ahead whose table rows are prefetched, spread over the step */
#endif

/* Sums of 16 lanes of v[0..11] (QB * 3 accumulators) → s[0..11]. */
static inline void reduce12(const __m512 *v, float *s) {
    __m512 l1[6], l2[3];
    for (int i = 0; i < 6; i++) { /* 512 → 2 × 256: a's halves in the low 256 bits, b's in the high */
        const __m512 a = v[2 * i], b = v[2 * i + 1];
        l1[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
    }
    for (int i = 0; i < 3; i++) { /* 128-bit blocks: [a0 a1 b0 b1] + [a2 a3 b2 b3] … */
        const __m512 a = l1[2 * i], b = l1[2 * i + 1];
        l2[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xDD));
    }
    /* block c of l2[i]: 4 partial sums of v[4i + c]; then two in-block transposes */
    const __m512 zero = _mm512_setzero_ps();
    __m512 l3a = _mm512_add_ps(_mm512_unpacklo_ps(l2[0], l2[1]), _mm512_unpackhi_ps(l2[0], l2[1]));
    __m512 l3b = _mm512_add_ps(_mm512_unpacklo_ps(l2[2], zero), _mm512_unpackhi_ps(l2[2], zero));
    __m512 l4 = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(l3a), _mm512_castps_pd(l3b))),
                              _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(l3a), _mm512_castps_pd(l3b))));
    float tmp[16]; /* block c of l4: sums of v[c], v[4 + c], v[8 + c], 0 */
    _mm512_storeu_ps(tmp, l4);
    for (int c = 0; c < 4; c++)
        for (int i = 0; i < 3; i++) s[4 * i + c] = tmp[4 * c + i];
}

static inline __m512 shared_terms(const Args *a, int64_t j, __m512 p0, __m512 p2) {
    const __m512 u = _mm512_fmadd_ps(p0, _mm512_loadu_ps(a->w1t + j), _mm512_loadu_ps(a->b1 + j));
    return _mm512_fmadd_ps(p2, _mm512_loadu_ps(a->w1t + 2 * a->hid + j), u);
}

static void fill_terms(const Args *a, float *dst, float x0, float x2) {
    const __m512 p0 = _mm512_set1_ps(x0), p2 = _mm512_set1_ps(x2);
    for (int64_t j = 0; j < a->hid; j += 16) _mm512_storeu_ps(dst + j, shared_terms(a, j, p0, p2));
}

/* acc[3q + r] += G_r(row q)[j:j+16] * max(w1 x1_q + u_q, 0) for the step's queries. */
#define STEP_BODY(UQ)                                                                                \
    for (int q = 0; q < QB; q++) {                                                                   \
        const __m512 t = _mm512_max_ps(_mm512_fmadd_ps(p1[q], v1, (UQ)), zero);                     \
        acc[3 * q] = _mm512_fmadd_ps(_mm512_loadu_ps(g[q] + j), t, acc[3 * q]);                      \
        acc[3 * q + 1] = _mm512_fmadd_ps(_mm512_loadu_ps(g[q] + hid + j), t, acc[3 * q + 1]);        \
        acc[3 * q + 2] = _mm512_fmadd_ps(_mm512_loadu_ps(g[q] + 2 * hid + j), t, acc[3 * q + 2]);    \
    }

/* The same when the step's queries share one table row: its G loaded once per j. */
#define STEP_BODY_ONE(UQ)                                                                            \
    {                                                                                                \
        const __m512 ga = _mm512_loadu_ps(g[0] + j), gb = _mm512_loadu_ps(g[0] + hid + j);           \
        const __m512 gc = _mm512_loadu_ps(g[0] + 2 * hid + j);                                       \
        for (int q = 0; q < QB; q++) {                                                               \
            const __m512 t = _mm512_max_ps(_mm512_fmadd_ps(p1[q], v1, (UQ)), zero);                 \
            acc[3 * q] = _mm512_fmadd_ps(ga, t, acc[3 * q]);                                         \
            acc[3 * q + 1] = _mm512_fmadd_ps(gb, t, acc[3 * q + 1]);                                 \
            acc[3 * q + 2] = _mm512_fmadd_ps(gc, t, acc[3 * q + 2]);                                 \
        }                                                                                            \
    }

/* Prefetch of the table rows ``pa``, ``pb`` (PF steps ahead), spread over the step's j loop: 6 lines per j. */
#define PF_J                                                                                         \
    _mm_prefetch((const char *)(pa + j), _MM_HINT_T0);                                              \
    _mm_prefetch((const char *)(pa + hid + j), _MM_HINT_T0);                                        \
    _mm_prefetch((const char *)(pa + 2 * hid + j), _MM_HINT_T0);                                    \
    _mm_prefetch((const char *)(pb + j), _MM_HINT_T0);                                              \
    _mm_prefetch((const char *)(pb + hid + j), _MM_HINT_T0);                                        \
    _mm_prefetch((const char *)(pb + 2 * hid + j), _MM_HINT_T0);

/* QB queries (rows ``row``, inputs x0..x2 [0, QB)) → out (QB, 3). */
static inline void step_avx512(const Args *a, Shared *c, const int64_t *row, const float *x0, const float *x1,
                               const float *x2, float **out, const float *pa, const float *pb) {
    const int64_t hid = a->hid;
    const float *w1 = a->w1t + hid;
    const float *g[QB];
    __m512 p1[QB], acc[3 * QB];
    int shared = hid <= MAXH;
    for (int q = 0; q < QB; q++) {
        g[q] = a->table + row[q] * a->ld;
        p1[q] = _mm512_set1_ps(x1[q]);
        acc[3 * q] = acc[3 * q + 1] = acc[3 * q + 2] = _mm512_setzero_ps();
    }
    const __m512 zero = _mm512_setzero_ps();
    if (shared) {
        const float *u[QB];
        const int same = step_terms(a, c, x0, x2, QB, u);
        int one = 1;
        for (int q = 1; q < QB; q++) one &= row[q] == row[0];
        if (same && one) {
            for (int64_t j = 0; j < hid; j += 16) {
                PF_J
                const __m512 uj = _mm512_loadu_ps(u[0] + j), v1 = _mm512_loadu_ps(w1 + j);
                STEP_BODY_ONE(uj)
            }
        } else if (one) {
            for (int64_t j = 0; j < hid; j += 16) {
                PF_J
                const __m512 v1 = _mm512_loadu_ps(w1 + j);
                STEP_BODY_ONE(_mm512_loadu_ps(u[q] + j))
            }
        } else if (same) {
            for (int64_t j = 0; j < hid; j += 16) {
                PF_J
                const __m512 uj = _mm512_loadu_ps(u[0] + j), v1 = _mm512_loadu_ps(w1 + j);
                STEP_BODY(uj)
            }
        } else {
            for (int64_t j = 0; j < hid; j += 16) {
                PF_J
                const __m512 v1 = _mm512_loadu_ps(w1 + j);
                STEP_BODY(_mm512_loadu_ps(u[q] + j))
            }
        }
        _mm_prefetch((const char *)(pa + 3 * hid), _MM_HINT_T0);
        _mm_prefetch((const char *)(pb + 3 * hid), _MM_HINT_T0);
    } else {
        __m512 p0[QB], p2[QB];
        for (int q = 0; q < QB; q++) p0[q] = _mm512_set1_ps(x0[q]), p2[q] = _mm512_set1_ps(x2[q]);
        for (int64_t j = 0; j < hid; j += 16) {
            const __m512 v1 = _mm512_loadu_ps(w1 + j);
            STEP_BODY(shared_terms(a, j, p0[q], p2[q]))
        }
    }
    float s[3 * QB];
    reduce12(acc, s);
    for (int q = 0; q < QB; q++)
        for (int r = 0; r < 3; r++) out[q][r] = s[3 * q + r] + g[q][3 * hid + r];
}
#undef STEP_BODY
#undef STEP_BODY_ONE
#undef PF_J

/* n queries in ``order`` (NULL: as given), QB per step; the table rows of the step PF steps ahead are
 * prefetched during each step (its first and last query's rows: one latent's in latent order). */
static void mlp_avx512(const Args *a, int64_t n, const int32_t *order, const int64_t *row, const float *x0,
                       const float *x1, const float *x2, float *out) {
    Shared c;
    c.n = 0, c.next = 0;
    for (int64_t m = 0; m < n; m += QB) {
        int64_t pr[QB];
        float p0[QB], p1[QB], p2[QB], *po[QB];
        const float *ahead[2];
        step_queries(a, order, m, n, QB, PF * QB, row, x0, x1, x2, out, pr, p0, p1, p2, po, ahead);
        step_avx512(a, &c, pr, p0, p1, p2, po, ahead[0], ahead[1]);
    }
}

#endif
