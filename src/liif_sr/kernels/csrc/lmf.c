/* The fused CPU decode of the latent modulated function heads (LM-LIIF, LM-LTE, LM-CiaoSR; liif_sr.kernels.lmf).
 *
 * For each query: the local ensemble's geometry (the 4 shifted nearest latents, relative coordinates, area
 * weights with the diagonal swap; bit for bit as liif_sr.models.heads.geometry), the render MLP's input per
 * member (mode 0: a linear map of the member's geometry [rel | rel_cell] added to layer 0's per-latent part;
 * mode 1, LM-LTE: coef' * [cos(pi phi), sin(pi phi)]), all modulated layers x <- relu((W x) * (1 + s) + t')
 * with the per-latent table row [1 + s_i | t'_i] of each layer (biases folded), the ensemble blend (done
 * before the linear output layer: sum_m w_m (W x_m + b) = W (sum_m w_m x_m) + b sum_m w_m), the output layer
 * and the optional bilinear LR skip. Width 16 only (one AVX-512 register per row).
 *
 * Build: -O3 -march=native -std=c11 (no -ffast-math: the geometry must round as PyTorch does; ISO C mode
 * keeps GCC from contracting a * b + c there, a pragma keeps clang from it). AVX-512 intrinsics when
 * __AVX512F__, AVX2 + FMA intrinsics when __AVX2__ and __FMA__, else portable C (a reference: lmf_simd() = 0).
 */
#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* the geometry rounds as PyTorch: no a * b + c contraction (clang's default is on) */
#endif

#include "common.h"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#define HD 16          /* render width */
#define QB 16          /* queries per block */
#define RB (4 * QB)    /* member rows per block */
#define MAX_OUT 16

typedef struct {
    int64_t h, w, off_y, off_x, th, tw, whole;
} Geom;

typedef struct {
    const float *table;   /* (B*th*tw, stride) per-latent rows: layer i at i*32: [1+s_i | t'_i]; LTE code at depth*32 */
    int64_t stride, depth, mode, n_geo, out_dim, lr_dim;
    const float *w_first; /* mode 0: (n_geo, 16) (in, out); mode 1: imphase (8, 2) (out, in) */
    const float *w_hidden; /* (depth, 16, 16) (in, out) */
    const float *w_out;   /* (16, 16) (in, out), columns >= out_dim zero */
    const float *b_out;   /* (out_dim) */
    const float *lr;      /* (B*th*tw, lr_dim) channels-last LR rows or NULL */
} Net;

/* One block's per-row and per-query data. */
typedef struct {
    float x[RB * HD] __attribute__((aligned(64)));
    const float *row[RB];
    float rel[RB][2];
    float wt[RB];
    float rc[QB][2];
    float wsum[QB];
    float skip[QB][MAX_OUT];
} Block;

/* ------------------------------------------------------------------------------------------------ geometry */

/* The 4 members of query (cy, cx) of item b: table rows, relative coordinates, blend weights (area of the
 * diagonally opposite member / total). Returns LIIF_ERR_WINDOW if a latent lies outside a proper window. */
static int members(const Geom *g, const Net *n, int64_t b, float cy, float cx, Block *blk, int r0, float *wsum) {
    const float hy = (float)g->h, hx = (float)g->w;
    const float sy = (float)(1.0 / (double)g->h), sx = (float)(1.0 / (double)g->w);
    const double ry = 2.0 / (2.0 * (double)g->h), rx = 2.0 / (2.0 * (double)g->w);
    const float ay = (float)(2.0 * ry), ax = (float)(2.0 * rx), by = (float)(-1.0 + ry), bx = (float)(-1.0 + rx);
    const float eps = (float)1e-6, clamp = (float)(1.0 - 1e-6);
    float area[4];
    for (int s = 0; s < 4; s++) {
        float ty = cy + (s < 2 ? -sy : sy), tx = cx + ((s & 1) ? sx : -sx);
        ty = ty + eps;
        tx = tx + eps;
        ty = ty < -clamp ? -clamp : (ty > clamp ? clamp : ty);
        tx = tx < -clamp ? -clamp : (tx > clamp ? clamp : tx);
        float iy = nearbyintf(((ty + 1.0f) * hy - 1.0f) / 2.0f), ix = nearbyintf(((tx + 1.0f) * hx - 1.0f) / 2.0f);
        iy = iy < 0.0f ? 0.0f : iy;
        ix = ix < 0.0f ? 0.0f : ix;
        iy = iy < hy - 1.0f ? iy : hy - 1.0f;
        ix = ix < hx - 1.0f ? ix : hx - 1.0f;
        float centre_y = iy * ay, centre_x = ix * ax;
        centre_y = centre_y + by;
        centre_x = centre_x + bx;
        const float rel_y = (cy - centre_y) * hy, rel_x = (cx - centre_x) * hx;
        const int64_t ly = (int64_t)iy - g->off_y, lx = (int64_t)ix - g->off_x;
        if (!g->whole && (ly < 0 || ly >= g->th || lx < 0 || lx >= g->tw)) return LIIF_ERR_WINDOW;
        blk->row[r0 + s] = n->table + ((b * g->th + ly) * g->tw + lx) * n->stride;
        blk->rel[r0 + s][0] = rel_y;
        blk->rel[r0 + s][1] = rel_x;
        area[s] = fabsf(rel_y * rel_x) + (float)1e-9;
    }
    const float tot = ((area[0] + area[1]) + area[2]) + area[3];
    float sum = 0.0f;
    for (int s = 0; s < 4; s++) {
        blk->wt[r0 + s] = area[3 - s] / tot;
        sum += blk->wt[r0 + s];
    }
    *wsum = sum;
    return LIIF_OK;
}

