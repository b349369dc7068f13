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
 * Paths (metasr_simd()): AVX-512 (metasr_avx512.h; K = 3, H a multiple of 16: hidden units in the 16 lanes,
 * 4 queries per step), AVX2 + FMA (metasr_avx2.h; H a multiple of 8: 8 lanes, 2 queries per step), both with
 * one output row's first-layer terms cached (Shared) and the geometry 16 / 8 queries at a time
 * (metasr_geometry.h); any other shape, and builds without either: the portable loops below, ~4x slower than
 * the head's torch path, so the head uses such a build only in tests.
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

#define MAXH 1024 /* hidden units whose shared first-layer terms the vector paths cache */

/* The first layer's terms common to one output row, u = b1 + w0 x0 + w2 x2: an output row's queries share
 * its vertical offset x0 and the cell input x2, so with u cached their hidden layer is 1 FMA per unit, not 3.
 * Every query sums max(w1 x1 + u, 0) in this order, cached or not: outputs do not depend on the grouping. */
typedef struct {
    float x0, x2;
    int valid;
    float u[MAXH];
} Shared;

#if defined(__AVX512F__)
#include "metasr_avx512.h" /* mlp_avx512 */
#define SIMD 2
#elif defined(__AVX2__) && defined(__FMA__)
#include "metasr_avx2.h" /* mlp_avx2 */
#define SIMD 1
#else
#define SIMD 0
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
#if SIMD == 2
        if (k == 3 && hid % 16 == 0)
            mlp_avx512(&a, n, row, x0, x1, x2, out + 3 * r);
        else
#elif SIMD == 1
        if (k == 3 && hid % 8 == 0)
            mlp_avx2(&a, n, row, x0, x1, x2, out + 3 * r);
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

/* The vector path this build runs: 2 AVX-512, 1 AVX2 + FMA, 0 the portable loops (slower than torch's path:
 * the head does not use such a build). */
int64_t metasr_simd(void) { return SIMD; }
