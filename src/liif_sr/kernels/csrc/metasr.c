/* MetaSR CPU inference decode, fused: corner geometry, weight-MLP hidden layer + ReLU, 3-row product.
 *
 * Per query q (liif_sr.models.heads.metasr, the factorised fast path):
 *   corner = coord - cell / 2; latent p = nearest(corner + 1e-6 clamped to +-(1 - 1e-6)) (grid_sample nearest);
 *   x = [(corner - q_corner(p)) * (h/2, w/2), cell_row * h/2]       (3 inputs, fp32 bit for bit as torch)
 *   t = relu(W1 x + b1)                                               (H hidden values, never stored)
 *   out_r = G_r(p) . t + beta_r(p)                                    (G_r, beta_r: row p of the table)
 * The table row of latent p holds G (row-major (K, H)) then beta (K). No grouping by latent is needed: a
 * row is read from cache by the queries that share it (neighbours in any raster or sorted order).
 *
 * The geometry repeats torch's fp32 operations one by one (the build has no -ffast-math and, in ISO C mode,
 * no contraction into FMAs), so the latent and inputs equal corner_geometry's bit for bit; the MLP sums may
 * be associated differently from torch's (float rounding only).
 *
 * AVX-512 (K = 3, H a multiple of 16): hidden units in the 16 lanes, QB queries per step sharing the W1/b1
 * loads; the 3*QB accumulators are reduced together by a shuffle tree. Any other shape and any other CPU:
 * the portable loops below.
 */
/* The geometry must round like torch's separate fp32 operations: no contraction of a * b + c into an FMA,
 * whatever the build's -std (GNU modes contract by default in GCC). The MLP's FMAs are explicit intrinsics. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include <stddef.h>
#include <stdint.h>

#define BLOCK 64 /* queries whose geometry is computed together (stack arrays) */

#include "metasr_geometry.h"

/* Portable: one query at a time, any H and K. */
static void mlp_portable(const Args *a, int64_t n, const int64_t *row, const float *x0, const float *x1,
                         const float *x2, float *out) {
    const int64_t hid = a->hid, k = a->k;
    const float *w0 = a->w1t, *w1 = a->w1t + hid, *w2 = a->w1t + 2 * hid;
    for (int64_t i = 0; i < n; i++) {
        const float *g = a->table + row[i] * a->ld;
        for (int64_t r = 0; r < k; r++) out[i * k + r] = g[k * hid + r];
        for (int64_t j = 0; j < hid; j++) {
            float t = a->b1[j] + w0[j] * x0[i] + w1[j] * x1[i] + w2[j] * x2[i];
            t = t > 0.0f ? t : 0.0f;
            for (int64_t r = 0; r < k; r++) out[i * k + r] += g[r * hid + j] * t;
        }
    }
}

#if defined(__AVX512F__)
#define QB 4 /* queries per step */

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

/* QB queries (rows ``row``, inputs x0..x2 [0, QB)) → out (QB, 3). */
static inline void step_avx512(const Args *a, const int64_t *row, const float *x0, const float *x1,
                               const float *x2, float *out) {
    const int64_t hid = a->hid;
    const float *w0 = a->w1t, *w1 = a->w1t + hid, *w2 = a->w1t + 2 * hid;
    const float *g[QB];
    __m512 p0[QB], p1[QB], p2[QB], acc[3 * QB];
    for (int q = 0; q < QB; q++) {
        g[q] = a->table + row[q] * a->ld;
        p0[q] = _mm512_set1_ps(x0[q]);
        p1[q] = _mm512_set1_ps(x1[q]);
        p2[q] = _mm512_set1_ps(x2[q]);
        acc[3 * q] = acc[3 * q + 1] = acc[3 * q + 2] = _mm512_setzero_ps();
    }
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t j = 0; j < hid; j += 16) {
        const __m512 bj = _mm512_loadu_ps(a->b1 + j), v0 = _mm512_loadu_ps(w0 + j);
        const __m512 v1 = _mm512_loadu_ps(w1 + j), v2 = _mm512_loadu_ps(w2 + j);
        for (int q = 0; q < QB; q++) {
            __m512 t = _mm512_fmadd_ps(p0[q], v0, bj);
            t = _mm512_fmadd_ps(p1[q], v1, t);
            t = _mm512_fmadd_ps(p2[q], v2, t);
            t = _mm512_max_ps(t, zero); /* ReLU */
            acc[3 * q] = _mm512_fmadd_ps(_mm512_loadu_ps(g[q] + j), t, acc[3 * q]);
            acc[3 * q + 1] = _mm512_fmadd_ps(_mm512_loadu_ps(g[q] + hid + j), t, acc[3 * q + 1]);
            acc[3 * q + 2] = _mm512_fmadd_ps(_mm512_loadu_ps(g[q] + 2 * hid + j), t, acc[3 * q + 2]);
        }
    }
    float s[3 * QB];
    reduce12(acc, s);
    for (int q = 0; q < QB; q++)
        for (int r = 0; r < 3; r++) out[q * 3 + r] = s[3 * q + r] + g[q][3 * hid + r];
}

