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
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define BLOCK 64 /* queries whose geometry is computed together (stack arrays) */

typedef struct {
    const float *coord, *cell; /* (B*Q, 2) */
    int64_t q;                 /* queries per batch item */
    int64_t full_h, full_w;    /* the whole latent grid */
    int64_t off_y, off_x, th, tw, whole;
    const float *table; /* (B*th*tw, ld) */
    int64_t ld;
    const float *w1t; /* (3, H): the first layer's weight, transposed */
    const float *b1;  /* (H,) */
    int64_t hid, k;
    float *out; /* (B*Q, K) */
} Args;

/* fp32 constants of the geometry, rounded from double as torch.tensor([...]) and Python scalars are. */
typedef struct {
    float h, w, sy, sx, oy, ox, cy, cx, hy, hx, eps, clamp;
} Geo;

static Geo geo_of(const Args *a) {
    const double ry = 2.0 / (2.0 * (double)a->full_h), rx = 2.0 / (2.0 * (double)a->full_w);
    Geo g;
    g.h = (float)a->full_h, g.w = (float)a->full_w;
    g.sy = (float)(2.0 * ry), g.sx = (float)(2.0 * rx);       /* latent_centres: idx * 2r + (-1 + r) */
    g.oy = (float)(-1.0 + ry), g.ox = (float)(-1.0 + rx);
    g.cy = (float)(1.0 / (double)a->full_h), g.cx = (float)(1.0 / (double)a->full_w); /* to the corner */
    g.hy = (float)((double)a->full_h / 2.0), g.hx = (float)((double)a->full_w / 2.0);
    g.eps = 1e-6f, g.clamp = (float)(1.0 - 1e-6);
    return g;
}

/* Geometry of queries [r0, r0 + n) of one batch item (its table rows start at ``base``): table row and the 3
 * MLP inputs. Returns -1 - r for the first query whose latent lies outside a proper window, else 0. */
static int64_t geometry_scalar(const Args *a, const Geo *g, int64_t r0, int64_t n, int64_t base, int64_t *row,
                               float *x0, float *x1, float *x2) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t r = r0 + i;
        const float *c = a->coord + 2 * r, *s = a->cell + 2 * r;
        float ky = c[0] - s[0] / 2.0f, kx = c[1] - s[1] / 2.0f; /* the HR pixel's corner */
        float vy = ky + g->eps, vx = kx + g->eps;
        vy = fminf(fmaxf(vy, -g->clamp), g->clamp);
        vx = fminf(fmaxf(vx, -g->clamp), g->clamp);
        float iy = nearbyintf(((vy + 1.0f) * g->h - 1.0f) / 2.0f); /* grid_sample nearest: half to even */
        float ix = nearbyintf(((vx + 1.0f) * g->w - 1.0f) / 2.0f);
        iy = fminf(fmaxf(iy, 0.0f), g->h - 1.0f);
        ix = fminf(fmaxf(ix, 0.0f), g->w - 1.0f);
        const float qy = (iy * g->sy + g->oy) - g->cy, qx = (ix * g->sx + g->ox) - g->cx; /* latent corner */
        x0[i] = (ky - qy) * g->hy;
        x1[i] = (kx - qx) * g->hx;
        x2[i] = s[0] * g->hy;
        const int64_t ly = (int64_t)iy - a->off_y, lx = (int64_t)ix - a->off_x;
        if (!a->whole && !bad && (ly < 0 || ly >= a->th || lx < 0 || lx >= a->tw)) bad = -1 - r;
        row[i] = base + ly * a->tw + lx;
    }
    return bad;
}