/* LTE's bilinear skip (grid_sample bilinear, border padding, align_corners=False) read from a window. */
static int bilinear_skip(const Geom *g, const Net *n, int64_t b, float cy, float cx, float *out) {
    const float size[2] = {(float)g->h, (float)g->w};
    const float c[2] = {cy, cx};
    float lo[2], hi[2], frac[2];
    for (int a = 0; a < 2; a++) {
        float pos = ((c[a] + 1.0f) * size[a] - 1.0f) / 2.0f;
        pos = pos < 0.0f ? 0.0f : pos;
        pos = pos < size[a] - 1.0f ? pos : size[a] - 1.0f;
        lo[a] = floorf(pos);
        frac[a] = pos - lo[a];
        hi[a] = lo[a] + 1.0f < size[a] - 1.0f ? lo[a] + 1.0f : size[a] - 1.0f;
    }
    const float ys[4] = {lo[0], lo[0], hi[0], hi[0]}, xs[4] = {lo[1], hi[1], lo[1], hi[1]};
    const float fy = frac[0], fx = frac[1];
    const float wts[4] = {(1.0f - fy) * (1.0f - fx), (1.0f - fy) * fx, fy * (1.0f - fx), fy * fx};
    for (int k = 0; k < n->lr_dim; k++) out[k] = 0.0f;
    for (int i = 0; i < 4; i++) {
        const int64_t ly = (int64_t)ys[i] - g->off_y, lx = (int64_t)xs[i] - g->off_x;
        if (!g->whole && (ly < 0 || ly >= g->th || lx < 0 || lx >= g->tw)) return LIIF_ERR_WINDOW;
        const float *v = n->lr + ((b * g->th + ly) * g->tw + lx) * n->lr_dim;
        for (int k = 0; k < n->lr_dim; k++) out[k] = out[k] + v[k] * wts[i];
    }
    return LIIF_OK;
}

/* ------------------------------------------------------------------------------------------ AVX-512 path */
#ifdef __AVX512F__

/* sin (lanes with add = 0) or cos (add = 1) of x: Cody-Waite reduction by pi/2 (three parts, FMA) and the
 * Cephes minimax polynomials on [-pi/4, pi/4]; lanes with |x| > 1e5 go through libm. */
static inline __m512 sincos16(__m512 x, __m512i add) {
    const __m512 j = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.6366197466850281f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(j, _mm512_set1_ps(1.5707963705062866f), x);
    r = _mm512_fnmadd_ps(j, _mm512_set1_ps(-4.371138828673793e-08f), r);
    r = _mm512_fnmadd_ps(j, _mm512_set1_ps(-1.7151245100058819e-15f), r);
    const __m512 r2 = _mm512_mul_ps(r, r);
    __m512 ps = _mm512_fmadd_ps(r2, _mm512_set1_ps(-1.9515295891e-4f), _mm512_set1_ps(8.3321608736e-3f));
    ps = _mm512_fmadd_ps(ps, r2, _mm512_set1_ps(-1.6666654611e-1f));
    const __m512 s = _mm512_fmadd_ps(_mm512_mul_ps(ps, r2), r, r);
    __m512 pc = _mm512_fmadd_ps(r2, _mm512_set1_ps(2.443315711809948e-5f), _mm512_set1_ps(-1.388731625493765e-3f));
    pc = _mm512_fmadd_ps(pc, r2, _mm512_set1_ps(4.166664568298827e-2f));
    const __m512 c = _mm512_fmadd_ps(_mm512_mul_ps(pc, r2), r2, _mm512_fnmadd_ps(_mm512_set1_ps(0.5f), r2, _mm512_set1_ps(1.0f)));
    const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(j), add);
    __m512 res = _mm512_mask_blend_ps(_mm512_test_epi32_mask(q, _mm512_set1_epi32(1)), s, c);
    const __mmask16 neg = _mm512_test_epi32_mask(q, _mm512_set1_epi32(2));
    res = _mm512_castsi512_ps(_mm512_mask_xor_epi32(_mm512_castps_si512(res), neg, _mm512_castps_si512(res),
                                                    _mm512_set1_epi32((int)0x80000000u)));
    const __m512 ax = _mm512_abs_ps(x);
    const __mmask16 big = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(1e5f), _CMP_NLE_UQ);
    if (big) {
        float xs[16], rs[16];
        int adds[16];
        _mm512_storeu_ps(xs, x);
        _mm512_storeu_ps(rs, res);
        _mm512_storeu_si512((void *)adds, add);
        for (int k = 0; k < 16; k++)
            if (big >> k & 1) rs[k] = adds[k] ? cosf(xs[k]) : sinf(xs[k]);
        res = _mm512_loadu_ps(rs);
    }
    return res;
}

