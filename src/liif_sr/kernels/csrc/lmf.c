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

#include "lmf_types.h"
#include "lmf_geometry.h"

/* The block stages inputs / layers / outputs of this build's path (one of the three headers). */
#if defined(__AVX512F__)
#include "lmf_avx512.h"
#elif defined(__AVX2__) && defined(__FMA__)
#include "lmf_avx2.h"
#else
#include "lmf_portable.h"
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
#ifdef LMF_PREFETCH_ROWS /* the path asks for it: each new member row (not the previous query's) */
            for (int s = 0; s < 4; s++)
                if (q == 0 || blk.row[4 * q + s] != blk.row[4 * q - 4 + s])
                    for (int64_t o = 0; o < stride; o += 16) __builtin_prefetch(blk.row[4 * q + s] + o);
#endif
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
