/* The LM heads' decode kernel (lmf.c): the AVX2 + FMA path. */
#ifndef LIIF_SR_LMF_AVX2_H
#define LIIF_SR_LMF_AVX2_H

#include <immintrin.h>
#include <math.h>

#include "lmf_types.h"

/* As the AVX-512 path with each 16-wide row in two 8-wide halves; the weights are read from L1 (16 registers
 * hold 6 interleaved rows' accumulators: layers). */

/* sin and cos of x (8 lanes) from one reduction; cos through *cos_out; |x| > 1e5 through libm. */
static inline __m256 sincos8(__m256 x, __m256 *cos_out) {
    const __m256 j = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(SC_2_OVER_PI)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(j, _mm256_set1_ps(SC_PIO2_1), x);
    r = _mm256_fnmadd_ps(j, _mm256_set1_ps(SC_PIO2_2), r);
    r = _mm256_fnmadd_ps(j, _mm256_set1_ps(SC_PIO2_3), r);
    const __m256 r2 = _mm256_mul_ps(r, r);
    __m256 ps = _mm256_fmadd_ps(r2, _mm256_set1_ps(SC_S2), _mm256_set1_ps(SC_S1));
    ps = _mm256_fmadd_ps(ps, r2, _mm256_set1_ps(SC_S0));
    const __m256 s = _mm256_fmadd_ps(_mm256_mul_ps(ps, r2), r, r);
    __m256 pc = _mm256_fmadd_ps(r2, _mm256_set1_ps(SC_C2), _mm256_set1_ps(SC_C1));
    pc = _mm256_fmadd_ps(pc, r2, _mm256_set1_ps(SC_C0));
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
    if (_mm256_movemask_ps(_mm256_cmp_ps(ax, _mm256_set1_ps(SC_BIG), _CMP_NLE_UQ))) {
        float xs[8], so[8], co[8];
        _mm256_storeu_ps(xs, x);
        _mm256_storeu_ps(so, out[0]);
        _mm256_storeu_ps(co, out[1]);
        for (int k = 0; k < 8; k++)
            if (fabsf(xs[k]) > SC_BIG) {
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
    const __m256 pi = _mm256_set1_ps(LMF_PI);
    for (int r = 0; r < 4 * nq; r++) {
        const float *code = blk->row[r] + n->depth * 2 * HD;
        /* [rel_y rel_x] x 4 against freq' = [fy_0 fx_0 fy_1 fx_1 ...]: the pairs' products added by hadd (as
         * fy_k * rel_y + fx_k * rel_x), its lane order [0 1 4 5 | 2 3 6 7] put back by one 64-bit permute */
        const __m256 rel = _mm256_castpd_ps(_mm256_broadcast_sd((const double *)blk->rel[r]));
        const __m256 p0 = _mm256_mul_ps(_mm256_loadu_ps(code + HD), rel);
        const __m256 p1 = _mm256_mul_ps(_mm256_loadu_ps(code + HD + 8), rel);
        __m256 t = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_hadd_ps(p0, p1)), 0xd8));
        t = _mm256_mul_ps(_mm256_add_ps(t, _mm256_loadu_ps(phase[r / 4])), pi);
        __m256 cs;
        const __m256 sn = sincos8(t, &cs);
        _mm256_storeu_ps(blk->x + r * HD, _mm256_mul_ps(_mm256_loadu_ps(code), cs));
        _mm256_storeu_ps(blk->x + r * HD + 8, _mm256_mul_ps(_mm256_loadu_ps(code + 8), sn));
    }
}

/* R rows (x: R consecutive 16-wide rows, row[k] + mo: their layer's table parts) through one modulated layer:
 * W read from L1, 2R accumulators in registers (R = 6: 12 + 2 weight halves + 1 broadcast = 15 of 16 ymm). */
static inline __attribute__((always_inline)) void rows_layer(const float *W, float *x, const float *const *row,
                                                             int64_t mo, int R) {
    __m256 al[6], ah[6];
    __m256 wl = _mm256_loadu_ps(W), wh = _mm256_loadu_ps(W + 8);
    for (int k = 0; k < R; k++) {
        const __m256 b = _mm256_broadcast_ss(x + HD * k);
        al[k] = _mm256_mul_ps(b, wl);
        ah[k] = _mm256_mul_ps(b, wh);
    }
    for (int j = 1; j < HD; j++) {
        wl = _mm256_loadu_ps(W + j * HD);
        wh = _mm256_loadu_ps(W + j * HD + 8);
        for (int k = 0; k < R; k++) {
            const __m256 b = _mm256_broadcast_ss(x + HD * k + j);
            al[k] = _mm256_fmadd_ps(b, wl, al[k]);
            ah[k] = _mm256_fmadd_ps(b, wh, ah[k]);
        }
    }
    const __m256 zero = _mm256_setzero_ps();
    for (int k = 0; k < R; k++) {
        const float *mod = row[k] + mo;
        const __m256 lo = _mm256_fmadd_ps(al[k], _mm256_loadu_ps(mod), _mm256_loadu_ps(mod + HD));
        const __m256 hi = _mm256_fmadd_ps(ah[k], _mm256_loadu_ps(mod + 8), _mm256_loadu_ps(mod + HD + 8));
        _mm256_store_ps(x + HD * k, _mm256_max_ps(lo, zero));
        _mm256_store_ps(x + HD * k + 8, _mm256_max_ps(hi, zero));
    }
}

/* Modulated layers first..depth-1 on the block's rows (a multiple of 4): 6 rows at a time (4 rows' 8
 * accumulators leave the loads of W and x the bottleneck), then the 4 or 2 left. */
static void layers(const Net *n, Block *blk, int rows, int64_t first) {
    for (int64_t l = first; l < n->depth; l++) {
        const float *W = n->w_hidden + l * HD * HD;
        const int64_t m = l * 2 * HD;
        int r = 0;
        for (; r + 6 <= rows; r += 6) rows_layer(W, blk->x + r * HD, blk->row + r, m, 6);
        if (rows - r == 4)
            rows_layer(W, blk->x + r * HD, blk->row + r, m, 4);
        else if (rows - r == 2)
            rows_layer(W, blk->x + r * HD, blk->row + r, m, 2);
    }
}

/* The decode prefetches each member's table row (all its layers) when the geometry finds it (lmf.c): the
 * layers would otherwise wait for its lines one layer at a time. */
#define LMF_PREFETCH_ROWS 1

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

#endif
