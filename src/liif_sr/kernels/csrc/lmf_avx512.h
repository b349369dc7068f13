/* The LM heads' decode kernel (lmf.c): the AVX-512 path (one zmm per 16-wide row, weights in registers). */
#ifndef LIIF_SR_LMF_AVX512_H
#define LIIF_SR_LMF_AVX512_H

#include <immintrin.h>
#include <math.h>

#include "lmf_types.h"

/* sin (lanes with add = 0) or cos (add = 1) of x: Cody-Waite reduction by pi/2 (three parts, FMA) and the
 * Cephes minimax polynomials on [-pi/4, pi/4]; lanes with |x| > 1e5 go through libm. */
static inline __m512 sincos16(__m512 x, __m512i add) {
    const __m512 j = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(SC_2_OVER_PI)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(j, _mm512_set1_ps(SC_PIO2_1), x);
    r = _mm512_fnmadd_ps(j, _mm512_set1_ps(SC_PIO2_2), r);
    r = _mm512_fnmadd_ps(j, _mm512_set1_ps(SC_PIO2_3), r);
    const __m512 r2 = _mm512_mul_ps(r, r);
    __m512 ps = _mm512_fmadd_ps(r2, _mm512_set1_ps(SC_S2), _mm512_set1_ps(SC_S1));
    ps = _mm512_fmadd_ps(ps, r2, _mm512_set1_ps(SC_S0));
    const __m512 s = _mm512_fmadd_ps(_mm512_mul_ps(ps, r2), r, r);
    __m512 pc = _mm512_fmadd_ps(r2, _mm512_set1_ps(SC_C2), _mm512_set1_ps(SC_C1));
    pc = _mm512_fmadd_ps(pc, r2, _mm512_set1_ps(SC_C0));
    const __m512 c = _mm512_fmadd_ps(_mm512_mul_ps(pc, r2), r2, _mm512_fnmadd_ps(_mm512_set1_ps(0.5f), r2, _mm512_set1_ps(1.0f)));
    const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(j), add);
    __m512 res = _mm512_mask_blend_ps(_mm512_test_epi32_mask(q, _mm512_set1_epi32(1)), s, c);
    const __mmask16 neg = _mm512_test_epi32_mask(q, _mm512_set1_epi32(2));
    res = _mm512_castsi512_ps(_mm512_mask_xor_epi32(_mm512_castps_si512(res), neg, _mm512_castps_si512(res),
                                                    _mm512_set1_epi32((int)0x80000000u)));
    const __m512 ax = _mm512_abs_ps(x);
    const __mmask16 big = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(SC_BIG), _CMP_NLE_UQ);
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
    const __m512 pi = _mm512_set1_ps(LMF_PI);
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

#endif