/* The render input of every row of the block into blk->x (mode 0 also runs modulated layer 0). */
static void inputs(const Net *n, Block *blk, int nq, const float phase[QB][8]) {
    const int rows = 4 * nq;
    const __m512 zero = _mm512_setzero_ps();
    if (n->mode == 0) {
        const __m512 w0 = _mm512_loadu_ps(n->w_first), w1 = _mm512_loadu_ps(n->w_first + HD);
        for (int r = 0; r < rows; r++) {
            __m512 x = _mm512_mul_ps(_mm512_set1_ps(blk->rel[r][0]), w0);
            x = _mm512_fmadd_ps(_mm512_set1_ps(blk->rel[r][1]), w1, x);
            for (int g = 2; g < n->n_geo; g++)
                x = _mm512_fmadd_ps(_mm512_set1_ps(blk->rc[r / 4][g - 2]), _mm512_loadu_ps(n->w_first + g * HD), x);
            x = _mm512_fmadd_ps(x, _mm512_loadu_ps(blk->row[r]), _mm512_loadu_ps(blk->row[r] + HD));
            _mm512_store_ps(blk->x + r * HD, _mm512_max_ps(x, zero));
        }
        return;
    }
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 2, 4, 6, 8, 10, 12, 14);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 1, 3, 5, 7, 9, 11, 13, 15);
    const __m512i cos_lanes = _mm512_setr_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512 pi = _mm512_set1_ps(3.1415927410125732f);
    for (int q = 0; q < nq; q++) {
        const __m256 p8 = _mm256_loadu_ps(phase[q]);
        const __m512 ph = _mm512_insertf32x8(_mm512_castps256_ps512(p8), p8, 1);
        for (int r = 4 * q; r < 4 * q + 4; r++) {
            const float *code = blk->row[r] + n->depth * 2 * HD;
            const __m512 freq = _mm512_loadu_ps(code + HD);
            __m512 t = _mm512_mul_ps(_mm512_permutexvar_ps(even, freq), _mm512_set1_ps(blk->rel[r][0]));
            t = _mm512_add_ps(t, _mm512_mul_ps(_mm512_permutexvar_ps(odd, freq), _mm512_set1_ps(blk->rel[r][1])));
            t = _mm512_mul_ps(_mm512_add_ps(t, ph), pi);
            _mm512_store_ps(blk->x + r * HD, _mm512_mul_ps(_mm512_loadu_ps(code), sincos16(t, cos_lanes)));
        }
    }
}

#define BCAST(p, j) _mm512_set1_ps((p)[j])
/* acc = sum_j x[j] * W[j] for one row (p: its 16 inputs). */
#define MATVEC(acc, p)                                                                                        \
    do {                                                                                                      \
        acc = _mm512_mul_ps(BCAST(p, 0), w0);                                                                 \
        acc = _mm512_fmadd_ps(BCAST(p, 1), w1, acc);                                                          \
        acc = _mm512_fmadd_ps(BCAST(p, 2), w2, acc);                                                          \
        acc = _mm512_fmadd_ps(BCAST(p, 3), w3, acc);                                                          \
        acc = _mm512_fmadd_ps(BCAST(p, 4), w4, acc);                                                          \
        acc = _mm512_fmadd_ps(BCAST(p, 5), w5, acc);                                                          \
        acc = _mm512_fmadd_ps(BCAST(p, 6), w6, acc);                                                          \
        acc = _mm512_fmadd_ps(BCAST(p, 7), w7, acc);                                                          \
        acc = _mm512_fmadd_ps(BCAST(p, 8), w8, acc);                                                          \
        acc = _mm512_fmadd_ps(BCAST(p, 9), w9, acc);                                                          \
        acc = _mm512_fmadd_ps(BCAST(p, 10), w10, acc);                                                        \
        acc = _mm512_fmadd_ps(BCAST(p, 11), w11, acc);                                                        \
        acc = _mm512_fmadd_ps(BCAST(p, 12), w12, acc);                                                        \
        acc = _mm512_fmadd_ps(BCAST(p, 13), w13, acc);                                                        \
        acc = _mm512_fmadd_ps(BCAST(p, 14), w14, acc);                                                        \
        acc = _mm512_fmadd_ps(BCAST(p, 15), w15, acc);                                                        \
    } while (0)

