/* MetaSR CPU inference decode, fused: corner geometry, weight-MLP hidden layer + ReLU, 3-row product.
 *
 * Per query q (liif_sr.models.heads.metasr, the factorised fast path):
 *   corner = coord - cell / 2; latent p = nearest(corner + 1e-6 clamped to +-(1 - 1e-6)) (grid_sample nearest);
 *   x = [(corner - q_corner(p)) * (h/2, w/2), cell_row * h/2]       (3 inputs, fp32 bit for bit as torch)
 *   t = relu(W1 x + b1)                                               (H hidden values, never stored)
 *   out_r = G_r(p) . t + beta_r(p)                                    (G_r, beta_r: row p of the table)
 * The table row of latent p holds G (row-major (K, H)) then beta (K). Queries come in blocks of up to
 * SORT_BLOCK; a block whose latents repeat in short runs (a raster grid at x2-x3: each output row reads a
 * latent row's 3 KB table rows for only ~scale queries each) is decoded in latent order (latent_order), so a
 * table row is read from memory once per block and its ~scale^2 queries run back to back; the table rows 3
 * steps ahead are prefetched a few lines per j step. Outputs go to each query's own place, and every query
 * sums the same way in any order (the order only changes which query runs when).
 *
 * The geometry repeats torch's fp32 operations one by one (the build has no -ffast-math and, in ISO C mode,
 * no contraction into FMAs), so the latent and inputs equal corner_geometry's bit for bit; the MLP sums may
 * be associated differently from torch's (float rounding only).
 *
 * Paths (metasr_simd()): AVX-512 (metasr_avx512.h; K = 3, H a multiple of 16: hidden units in the 16 lanes,
 * 4 queries per step, one load of G per step when its queries share a latent), AVX2 + FMA (metasr_avx2.h; H a
 * multiple of 8: 8 lanes, 2 queries per step), both with SLOTS output rows' first-layer terms cached (Shared)
 * and the geometry 16 / 8 queries at a time
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
#include <stdlib.h>

#define BLOCK 64 /* queries whose geometry is computed together (stack arrays) */

#include "metasr_geometry.h"

