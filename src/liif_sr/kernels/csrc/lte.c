/* LTE CPU inference: the MLP input of a block of queries, fused (gather, Fourier phase, cos/sin, coef product).
 *
 * Per query n and ensemble member s (liif_sr.models.heads.lte_blocks.decode_blocks), with row = table[index[n,s]]
 * = cat(coef, freq) (freq interleaved (y, x) pairs) and r = rel[n, s]:
 *   t_k = freq[2k] * r_y + freq[2k+1] * r_x + phase[n, k]                 (k < D/2)
 *   x[4n+s] = coef * [cos(pi t), sin(pi t)]                               (D floats, contiguous rows)
 * The geometry (index, rel, phase) comes from the PyTorch path unchanged. cos(pi t) and sin(pi t) are evaluated
 * as cospi/sinpi: t = k + u with k = rint(t) (the 1.5 * 2^23 trick, exact for |t| < 2^22) and |u| <= 1/2 exactly, then degree-12/11 polynomials in u and the
 * sign (-1)^k. This is at least as accurate as torch's cos(fp32(pi * t)) (about 1e-7 absolute; the two differ
 * by the rounding of pi * t, i.e. ~|t| * 1e-7). The loops are written branch-free so that -O3 -march=native
 * vectorises them (AVX-512 / AVX2 / SSE); no intrinsics, so any CPU builds the same source.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Taylor coefficients of sin(pi u) = u * S(u^2) and cos(pi u) = C(u^2) (truncation < 6e-8 on |u| <= 1/2). */
#define PI_ 3.14159265358979323846
static const float S1 = (float)(PI_);
static const float S3 = (float)(-PI_ * PI_ * PI_ / 6.0);
static const float S5 = (float)(PI_ * PI_ * PI_ * PI_ * PI_ / 120.0);
static const float S7 = (float)(-PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ / 5040.0);
static const float S9 = (float)(PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ / 362880.0);
static const float S11 = (float)(-PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ / 39916800.0);
static const float C2 = (float)(-PI_ * PI_ / 2.0);
static const float C4 = (float)(PI_ * PI_ * PI_ * PI_ / 24.0);
static const float C6 = (float)(-PI_ * PI_ * PI_ * PI_ * PI_ * PI_ / 720.0);
static const float C8 = (float)(PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ / 40320.0);
static const float C10 = (float)(-PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ / 3628800.0);
static const float C12 = (float)(PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ * PI_ / 479001600.0);

static const float ROUND = 12582912.0f; /* 1.5 * 2^23 */

/* One member's row: x[k] = coef[k] cos(pi t_k), x[h + k] = coef[h + k] sin(pi t_k), h = D/2. */
static void member_row(const float *LIIF_RESTRICT row, int64_t d, float ry, float rx,
                       const float *LIIF_RESTRICT phase, float *LIIF_RESTRICT x) {
    const int64_t h = d / 2;
    const float *LIIF_RESTRICT coef = row;
    const float *LIIF_RESTRICT freq = row + d;
    for (int64_t k = 0; k < h; k++) {
        float t = freq[2 * k] * ry + freq[2 * k + 1] * rx + phase[k];
        float kk = (t + ROUND) - ROUND; /* rint(t) for |t| < 2^22 (phases are far smaller) */
        float u = t - kk;               /* exact: |u| <= 1/2 */
        float sign = (float)(1 - 2 * ((int32_t)kk & 1)); /* (-1)^kk */
        float u2 = u * u;
        float s = u * (S1 + u2 * (S3 + u2 * (S5 + u2 * (S7 + u2 * (S9 + u2 * S11)))));
        float c = 1.0f + u2 * (C2 + u2 * (C4 + u2 * (C6 + u2 * (C8 + u2 * (C10 + u2 * C12)))));
        x[k] = coef[k] * (sign * c);
        x[h + k] = coef[h + k] * (sign * s);
    }
}

/* Rows [4 start, 4 stop) of the MLP input: x is (4 (stop - start), d), index (n, 4) int64 rows of table
 * (n_rows, 2 d), rel (n, 4, 2), phase (n, d / 2). Returns LIIF_ERR_WINDOW for a row outside the table. */
LIIF_EXPORT int64_t lte_basis(const float *table, int64_t n_rows, int64_t d, const int64_t *index,
                              const float *rel, const float *phase, int64_t start, int64_t stop, float *x) {
    if (d < 2 || d % 2) return LIIF_ERR_ARGS;
    for (int64_t n = start; n < stop; n++) {
        for (int64_t s = 0; s < 4; s++) {
            int64_t r = index[4 * n + s];
            if (r < 0 || r >= n_rows) return LIIF_ERR_WINDOW;
            member_row(table + r * 2 * d, d, rel[8 * n + 2 * s], rel[8 * n + 2 * s + 1], phase + n * (d / 2),
                       x + (4 * (n - start) + s) * d);
        }
    }
    return LIIF_OK;
}