#define LOAD_W(W)                                                                                             \
    const __m512 w0 = _mm512_loadu_ps(W), w1 = _mm512_loadu_ps(W + 16), w2 = _mm512_loadu_ps(W + 32),       \
                 w3 = _mm512_loadu_ps(W + 48), w4 = _mm512_loadu_ps(W + 64), w5 = _mm512_loadu_ps(W + 80),   \
                 w6 = _mm512_loadu_ps(W + 96), w7 = _mm512_loadu_ps(W + 112), w8 = _mm512_loadu_ps(W + 128), \
                 w9 = _mm512_loadu_ps(W + 144), w10 = _mm512_loadu_ps(W + 160),                               \
                 w11 = _mm512_loadu_ps(W + 176), w12 = _mm512_loadu_ps(W + 192),                              \
                 w13 = _mm512_loadu_ps(W + 208), w14 = _mm512_loadu_ps(W + 224), w15 = _mm512_loadu_ps(W + 240)

/* Modulated layers first..depth-1 on the block's rows (rows: a multiple of 4), weights in registers. */
static void layers(const Net *n, Block *blk, int rows, int64_t first) {
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t l = first; l < n->depth; l++) {
        const float *W = n->w_hidden + l * HD * HD;
        LOAD_W(W);
        const int64_t m = l * 2 * HD;
        int r = 0;
        for (; r + 8 <= rows; r += 8) {
            float *x = blk->x + r * HD;
            __m512 a0, a1, a2, a3, a4, a5, a6, a7;
            MATVEC(a0, x);
            MATVEC(a1, x + 16);
            MATVEC(a2, x + 32);
            MATVEC(a3, x + 48);
            MATVEC(a4, x + 64);
            MATVEC(a5, x + 80);
            MATVEC(a6, x + 96);
            MATVEC(a7, x + 112);
#define MOD(a, k)                                                                                             \
    _mm512_store_ps(x + 16 * k, _mm512_max_ps(_mm512_fmadd_ps(a, _mm512_loadu_ps(blk->row[r + k] + m),       \
                                                              _mm512_loadu_ps(blk->row[r + k] + m + HD)),     \
                                              zero))
            MOD(a0, 0);
            MOD(a1, 1);
            MOD(a2, 2);
            MOD(a3, 3);
            MOD(a4, 4);
            MOD(a5, 5);
            MOD(a6, 6);
            MOD(a7, 7);
        }
        for (; r < rows; r += 4) {
            float *x = blk->x + r * HD;
            __m512 a0, a1, a2, a3;
            MATVEC(a0, x);
            MATVEC(a1, x + 16);
            MATVEC(a2, x + 32);
            MATVEC(a3, x + 48);
            MOD(a0, 0);
            MOD(a1, 1);
            MOD(a2, 2);
            MOD(a3, 3);
#undef MOD
        }
    }
}

/* Blend the 4 members of each query, then the output layer, the bias and the skip. */
static void outputs(const Net *n, Block *blk, int nq, int skip, float *out) {
    const float *W = n->w_out;
    LOAD_W(W);
    const __mmask16 keep = (__mmask16)((1u << n->out_dim) - 1u);
    const __m512 bias = _mm512_maskz_loadu_ps(keep, n->b_out);
    for (int q = 0; q < nq; q++) {
        const float *x = blk->x + 4 * q * HD;
        __m512 y = _mm512_mul_ps(_mm512_set1_ps(blk->wt[4 * q]), _mm512_load_ps(x));
        y = _mm512_fmadd_ps(_mm512_set1_ps(blk->wt[4 * q + 1]), _mm512_load_ps(x + 16), y);
        y = _mm512_fmadd_ps(_mm512_set1_ps(blk->wt[4 * q + 2]), _mm512_load_ps(x + 32), y);
        y = _mm512_fmadd_ps(_mm512_set1_ps(blk->wt[4 * q + 3]), _mm512_load_ps(x + 48), y);
        float yv[16] __attribute__((aligned(64)));
        _mm512_store_ps(yv, y);
        __m512 o;
        MATVEC(o, yv);
        o = _mm512_fmadd_ps(bias, _mm512_set1_ps(blk->wsum[q]), o);
        if (skip) o = _mm512_add_ps(o, _mm512_maskz_loadu_ps(keep, blk->skip[q]));
        _mm512_mask_storeu_ps(out + q * n->out_dim, keep, o);
    }
}