#ifndef PF
#define PF 1 /* steps ahead whose table rows are prefetched */
#endif

/* Prefetch the table rows of one step's queries (each distinct row once; ``prev``: the row just before). */
static inline void prefetch_rows(const Args *a, const int64_t *row, int64_t prev) {
    for (int q = 0; q < QB; q++) {
        if (row[q] == prev) continue;
        prev = row[q];
        const char *p = (const char *)(a->table + row[q] * a->ld);
        for (int64_t off = 0; off < a->ld * (int64_t)sizeof(float); off += 64) _mm_prefetch(p + off, _MM_HINT_T0);
    }
}

/* n queries; a partial last step repeats its last query (every query is summed the same way wherever the
 * block and thread boundaries fall: results do not depend on the chunking). */
static void mlp_avx512(const Args *a, int64_t n, const int64_t *row, const float *x0, const float *x1,
                       const float *x2, float *out) {
    int64_t i = 0;
    for (; i + QB <= n; i += QB) {
        if (i + PF * QB < n) prefetch_rows(a, row + i + PF * QB, row[i + PF * QB - 1]);
        step_avx512(a, row + i, x0 + i, x1 + i, x2 + i, out + 3 * i);
    }
    if (i < n) {
        int64_t pr[QB];
        float p0[QB], p1[QB], p2[QB], po[3 * QB];
        for (int q = 0; q < QB; q++) {
            const int64_t m = i + q < n ? i + q : n - 1;
            pr[q] = row[m], p0[q] = x0[m], p1[q] = x1[m], p2[q] = x2[m];
        }
        step_avx512(a, pr, p0, p1, p2, po);
        for (int64_t m = 0; m < 3 * (n - i); m++) out[3 * i + m] = po[m];
    }
}
#endif

/* Decode queries [r0, r1) of the flattened (B*Q) batch. Returns 0, or -1 - r for the first query r (of a
 * block) whose latent lies outside a proper window (nothing of that block is written). */
int64_t metasr_decode(const float *coord, const float *cell, int64_t q, int64_t full_h, int64_t full_w,
                      int64_t off_y, int64_t off_x, int64_t th, int64_t tw, int64_t whole, const float *table,
                      int64_t ld, const float *w1t, const float *b1, int64_t hid, int64_t k, float *out,
                      int64_t r0, int64_t r1) {
    const Args a = {coord, cell, q, full_h, full_w, off_y, off_x, th, tw, whole, table, ld, w1t, b1, hid, k, out};
    const Geo g = geo_of(&a);
    int64_t row[BLOCK];
    float x0[BLOCK], x1[BLOCK], x2[BLOCK];
    for (int64_t r = r0; r < r1;) {
        const int64_t end = (r / q + 1) * q < r1 ? (r / q + 1) * q : r1; /* blocks within one batch item */
        const int64_t n = end - r < BLOCK ? end - r : BLOCK;
        const int64_t bad = geometry(&a, &g, r, n, (r / q) * th * tw, row, x0, x1, x2);
        if (bad) return bad;
#if defined(__AVX512F__)
        if (k == 3 && hid % 16 == 0)
            mlp_avx512(&a, n, row, x0, x1, x2, out + 3 * r);
        else
#endif
            mlp_portable(&a, n, row, x0, x1, x2, out + k * r);
        r += n;
    }
    return 0;
}

/* The geometry alone (tests: bitwise equal to corner_geometry + local_rows). */
int64_t metasr_geometry(const float *coord, const float *cell, int64_t q, int64_t full_h, int64_t full_w,
                        int64_t off_y, int64_t off_x, int64_t th, int64_t tw, int64_t whole, int64_t *row,
                        float *inp, int64_t r0, int64_t r1) {
    Args a = {0};
    a.coord = coord, a.cell = cell, a.q = q, a.full_h = full_h, a.full_w = full_w;
    a.off_y = off_y, a.off_x = off_x, a.th = th, a.tw = tw, a.whole = whole;
    const Geo g = geo_of(&a);
    float x0[BLOCK], x1[BLOCK], x2[BLOCK];
    for (int64_t r = r0; r < r1;) {
        const int64_t end = (r / q + 1) * q < r1 ? (r / q + 1) * q : r1;
        const int64_t n = end - r < BLOCK ? end - r : BLOCK;
        const int64_t bad = geometry(&a, &g, r, n, (r / q) * th * tw, row + r, x0, x1, x2);
        if (bad) return bad;
        for (int64_t i = 0; i < n; i++) {
            inp[3 * (r + i)] = x0[i], inp[3 * (r + i) + 1] = x1[i], inp[3 * (r + i) + 2] = x2[i];
        }
        r += n;
    }
    return 0;
}
