/* The LM heads' decode kernel (lmf.c): the portable C path. */
#ifndef LIIF_SR_LMF_PORTABLE_H
#define LIIF_SR_LMF_PORTABLE_H

#include <math.h>

#include "lmf_types.h"

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
                t = (t + phase[r / 4][k]) * LMF_PI;
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