#elif defined(__AVX2__) && defined(__FMA__) /* -------------------------------------------- AVX2 path */
/* As the AVX-512 path with each 16-wide row in two 8-wide halves; the weights are read from L1 (16 registers
 * hold the 4 interleaved rows' accumulators). */

/* sin and cos of x (8 lanes) from one reduction; cos through *cos_out; |x| > 1e5 through libm. */
static inline __m256 sincos8(__m256 x, __m256 *cos_out) {
    const __m256 j = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(0.6366197466850281f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(j, _mm256_set1_ps(1.5707963705062866f), x);
    r = _mm256_fnmadd_ps(j, _mm256_set1_ps(-4.371138828673793e-08f), r);
    r = _mm256_fnmadd_ps(j, _mm256_set1_ps(-1.7151245100058819e-15f), r);
    const __m256 r2 = _mm256_mul_ps(r, r);
    __m256 ps = _mm256_fmadd_ps(r2, _mm256_set1_ps(-1.9515295891e-4f), _mm256_set1_ps(8.3321608736e-3f));
    ps = _mm256_fmadd_ps(ps, r2, _mm256_set1_ps(-1.6666654611e-1f));
    const __m256 s = _mm256_fmadd_ps(_mm256_mul_ps(ps, r2), r, r);
    __m256 pc = _mm256_fmadd_ps(r2, _mm256_set1_ps(2.443315711809948e-5f), _mm256_set1_ps(-1.388731625493765e-3f));
    pc = _mm256_fmadd_ps(pc, r2, _mm256_set1_ps(4.166664568298827e-2f));
    const __m256 c = _mm256_fmadd_ps(_mm256_mul_ps(pc, r2), r2,
                                     _mm256_fnmadd_ps(_mm256_set1_ps(0.5f), r2, _mm256_set1_ps(1.0f)));
    const __m256i one = _mm256_set1_epi32(1), two = _mm256_set1_epi32(2);
    __m256 out[2];
    for (int k = 0; k < 2; k++) { /* k = 0: sin (quadrant q), 1: cos (q + 1) */
        const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(j), k ? one : _mm256_setzero_si256());
        const __m256 odd = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(q, one), one));
        const __m256 sign = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_and_si256(q, two), 30));
        out[k] = _mm256_xor_ps(_mm256_blendv_ps(s, c, odd), sign);
    }
    const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
    if (_mm256_movemask_ps(_mm256_cmp_ps(ax, _mm256_set1_ps(1e5f), _CMP_NLE_UQ))) {
        float xs[8], so[8], co[8];
        _mm256_storeu_ps(xs, x);
        _mm256_storeu_ps(so, out[0]);
        _mm256_storeu_ps(co, out[1]);
        for (int k = 0; k < 8; k++)
            if (fabsf(xs[k]) > 1e5f) {
                so[k] = sinf(xs[k]);
                co[k] = cosf(xs[k]);
            }
        out[0] = _mm256_loadu_ps(so);
        out[1] = _mm256_loadu_ps(co);
    }
    *cos_out = out[1];
    return out[0];
}