/* Portable: one query at a time, any H and K. */
/* The n queries row[i], x0..x2[i] → out[i * K..], i = order[0..n) (or 0..n when ``order`` is NULL). */
static void mlp_portable(const Args *a, int64_t n, const int32_t *order, const int64_t *row, const float *x0,
                         const float *x1, const float *x2, float *out) {
    const int64_t hid = a->hid, k = a->k;
    const float *w0 = a->w1t, *w1 = a->w1t + hid, *w2 = a->w1t + 2 * hid;
    for (int64_t m = 0; m < n; m++) {
        const int64_t i = order ? order[m] : m;
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
#define SLOTS 8    /* output rows whose shared terms are cached at once */

/* The first layer's terms common to one output row, u = b1 + w0 x0 + w2 x2: an output row's queries share
 * its vertical offset x0 and the cell input x2, so with u cached their hidden layer is 1 FMA per unit, not 3.
 * SLOTS rows are cached (the latent order below interleaves the ~scale output rows that share a latent row),
 * the oldest replaced first. Every query sums max(w1 x1 + u, 0) in this order, cached or not: outputs do not
 * depend on the grouping or the order. */
typedef struct {
    int n, next;
    float x0[SLOTS], x2[SLOTS];
    float u[SLOTS][MAXH];
} Shared;

/* The slot holding (x0, x2), or -1 - s: the slot s to fill for it, never one of ``busy`` (a bit per slot: those
 * the current step reads). */
static inline int shared_slot(Shared *c, float x0, float x2, unsigned busy) {
    for (int s = 0; s < c->n; s++)
        if (c->x0[s] == x0 && c->x2[s] == x2) return s;
    int s;
    if (c->n < SLOTS) {
        s = c->n++;
    } else {
        while (busy >> c->next & 1u) c->next = (c->next + 1) % SLOTS;
        s = c->next, c->next = (c->next + 1) % SLOTS;
    }
    c->x0[s] = x0, c->x2[s] = x2;
    return -1 - s;
}

/* The queries of one vector step: positions m0 .. m0 + qb - 1 of the order (``order`` or the identity), the
 * last query repeated past n (a partial step sums each query as a full one does: results do not depend on the
 * chunking or the order); their table rows, inputs and output addresses (K = 3), and in ``ahead`` the table
 * rows of the first and last query ``skip`` positions further on (prefetched during this step). */
static inline void step_queries(const Args *a, const int32_t *order, int64_t m0, int64_t n, int qb, int64_t skip,
                                const int64_t *row, const float *x0, const float *x1, const float *x2, float *out,
                                int64_t *pr, float *p0, float *p1, float *p2, float **po, const float **ahead) {
    for (int q = 0; q < qb; q++) {
        const int64_t m = m0 + q < n ? m0 + q : n - 1, i = order ? order[m] : m;
        pr[q] = row[i], p0[q] = x0[i], p1[q] = x1[i], p2[q] = x2[i], po[q] = out + 3 * i;
    }
    const int64_t f = m0 + skip < n ? m0 + skip : n - 1, l = f + qb - 1 < n ? f + qb - 1 : n - 1;
    ahead[0] = a->table + row[order ? order[f] : f] * a->ld;
    ahead[1] = a->table + row[order ? order[l] : l] * a->ld;
}

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
/* u = b1 + w0 x0 + w2 x2 for every hidden unit into ``dst`` (the vector path's header defines it). */
static void fill_terms(const Args *a, float *dst, float x0, float x2);

/* The cached first-layer terms of a step's qb queries into u[0..qb), computed into a free slot for a row not
 * cached yet; returns whether all qb share one row's terms. */
static inline int step_terms(const Args *a, Shared *c, const float *x0, const float *x2, int qb, const float **u) {
    int same = 1;
    unsigned busy = 0;
    for (int q = 0; q < qb; q++) {
        int s = shared_slot(c, x0[q], x2[q], busy);
        if (s < 0) { /* a new output row: its terms into the slot */
            s = -1 - s;
            fill_terms(a, c->u[s], x0[q], x2[q]);
        }
        u[q] = c->u[s];
        busy |= 1u << s;
        same &= u[q] == u[0];
    }
    return same;
}
#endif

#if defined(__AVX512F__)
#include "metasr_avx512.h" /* mlp_avx512 */
#define SIMD 2
#elif defined(__AVX2__) && defined(__FMA__)
#include "metasr_avx2.h" /* mlp_avx2 */
#define SIMD 1
#else
#define SIMD 0
#endif


#ifndef SORT_BLOCK
#define SORT_BLOCK 4096 /* queries decoded in latent order together (0: always the given order) */
#endif
#define SORT_RANGE (4 * SORT_BLOCK) /* widest span of table rows a block is sorted over */
#ifndef SORT_RUN10
#define SORT_RUN10 35 /* sorted only when the given order's runs of one latent average <= SORT_RUN10 / 10 queries */
#endif

/* A stable order of [0, n) by table row (counting sort) into ``perm``, when the given order is not sorted
 * already and its rows span at most SORT_RANGE (``count``: SORT_RANGE + 1 ints); returns whether it made one.
 * In latent order the ~scale² queries of a latent run back to back: its table row comes from memory once per
 * block (row-major order reads it once per output row, from DRAM the first time, from L2 after). */
static int latent_order(const int64_t *row, int64_t n, int32_t *perm, int32_t *count) {
    int64_t lo = row[0], hi = row[0];
    int sorted = 1;
    int64_t runs = 1;
    for (int64_t i = 1; i < n; i++) {
        lo = row[i] < lo ? row[i] : lo, hi = row[i] > hi ? row[i] : hi;
        sorted &= row[i] >= row[i - 1];
        runs += row[i] != row[i - 1];
    }
    if (sorted || hi - lo >= SORT_RANGE || 10 * n > SORT_RUN10 * runs) return 0;
    for (int64_t b = 0; b <= hi - lo + 1; b++) count[b] = 0;
    for (int64_t i = 0; i < n; i++) count[row[i] - lo + 1]++;
    for (int64_t b = 1; b <= hi - lo; b++) count[b] += count[b - 1];
    for (int64_t i = 0; i < n; i++) perm[count[row[i] - lo]++] = (int32_t)i;
    return 1;
}

/* The n queries of a block in ``order`` (NULL: as given) → out (n, K). */
static void mlp(const Args *a, int64_t n, const int32_t *order, const int64_t *row, const float *x0,
                const float *x1, const float *x2, float *out) {
#if SIMD == 2
    if (a->k == 3 && a->hid % 16 == 0) {
        mlp_avx512(a, n, order, row, x0, x1, x2, out);
        return;
    }
#elif SIMD == 1
    if (a->k == 3 && a->hid % 8 == 0) {
        mlp_avx2(a, n, order, row, x0, x1, x2, out);
        return;
    }
#endif
    mlp_portable(a, n, order, row, x0, x1, x2, out);
}

/* Working arrays of a block of ``cap`` queries: its geometry and latent order. */
typedef struct {
    int64_t cap, *row;
    float *x;
    int32_t *perm, *count;
} Work;

static int work_alloc(Work *w, int64_t cap) {
    w->cap = cap;
    w->row = malloc(cap * sizeof(int64_t));
    w->x = malloc(3 * cap * sizeof(float));
    w->perm = malloc((cap + SORT_RANGE + 1) * sizeof(int32_t));
    if (!w->row || !w->x || !w->perm) {
        free(w->row), free(w->x), free(w->perm);
        return 0;
    }
    w->count = w->perm + cap;
    return 1;
}

/* Decode queries [r0, r1) of the flattened (B*Q) batch. Returns 0, -1 - r for the first query r (of a block)
 * whose latent lies outside a proper window (nothing of that block is written), or INT64_MIN when the working
 * memory could not be allocated (nothing written). */
int64_t metasr_decode(const float *coord, const float *cell, int64_t q, int64_t full_h, int64_t full_w,
                      int64_t off_y, int64_t off_x, int64_t th, int64_t tw, int64_t whole, const float *table,
                      int64_t ld, const float *w1t, const float *b1, int64_t hid, int64_t k, float *out,
                      int64_t r0, int64_t r1) {
    const Args a = {coord, cell, q, full_h, full_w, off_y, off_x, th, tw, whole, table, ld, w1t, b1, hid, k, out};
    const Geo g = geo_of(&a);
    const int64_t block = SORT_BLOCK > BLOCK ? SORT_BLOCK : BLOCK;
    Work w;
    if (!work_alloc(&w, r1 - r0 < block ? r1 - r0 : block)) return INT64_MIN;
    int64_t bad = 0;
    for (int64_t r = r0; r < r1 && !bad;) {
        const int64_t end = (r / q + 1) * q < r1 ? (r / q + 1) * q : r1; /* blocks within one batch item */
        const int64_t n = end - r < w.cap ? end - r : w.cap;
        float *x0 = w.x, *x1 = w.x + w.cap, *x2 = w.x + 2 * w.cap;
        bad = geometry(&a, &g, r, n, (r / q) * th * tw, w.row, x0, x1, x2);
        if (bad) break;
        const int sort = SORT_BLOCK && latent_order(w.row, n, w.perm, w.count);
        mlp(&a, n, sort ? w.perm : NULL, w.row, x0, x1, x2, out + k * r);
        r += n;
    }
    free(w.row), free(w.x), free(w.perm);
    return bad;
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