#if defined(__AVX512F__)
/* The same operations on 16 queries at a time (n a multiple of 16; th * tw < 2^31). */
static int64_t geometry_avx512(const Args *a, const Geo *g, int64_t r0, int64_t n, int64_t base, int64_t *row,
                               float *x0, float *x1, float *x2) {
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    const __m512 eps = _mm512_set1_ps(g->eps), hi = _mm512_set1_ps(g->clamp), lo = _mm512_set1_ps(-g->clamp);
    const __m512 h = _mm512_set1_ps(g->h), w = _mm512_set1_ps(g->w);
    const __m512 hm = _mm512_set1_ps(g->h - 1.0f), wm = _mm512_set1_ps(g->w - 1.0f);
    const __m512i oy = _mm512_set1_epi32((int)a->off_y), ox = _mm512_set1_epi32((int)a->off_x);
    const __m512i th = _mm512_set1_epi32((int)a->th), tw = _mm512_set1_epi32((int)a->tw);
    const __m512i b64 = _mm512_set1_epi64(base);
    for (int64_t i = 0; i < n; i += 16) {
        const float *c = a->coord + 2 * (r0 + i), *s = a->cell + 2 * (r0 + i);
        const __m512 c0 = _mm512_loadu_ps(c), c1 = _mm512_loadu_ps(c + 16);
        const __m512 s0 = _mm512_loadu_ps(s), s1 = _mm512_loadu_ps(s + 16);
        const __m512 sy = _mm512_permutex2var_ps(s0, ev, s1), sx = _mm512_permutex2var_ps(s0, od, s1);
        const __m512 ky = _mm512_sub_ps(_mm512_permutex2var_ps(c0, ev, c1), _mm512_mul_ps(sy, half));
        const __m512 kx = _mm512_sub_ps(_mm512_permutex2var_ps(c0, od, c1), _mm512_mul_ps(sx, half));
        const __m512 vy = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(ky, eps), lo), hi);
        const __m512 vx = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(kx, eps), lo), hi);
        __m512 iy = _mm512_mul_ps(_mm512_sub_ps(_mm512_mul_ps(_mm512_add_ps(vy, one), h), one), half);
        __m512 ix = _mm512_mul_ps(_mm512_sub_ps(_mm512_mul_ps(_mm512_add_ps(vx, one), w), one), half);
        iy = _mm512_roundscale_ps(iy, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        ix = _mm512_roundscale_ps(ix, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        iy = _mm512_min_ps(_mm512_max_ps(iy, zero), hm);
        ix = _mm512_min_ps(_mm512_max_ps(ix, zero), wm);
        const __m512 qy = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(iy, _mm512_set1_ps(g->sy)), _mm512_set1_ps(g->oy)),
                                        _mm512_set1_ps(g->cy));
        const __m512 qx = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(ix, _mm512_set1_ps(g->sx)), _mm512_set1_ps(g->ox)),
                                        _mm512_set1_ps(g->cx));
        _mm512_storeu_ps(x0 + i, _mm512_mul_ps(_mm512_sub_ps(ky, qy), _mm512_set1_ps(g->hy)));
        _mm512_storeu_ps(x1 + i, _mm512_mul_ps(_mm512_sub_ps(kx, qx), _mm512_set1_ps(g->hx)));
        _mm512_storeu_ps(x2 + i, _mm512_mul_ps(sy, _mm512_set1_ps(g->hy)));
        const __m512i ly = _mm512_sub_epi32(_mm512_cvttps_epi32(iy), oy);
        const __m512i lx = _mm512_sub_epi32(_mm512_cvttps_epi32(ix), ox);
        if (!a->whole) {
            const __mmask16 out = _mm512_cmplt_epi32_mask(ly, _mm512_setzero_si512()) |
                                  _mm512_cmpge_epi32_mask(ly, th) |
                                  _mm512_cmplt_epi32_mask(lx, _mm512_setzero_si512()) |
                                  _mm512_cmpge_epi32_mask(lx, tw);
            if (out) return -1 - (r0 + i + __builtin_ctz(out));
        }
        const __m512i loc = _mm512_add_epi32(_mm512_mullo_epi32(ly, tw), lx);
        _mm512_storeu_si512(row + i, _mm512_add_epi64(b64, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(loc))));
        _mm512_storeu_si512(row + i + 8,
                            _mm512_add_epi64(b64, _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(loc, 1))));
    }
    return 0;
}
#endif

static int64_t geometry(const Args *a, const Geo *g, int64_t r0, int64_t n, int64_t base, int64_t *row, float *x0,
                        float *x1, float *x2) {
    int64_t i = 0;
#if defined(__AVX512F__)
    if (a->th * a->tw < ((int64_t)1 << 31) && a->full_h < ((int64_t)1 << 24) && a->full_w < ((int64_t)1 << 24)) {
        i = n - n % 16;
        const int64_t bad = geometry_avx512(a, g, r0, i, base, row, x0, x1, x2);
        if (bad) return bad;
    }
#endif
    return geometry_scalar(a, g, r0 + i, n - i, base, row + i, x0 + i, x1 + i, x2 + i);
}

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
