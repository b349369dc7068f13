/* MetaSR kernel: arguments and the corner geometry (bit for bit as torch's separate fp32 operations).
 * Included by metasr.c only, after its no-contraction pragma. */
#ifndef LIIF_SR_METASR_GEOMETRY_H
#define LIIF_SR_METASR_GEOMETRY_H

#include <math.h>
#include <stdint.h>
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

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

#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
/* Lanes 0, 2, 4, … (evens) or 1, 3, 5, … (odds) of the 16 floats a, b: (y, x) pairs → y or x per query. */
static inline __m256 evens(__m256 a, __m256 b) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
}
static inline __m256 odds(__m256 a, __m256 b) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
}

/* The same operations on 8 queries at a time (n a multiple of 8; th * tw < 2^31). */
static int64_t geometry_avx2(const Args *a, const Geo *g, int64_t r0, int64_t n, int64_t base, int64_t *row,
                             float *x0, float *x1, float *x2) {
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    const __m256 eps = _mm256_set1_ps(g->eps), hi = _mm256_set1_ps(g->clamp), lo = _mm256_set1_ps(-g->clamp);
    const __m256 h = _mm256_set1_ps(g->h), w = _mm256_set1_ps(g->w);
    const __m256 hm = _mm256_set1_ps(g->h - 1.0f), wm = _mm256_set1_ps(g->w - 1.0f);
    const __m256i oy = _mm256_set1_epi32((int)a->off_y), ox = _mm256_set1_epi32((int)a->off_x);
    const __m256i th = _mm256_set1_epi32((int)a->th), tw = _mm256_set1_epi32((int)a->tw);
    const __m256i b64 = _mm256_set1_epi64x(base), neg1 = _mm256_set1_epi32(-1);
    for (int64_t i = 0; i < n; i += 8) {
        const float *c = a->coord + 2 * (r0 + i), *s = a->cell + 2 * (r0 + i);
        const __m256 c0 = _mm256_loadu_ps(c), c1 = _mm256_loadu_ps(c + 8);
        const __m256 s0 = _mm256_loadu_ps(s), s1 = _mm256_loadu_ps(s + 8);
        const __m256 cy = evens(c0, c1), cx = odds(c0, c1), sy = evens(s0, s1), sx = odds(s0, s1);
        const __m256 ky = _mm256_sub_ps(cy, _mm256_mul_ps(sy, half));
        const __m256 kx = _mm256_sub_ps(cx, _mm256_mul_ps(sx, half));
        const __m256 vy = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(ky, eps), lo), hi);
        const __m256 vx = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(kx, eps), lo), hi);
        __m256 iy = _mm256_mul_ps(_mm256_sub_ps(_mm256_mul_ps(_mm256_add_ps(vy, one), h), one), half);
        __m256 ix = _mm256_mul_ps(_mm256_sub_ps(_mm256_mul_ps(_mm256_add_ps(vx, one), w), one), half);
        iy = _mm256_round_ps(iy, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        ix = _mm256_round_ps(ix, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        iy = _mm256_min_ps(_mm256_max_ps(iy, zero), hm);
        ix = _mm256_min_ps(_mm256_max_ps(ix, zero), wm);
        const __m256 qy = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(iy, _mm256_set1_ps(g->sy)), _mm256_set1_ps(g->oy)),
                                        _mm256_set1_ps(g->cy));
        const __m256 qx = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(ix, _mm256_set1_ps(g->sx)), _mm256_set1_ps(g->ox)),
                                        _mm256_set1_ps(g->cx));
        _mm256_storeu_ps(x0 + i, _mm256_mul_ps(_mm256_sub_ps(ky, qy), _mm256_set1_ps(g->hy)));
        _mm256_storeu_ps(x1 + i, _mm256_mul_ps(_mm256_sub_ps(kx, qx), _mm256_set1_ps(g->hx)));
        _mm256_storeu_ps(x2 + i, _mm256_mul_ps(sy, _mm256_set1_ps(g->hy)));
        const __m256i ly = _mm256_sub_epi32(_mm256_cvttps_epi32(iy), oy);
        const __m256i lx = _mm256_sub_epi32(_mm256_cvttps_epi32(ix), ox);
        if (!a->whole) {
            const __m256i zi = _mm256_setzero_si256(), thm = _mm256_add_epi32(th, neg1);
            const __m256i twm = _mm256_add_epi32(tw, neg1); /* out: ly < 0, ly > th - 1, lx < 0, lx > tw - 1 */
            const __m256i out_y = _mm256_or_si256(_mm256_cmpgt_epi32(zi, ly), _mm256_cmpgt_epi32(ly, thm));
            const __m256i out_x = _mm256_or_si256(_mm256_cmpgt_epi32(zi, lx), _mm256_cmpgt_epi32(lx, twm));
            const __m256i out = _mm256_or_si256(out_y, out_x);
            const int mask = _mm256_movemask_ps(_mm256_castsi256_ps(out));
            if (mask) return -1 - (r0 + i + __builtin_ctz(mask));
        }
        const __m256i loc = _mm256_add_epi32(_mm256_mullo_epi32(ly, tw), lx);
        const __m256i lo4 = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(loc));
        const __m256i hi4 = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(loc, 1));
        _mm256_storeu_si256((__m256i *)(row + i), _mm256_add_epi64(b64, lo4));
        _mm256_storeu_si256((__m256i *)(row + i + 4), _mm256_add_epi64(b64, hi4));
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
#elif defined(__AVX2__) && defined(__FMA__)
    if (a->th * a->tw < ((int64_t)1 << 31) && a->full_h < ((int64_t)1 << 24) && a->full_w < ((int64_t)1 << 24)) {
        i = n - n % 8;
        const int64_t bad = geometry_avx2(a, g, r0, i, base, row, x0, x1, x2);
        if (bad) return bad;
    }
#endif
    return geometry_scalar(a, g, r0 + i, n - i, base, row + i, x0 + i, x1 + i, x2 + i);
}

#endif