static void inputs(const Net *n, Block *blk, int nq, const float phase[QB][8]) {
    const __m256 zero = _mm256_setzero_ps();
    if (n->mode == 0) {
        for (int r = 0; r < 4 * nq; r++) {
            const float *row = blk->row[r], *wf = n->w_first;
            __m256 lo = _mm256_mul_ps(_mm256_set1_ps(blk->rel[r][0]), _mm256_loadu_ps(wf));
            __m256 hi = _mm256_mul_ps(_mm256_set1_ps(blk->rel[r][0]), _mm256_loadu_ps(wf + 8));
            lo = _mm256_fmadd_ps(_mm256_set1_ps(blk->rel[r][1]), _mm256_loadu_ps(wf + HD), lo);
            hi = _mm256_fmadd_ps(_mm256_set1_ps(blk->rel[r][1]), _mm256_loadu_ps(wf + HD + 8), hi);
            for (int g = 2; g < n->n_geo; g++) {
                const __m256 v = _mm256_set1_ps(blk->rc[r / 4][g - 2]);
                lo = _mm256_fmadd_ps(v, _mm256_loadu_ps(wf + g * HD), lo);
                hi = _mm256_fmadd_ps(v, _mm256_loadu_ps(wf + g * HD + 8), hi);
            }
            lo = _mm256_fmadd_ps(lo, _mm256_loadu_ps(row), _mm256_loadu_ps(row + HD));
            hi = _mm256_fmadd_ps(hi, _mm256_loadu_ps(row + 8), _mm256_loadu_ps(row + HD + 8));
            _mm256_storeu_ps(blk->x + r * HD, _mm256_max_ps(lo, zero));
            _mm256_storeu_ps(blk->x + r * HD + 8, _mm256_max_ps(hi, zero));
        }
        return;
    }
    const __m256i ev = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6), od = _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7);
    const __m256 pi = _mm256_set1_ps(3.1415927410125732f);
    for (int r = 0; r < 4 * nq; r++) {
        const float *code = blk->row[r] + n->depth * 2 * HD;
        const __m256 f0 = _mm256_loadu_ps(code + HD), f1 = _mm256_loadu_ps(code + HD + 8);
        const __m256 fe = _mm256_permute2f128_ps(_mm256_permutevar8x32_ps(f0, ev), _mm256_permutevar8x32_ps(f1, ev), 0x20);
        const __m256 fo = _mm256_permute2f128_ps(_mm256_permutevar8x32_ps(f0, od), _mm256_permutevar8x32_ps(f1, od), 0x20);
        __m256 t = _mm256_mul_ps(fe, _mm256_set1_ps(blk->rel[r][0]));
        t = _mm256_add_ps(t, _mm256_mul_ps(fo, _mm256_set1_ps(blk->rel[r][1])));
        t = _mm256_mul_ps(_mm256_add_ps(t, _mm256_loadu_ps(phase[r / 4])), pi);
        __m256 cs;
        const __m256 sn = sincos8(t, &cs);
        _mm256_storeu_ps(blk->x + r * HD, _mm256_mul_ps(_mm256_loadu_ps(code), cs));
        _mm256_storeu_ps(blk->x + r * HD + 8, _mm256_mul_ps(_mm256_loadu_ps(code + 8), sn));
    }
}

static void layers(const Net *n, Block *blk, int rows, int64_t first) {
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t l = first; l < n->depth; l++) {
        const float *W = n->w_hidden + l * HD * HD;
        const int64_t m = l * 2 * HD;
        for (int r = 0; r < rows; r += 4) {
            float *x = blk->x + r * HD;
            __m256 wl = _mm256_loadu_ps(W), wh = _mm256_loadu_ps(W + 8), b;
            b = _mm256_broadcast_ss(x);
            __m256 a0l = _mm256_mul_ps(b, wl), a0h = _mm256_mul_ps(b, wh);
            b = _mm256_broadcast_ss(x + 16);
            __m256 a1l = _mm256_mul_ps(b, wl), a1h = _mm256_mul_ps(b, wh);
            b = _mm256_broadcast_ss(x + 32);
            __m256 a2l = _mm256_mul_ps(b, wl), a2h = _mm256_mul_ps(b, wh);
            b = _mm256_broadcast_ss(x + 48);
            __m256 a3l = _mm256_mul_ps(b, wl), a3h = _mm256_mul_ps(b, wh);
            for (int j = 1; j < HD; j++) {
                wl = _mm256_loadu_ps(W + j * HD);
                wh = _mm256_loadu_ps(W + j * HD + 8);
                b = _mm256_broadcast_ss(x + j);
                a0l = _mm256_fmadd_ps(b, wl, a0l);
                a0h = _mm256_fmadd_ps(b, wh, a0h);
                b = _mm256_broadcast_ss(x + 16 + j);
                a1l = _mm256_fmadd_ps(b, wl, a1l);
                a1h = _mm256_fmadd_ps(b, wh, a1h);
                b = _mm256_broadcast_ss(x + 32 + j);
                a2l = _mm256_fmadd_ps(b, wl, a2l);
                a2h = _mm256_fmadd_ps(b, wh, a2h);
                b = _mm256_broadcast_ss(x + 48 + j);
                a3l = _mm256_fmadd_ps(b, wl, a3l);
                a3h = _mm256_fmadd_ps(b, wh, a3h);
            }
#define MOD2(al, ah, k)                                                                                        \
    do {                                                                                                       \
        const float *mod = blk->row[r + k] + m;                                                                \
        _mm256_storeu_ps(x + 16 * k, _mm256_max_ps(_mm256_fmadd_ps(al, _mm256_loadu_ps(mod), _mm256_loadu_ps(mod + HD)), zero)); \
        _mm256_storeu_ps(x + 16 * k + 8,                                                                       \
                         _mm256_max_ps(_mm256_fmadd_ps(ah, _mm256_loadu_ps(mod + 8), _mm256_loadu_ps(mod + HD + 8)), zero)); \
    } while (0)
            MOD2(a0l, a0h, 0);
            MOD2(a1l, a1h, 1);
            MOD2(a2l, a2h, 2);
            MOD2(a3l, a3h, 3);
#undef MOD2
        }
    }
}

