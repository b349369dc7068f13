/* The LM heads' decode kernel (lmf.c): the local ensemble's geometry and the bilinear LR skip in plain C, bit
 * for bit as liif_sr.models.heads.geometry / lte.bilinear_border (no a * b + c contraction: see lmf.c). */
#ifndef LIIF_SR_LMF_GEOMETRY_H
#define LIIF_SR_LMF_GEOMETRY_H

#include <math.h>

#include "lmf_types.h"

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

/* out[k] = sum_i v[i][k] * wts[i] (taps in order from 0.0f, as bilinear_border): each channel's sum in a register
 * (summed into out[], which may alias v, it went through memory: one store-to-load chain of 4 x dim sums). */
static inline __attribute__((always_inline)) void skip_sum(const float *const v[4], const float wts[4], int dim,
                                                           float *out) {
    for (int k = 0; k < dim; k++) {
        float acc = 0.0f;
        for (int i = 0; i < 4; i++) acc = acc + v[i][k] * wts[i];
        out[k] = acc;
    }
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
    const float *v[4];
    for (int i = 0; i < 4; i++) {
        const int64_t ly = (int64_t)ys[i] - g->off_y, lx = (int64_t)xs[i] - g->off_x;
        if (!g->whole && (ly < 0 || ly >= g->th || lx < 0 || lx >= g->tw)) return LIIF_ERR_WINDOW;
        v[i] = n->lr + ((b * g->th + ly) * g->tw + lx) * n->lr_dim;
    }
    if (n->lr_dim == 3) /* RGB: a constant trip count (3 % faster than the loop of any width) */
        skip_sum(v, wts, 3, out);
    else
        skip_sum(v, wts, (int)n->lr_dim, out);
    return LIIF_OK;
}

#endif
