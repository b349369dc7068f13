/* The LM heads' decode kernel (lmf.c): sizes, the structures every path shares and the sin/cos constants. */
#ifndef LIIF_SR_LMF_TYPES_H
#define LIIF_SR_LMF_TYPES_H

#include "common.h"

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

/* sin/cos of the SIMD paths: Cody-Waite reduction by pi/2 in three parts (FMA) and the Cephes minimax
 * polynomials on [-pi/4, pi/4]; lanes with |x| > SC_BIG go through libm. */
#define SC_2_OVER_PI 0.6366197466850281f
#define SC_PIO2_1 1.5707963705062866f
#define SC_PIO2_2 -4.371138828673793e-08f
#define SC_PIO2_3 -1.7151245100058819e-15f
#define SC_S2 -1.9515295891e-4f
#define SC_S1 8.3321608736e-3f
#define SC_S0 -1.6666654611e-1f
#define SC_C2 2.443315711809948e-5f
#define SC_C1 -1.388731625493765e-3f
#define SC_C0 4.166664568298827e-2f
#define SC_BIG 1e5f
#define LMF_PI 3.1415927410125732f /* fp32 pi, as torch.pi in an fp32 product */

#endif