static void outputs(const Net *n, Block *blk, int nq, int skip, float *out) {
    for (int q = 0; q < nq; q++) {
        const float *x = blk->x + 4 * q * HD;
        __m256 yl = _mm256_mul_ps(_mm256_set1_ps(blk->wt[4 * q]), _mm256_loadu_ps(x));
        __m256 yh = _mm256_mul_ps(_mm256_set1_ps(blk->wt[4 * q]), _mm256_loadu_ps(x + 8));
        for (int s = 1; s < 4; s++) {
            const __m256 w = _mm256_set1_ps(blk->wt[4 * q + s]);
            yl = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + s * HD), yl);
            yh = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + s * HD + 8), yh);
        }
        float y[HD], o[HD];
        _mm256_storeu_ps(y, yl);
        _mm256_storeu_ps(y + 8, yh);
        __m256 ol = _mm256_mul_ps(_mm256_set1_ps(y[0]), _mm256_loadu_ps(n->w_out));
        __m256 oh = _mm256_mul_ps(_mm256_set1_ps(y[0]), _mm256_loadu_ps(n->w_out + 8));
        for (int j = 1; j < HD; j++) {
            ol = _mm256_fmadd_ps(_mm256_set1_ps(y[j]), _mm256_loadu_ps(n->w_out + j * HD), ol);
            oh = _mm256_fmadd_ps(_mm256_set1_ps(y[j]), _mm256_loadu_ps(n->w_out + j * HD + 8), oh);
        }
        _mm256_storeu_ps(o, ol);
        _mm256_storeu_ps(o + 8, oh);
        for (int c = 0; c < n->out_dim; c++) {
            const float v = o[c] + n->b_out[c] * blk->wsum[q];
            out[q * n->out_dim + c] = skip ? v + blk->skip[q][c] : v;
        }
    }
}

#else /* ------------------------------------------------------------------------------- portable C path */
/* Plain loops (a reference for CPUs without AVX2/AVX-512; lmf_simd() = 0 and the heads keep their PyTorch
 * path there, measured faster). */

static void inputs(const Net *n, Block *blk, int nq, const float phase[QB][8]) {
    for (int r = 0; r < 4 * nq; r++) {
        float *x = blk->x + r * HD;
        if (n->mode == 0) {
            const float geo[4] = {blk->rel[r][0], blk->rel[r][1], blk->rc[r / 4][0], blk->rc[r / 4][1]};
            for (int i = 0; i < HD; i++) {
                float a = 0.0f;
                for (int g = 0; g < n->n_geo; g++) a += geo[g] * n->w_first[g * HD + i];
                a = a * blk->row[r][i] + blk->row[r][HD + i];
                x[i] = a > 0.0f ? a : 0.0f;
            }
        } else {
            const float *code = blk->row[r] + n->depth * 2 * HD;
            for (int k = 0; k < HD / 2; k++) {
                float t = code[HD + 2 * k] * blk->rel[r][0];
                t = t + code[HD + 2 * k + 1] * blk->rel[r][1];
                t = (t + phase[r / 4][k]) * 3.1415927410125732f;
                x[k] = code[k] * cosf(t);
                x[HD / 2 + k] = code[HD / 2 + k] * sinf(t);
            }
        }
    }
}

static void layers(const Net *n, Block *blk, int rows, int64_t first) {
    for (int64_t l = first; l < n->depth; l++) {
        const float *W = n->w_hidden + l * HD * HD;
        for (int r = 0; r < rows; r++) {
            float *x = blk->x + r * HD, acc[HD];
            const float *mod = blk->row[r] + l * 2 * HD;
            for (int i = 0; i < HD; i++) acc[i] = 0.0f;
            for (int j = 0; j < HD; j++)
                for (int i = 0; i < HD; i++) acc[i] += x[j] * W[j * HD + i];
            for (int i = 0; i < HD; i++) {
                const float a = acc[i] * mod[i] + mod[HD + i];
                x[i] = a > 0.0f ? a : 0.0f;
            }
        }
    }
}

static void outputs(const Net *n, Block *blk, int nq, int skip, float *out) {
    for (int q = 0; q < nq; q++) {
        float y[HD];
        for (int i = 0; i < HD; i++) {
            y[i] = 0.0f;
            for (int s = 0; s < 4; s++) y[i] += blk->wt[4 * q + s] * blk->x[(4 * q + s) * HD + i];
        }
        for (int o = 0; o < n->out_dim; o++) {
            float a = 0.0f;
            for (int j = 0; j < HD; j++) a += y[j] * n->w_out[j * HD + o];
            a += n->b_out[o] * blk->wsum[q];
            out[q * n->out_dim + o] = skip ? a + blk->skip[q][o] : a;
        }
    }
}

#endif

/* ---------------------------------------------------------------------------------------------- entry */

/* Decode queries [start, stop) of the (B * q_per_item) flattened queries: coord, cell (.., 2) fp32,
 * out (.., out_dim). geom: [h, w, off_y, off_x, th, tw, whole]. Returns LIIF_OK, LIIF_ERR_WINDOW or
 * LIIF_ERR_ARGS. */
LIIF_EXPORT int lmf_decode(const float *coord, const float *cell, int64_t q_per_item, int64_t start,
                           int64_t stop, const int64_t *geom, const float *table, int64_t stride, int64_t depth,
                           int64_t mode, const float *w_first, int64_t n_geo, const float *w_hidden,
                           const float *w_out, const float *b_out, int64_t out_dim, const float *lr,
                           int64_t lr_dim, float *out) {
    const Geom g = {geom[0], geom[1], geom[2], geom[3], geom[4], geom[5], geom[6]};
    const Net n = {table, stride, depth, mode, n_geo, out_dim, lr_dim, w_first, w_hidden, w_out, b_out, lr};
    if (depth < 1 || out_dim < 1 || out_dim > MAX_OUT || q_per_item < 1 || (mode != 0 && mode != 1) ||
        (mode == 0 && (n_geo < 2 || n_geo > 4)) || (lr && lr_dim != out_dim) || stride < 2 * HD * depth)
        return LIIF_ERR_ARGS;
    Block blk;
    float phase[QB][8];
    for (int64_t q0 = start; q0 < stop; q0 += QB) {
        const int nq = (int)(stop - q0 < QB ? stop - q0 : QB);
        for (int q = 0; q < nq; q++) {
            const int64_t qi = q0 + q, b = qi / q_per_item;
            const float cy = coord[2 * qi], cx = coord[2 * qi + 1];
            if (members(&g, &n, b, cy, cx, &blk, 4 * q, &blk.wsum[q])) return LIIF_ERR_WINDOW;
            blk.rc[q][0] = cell[2 * qi] * (float)g.h;
            blk.rc[q][1] = cell[2 * qi + 1] * (float)g.w;
            if (mode == 1)
                for (int k = 0; k < HD / 2; k++)
                    phase[q][k] = blk.rc[q][0] * w_first[2 * k] + blk.rc[q][1] * w_first[2 * k + 1];
            if (lr && bilinear_skip(&g, &n, b, cy, cx, blk.skip[q])) return LIIF_ERR_WINDOW;
        }
        inputs(&n, &blk, nq, (const float(*)[8])phase);
        layers(&n, &blk, 4 * nq, mode == 0 ? 1 : 0);
        outputs(&n, &blk, nq, lr != NULL, out + q0 * out_dim);
    }
    return LIIF_OK;
}

/* Test hook: out[i] = sin(x[i]) (cos when want_cos) with the decode's sin/cos (n a multiple of 16). */
LIIF_EXPORT void lmf_sincos(const float *x, float *out, int64_t n, int64_t want_cos) {
    for (int64_t i = 0; i < n; i += 16) {
#if defined(__AVX512F__)
        _mm512_storeu_ps(out + i, sincos16(_mm512_loadu_ps(x + i), _mm512_set1_epi32(want_cos ? 1 : 0)));
#elif defined(__AVX2__) && defined(__FMA__)
        for (int h = 0; h < 16; h += 8) {
            __m256 c;
            const __m256 s = sincos8(_mm256_loadu_ps(x + i + h), &c);
            _mm256_storeu_ps(out + i + h, want_cos ? c : s);
        }
#else
        for (int k = 0; k < 16; k++) out[i + k] = want_cos ? cosf(x[i + k]) : sinf(x[i + k]);
#endif
    }
}

/* The SIMD path of this build: 2 AVX-512, 1 AVX2 + FMA, 0 portable C. */
LIIF_EXPORT int lmf_simd(void) {
#if defined(__AVX512F__)
    return 2;
#elif defined(__AVX2__) && defined(__FMA__)
    return 1;
#else
    return 0;
#endif
}
