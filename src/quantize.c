/* quantize.c — the reference quantizers declared in quantize.h (float rows
 * -> ggml blocks of the layouts in quant_isa.h). Scalar, deterministic,
 * allocation-free; written from the published ggml block formats and the
 * ideas of ggml's reference quantizers. */
#include "quantize.h"

#include <math.h>
#include <string.h>

#include "gguf.h"
#include "probelogits.h"
#include "quant.h"
#include "quant_isa.h"

/* Groups whose spread is below this are treated as constant (ggml uses the
 * same threshold), which also keeps 1/spread finite. */
#define GROUP_EPS 1e-15f

/* Round to nearest, ties to even, for |f| <= 2^22 (larger values are
 * clamped first; a NaN gives some int in [-2^22, 2^22)): always defined. */
static inline int near_int(float f) {
    f = f > 4194304.0f ? 4194304.0f : f; /* compares, not fminf/fmaxf: no library calls */
    f = f < -4194304.0f ? -4194304.0f : f;
    const float shifted = f + 12582912.0f; /* 1.5 * 2^23: the integer lands in the mantissa */
    uint32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    return (int)(bits & 0x007fffff) - 0x00400000;
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ---- legacy 32-value blocks ------------------------------------------------ */

/* Q8_0: d = amax / 127, q = round(x / d) (half away from zero). */
static void quant_q8_0(const float *x, pl_block_q8_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += PL_QK) {
        float amax = 0;
        for (int j = 0; j < PL_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax < GROUP_EPS ? 0.0f : amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        y[i].d = pl_f32_to_fp16(d);
        for (int j = 0; j < PL_QK; j++) y[i].qs[j] = (int8_t)clampi(near_int(roundf(x[j] * id)), -127, 127);
    }
}

/* Signed value of largest magnitude in x[0..n) (the first one on ties). */
static float signed_absmax(const float *x, int n) {
    float amax = 0, max = 0;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
    return max;
}

/* Q4_0 (nlev 16) / Q5_0 (nlev 32): d = max / -(nlev/2) where max is the
 * signed extreme, so the extreme maps exactly to level 0; q = floor(x/d +
 * nlev/2 + 0.5) clamped to [0, nlev). Returns the levels in q[0..32). */
static float quant_sym_block(const float *x, int nlev, uint8_t *q) {
    const float half = (float)(nlev / 2);
    const float max = signed_absmax(x, PL_QK);
    const float d = fabsf(max) < GROUP_EPS ? 0.0f : max / -half, id = d != 0 ? 1.0f / d : 0.0f;
    for (int j = 0; j < PL_QK; j++) q[j] = (uint8_t)clampi(near_int(floorf(x[j] * id + half + 0.5f)), 0, nlev - 1);
    return d;
}

/* Q4_1 (nlev 16) / Q5_1 (nlev 32): m = min, d = (max - min) / (nlev - 1),
 * q = floor((x - m) / d + 0.5). */
static float quant_asym_block(const float *x, int nlev, uint8_t *q, float *m) {
    float lo = x[0], hi = x[0];
    for (int j = 1; j < PL_QK; j++) lo = fminf(lo, x[j]), hi = fmaxf(hi, x[j]);
    const float d = hi - lo < GROUP_EPS ? 0.0f : (hi - lo) / (float)(nlev - 1), id = d != 0 ? 1.0f / d : 0.0f;
    for (int j = 0; j < PL_QK; j++) q[j] = (uint8_t)clampi(near_int(floorf((x[j] - lo) * id + 0.5f)), 0, nlev - 1);
    *m = lo;
    return d;
}

/* Packs 32 four-bit levels: element j in the low nibble of byte j, element
 * j + 16 in the high nibble. */
static void pack_nibbles32(const uint8_t *q, uint8_t *qs) {
    for (int j = 0; j < PL_QK / 2; j++) qs[j] = (uint8_t)((q[j] & 0xF) | ((q[j + PL_QK / 2] & 0xF) << 4));
}

/* Fifth bits of 32 levels as the little-endian u32 of Q5_0 / Q5_1. */
static void pack_fifth_bits(const uint8_t *q, uint8_t qh[4]) {
    uint32_t h = 0;
    for (int j = 0; j < PL_QK; j++) h |= (uint32_t)((q[j] >> 4) & 1) << j;
    memcpy(qh, &h, 4);
}

static void quant_q4_0(const float *x, pl_block_q4_0 *y, int64_t nb) {
    uint8_t q[PL_QK];
    for (int64_t i = 0; i < nb; i++, x += PL_QK) {
        y[i].d = pl_f32_to_fp16(quant_sym_block(x, 16, q));
        pack_nibbles32(q, y[i].qs);
    }
}

static void quant_q5_0(const float *x, pl_block_q5_0 *y, int64_t nb) {
    uint8_t q[PL_QK];
    for (int64_t i = 0; i < nb; i++, x += PL_QK) {
        y[i].d = pl_f32_to_fp16(quant_sym_block(x, 32, q));
        pack_nibbles32(q, y[i].qs);
        pack_fifth_bits(q, y[i].qh);
    }
}

static void quant_q4_1(const float *x, pl_block_q4_1 *y, int64_t nb) {
    uint8_t q[PL_QK];
    for (int64_t i = 0; i < nb; i++, x += PL_QK) {
        float m;
        y[i].d = pl_f32_to_fp16(quant_asym_block(x, 16, q, &m));
        y[i].m = pl_f32_to_fp16(m);
        pack_nibbles32(q, y[i].qs);
    }
}

static void quant_q5_1(const float *x, pl_block_q5_1 *y, int64_t nb) {
    uint8_t q[PL_QK];
    for (int64_t i = 0; i < nb; i++, x += PL_QK) {
        float m;
        y[i].d = pl_f32_to_fp16(quant_asym_block(x, 32, q, &m));
        y[i].m = pl_f32_to_fp16(m);
        pack_nibbles32(q, y[i].qs);
        pack_fifth_bits(q, y[i].qh);
    }
}

/* ---- K-quants ------------------------------------------------------------- */

/* Weighted fit of x[0..n) ~ scale * L + min with L in [0, nmax] and min <= 0
 * (the min is stored negated); n is a multiple of 4, at most 32. Starts from
 * the plain min/max grid, then tries nstep+1 grids with 1/scale = (nmax +
 * rmin + k*rdelta) / (max - min), each refined by closed-form weighted least
 * squares for (scale, min); keeps the lowest weighted squared error
 * (computed from the sums, in a fixed order: deterministic). Returns scale,
 * *neg_min = -min, L filled. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min, float rmin,
                           float rdelta, int nstep) {
    float lo = x[0], hi = x[0], sw = 0, swx = 0, swx2 = 0;
    for (int i = 0; i < n; i++) {
        lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
        sw += w[i], swx += w[i] * x[i], swx2 += w[i] * x[i] * x[i];
    }
    if (lo > 0) lo = 0;
    if (hi - lo < GROUP_EPS) { /* constant (or all-zero) group: everything in the min */
        memset(L, 0, (size_t)n);
        *neg_min = -lo;
        return 0.0f;
    }
    float dx[32];
    for (int i = 0; i < n; i++) dx[i] = x[i] - lo;
    uint8_t La[32];
    float best = 0, scale = 0, min = lo;
    /* k = -1: the plain grid with scale (max - min) / nmax, min = lo; then the refined grids */
    for (int k = -1; k <= nstep; k++) {
        const float inv = k < 0 ? (float)nmax / (hi - lo) : ((float)nmax + rmin + rdelta * (float)k) / (hi - lo);
        float sl[4] = {0}, sl2[4] = {0}, sxl[4] = {0};
        for (int i = 0; i < n; i += 4) {
            for (int u = 0; u < 4; u++) {
                const int l = clampi(near_int(inv * dx[i + u]), 0, nmax);
                const float wl = w[i + u] * (float)l;
                La[i + u] = (uint8_t)l;
                sl[u] += wl, sl2[u] += wl * (float)l, sxl[u] += wl * x[i + u];
            }
        }
        const float Sl = (sl[0] + sl[1]) + (sl[2] + sl[3]), Sl2 = (sl2[0] + sl2[1]) + (sl2[2] + sl2[3]);
        const float Sxl = (sxl[0] + sxl[1]) + (sxl[2] + sxl[3]);
        float s, m;
        if (k < 0) {
            s = 1.0f / inv, m = lo;
        } else {
            const float det = sw * Sl2 - Sl * Sl;
            if (!(det > 0)) continue;
            s = (sw * Sxl - swx * Sl) / det, m = (Sl2 * swx - Sl * Sxl) / det;
            if (m > 0) m = 0, s = Sxl / Sl2;
        }
        /* sum of w * (s*l + m - x)^2, expanded */
        const float err = s * s * Sl2 + 2 * s * m * Sl + m * m * sw - 2 * s * Sxl - 2 * m * swx + swx2;
        if (k < 0 || err < best) {
            best = err, scale = s, min = m;
            memcpy(L, La, (size_t)n);
        }
    }
    *neg_min = -min;
    return scale;
}

/* Packs 8 six-bit scales and mins into the 12-byte layout read by
 * pl_k_scale_min. */
static void pack_k_scales(const uint8_t sc[8], const uint8_t mn[8], uint8_t out[PL_K_SCALE_SIZE]) {
    memset(out, 0, PL_K_SCALE_SIZE);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            out[j] = sc[j] & 63;
            out[j + 4] = mn[j] & 63;
        } else {
            out[j + 4] = (uint8_t)((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
            out[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
            out[j] |= (uint8_t)((mn[j] >> 4) << 6);
        }
    }
}

/* Shared part of Q4_K (nmax 15) and Q5_K (nmax 31) for one 256-value block:
 * fits each 32-value group with weights rms(group) + |x|, quantizes the 8
 * scales and 8 mins to 6 bits under fp16 super-scales, then re-derives each
 * level against the stored scales. Fills *d, *dmin, scales and L[256]. */
static void quant_k_block(const float *x, int nmax, float rmin, float rdelta, int nstep, uint16_t *d16,
                          uint16_t *dmin16, uint8_t scales[PL_K_SCALE_SIZE], uint8_t L[PL_QK_K]) {
    float sc[8], mn[8], w[32], max_sc = 0, max_mn = 0;
    for (int j = 0; j < 8; j++) {
        const float *g = x + 32 * j;
        float s2 = 0;
        for (int l = 0; l < 32; l++) s2 += g[l] * g[l];
        const float av = sqrtf(s2 / 32.0f);
        for (int l = 0; l < 32; l++) w[l] = av + fabsf(g[l]);
        sc[j] = fit_scale_min(32, nmax, g, w, L + 32 * j, &mn[j], rmin, rdelta, nstep);
        max_sc = fmaxf(max_sc, sc[j]), max_mn = fmaxf(max_mn, mn[j]);
    }
    const float inv_sc = max_sc > 0 ? 63.0f / max_sc : 0.0f, inv_mn = max_mn > 0 ? 63.0f / max_mn : 0.0f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)clampi(near_int(inv_sc * sc[j]), 0, 63);
        lm[j] = (uint8_t)clampi(near_int(inv_mn * mn[j]), 0, 63);
    }
    pack_k_scales(ls, lm, scales);
    *d16 = pl_f32_to_fp16(max_sc / 63.0f);
    *dmin16 = pl_f32_to_fp16(max_mn / 63.0f);
    const float d = pl_fp16_to_f32(*d16), dmin = pl_fp16_to_f32(*dmin16);
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        pl_k_scale_min(j, scales, &s, &m);
        const float dj = d * (float)s, mj = dmin * (float)m;
        if (dj == 0) continue; /* levels kept from the fit (all values equal the min) */
        for (int l = 0; l < 32; l++) L[32 * j + l] = (uint8_t)clampi(near_int((x[32 * j + l] + mj) / dj), 0, nmax);
    }
}

static void quant_q4_k(const float *x, pl_block_q4_k *y, int64_t nb) {
    uint8_t L[PL_QK_K];
    for (int64_t i = 0; i < nb; i++, x += PL_QK_K) {
        uint16_t d, dmin;
        quant_k_block(x, 15, -1.0f, 0.1f, 20, &d, &dmin, y[i].scales, L);
        y[i].d = d, y[i].dmin = dmin;
        /* per 64 values: 32 bytes, first 32 values in the low nibbles */
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) y[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

static void quant_q5_k(const float *x, pl_block_q5_k *y, int64_t nb) {
    uint8_t L[PL_QK_K];
    for (int64_t i = 0; i < nb; i++, x += PL_QK_K) {
        uint16_t d, dmin;
        quant_k_block(x, 31, -0.5f, 0.1f, 15, &d, &dmin, y[i].scales, L);
        y[i].d = d, y[i].dmin = dmin;
        memset(y[i].qh, 0, sizeof y[i].qh);
        for (int c = 0; c < 4; c++) {
            for (int l = 0; l < 32; l++) {
                const uint8_t a = L[64 * c + l], b = L[64 * c + 32 + l];
                y[i].qs[32 * c + l] = (uint8_t)((a & 0xF) | ((b & 0xF) << 4));
                y[i].qh[l] |= (uint8_t)(((a >> 4) & 1) << (2 * c));
                y[i].qh[l] |= (uint8_t)(((b >> 4) & 1) << (2 * c + 1));
            }
        }
    }
}

/* Symmetric fit of 16 values to signed levels in [-32, 31] with weights x^2:
 * the extreme value maps to -32; 18 nearby grids are tried and the one with
 * the best weighted least-squares agreement is kept. Returns the scale,
 * L[i] = level + 32. */
static float fit_q6_group(const float *x, uint8_t *L) {
    const float max = signed_absmax(x, 16);
    if (fabsf(max) < GROUP_EPS) {
        memset(L, 32, 16);
        return 0.0f;
    }
    float best_scale = 0, best = -1;
    for (int k = 0; k <= 18; k++) {
        const int is = k == 0 ? 0 : (k <= 9 ? -k : k - 9); /* 0, then -1..-9, then 1..9 */
        const float inv = -(32.0f + 0.1f * (float)is) / max;
        float slx = 0, sl2 = 0;
        for (int i = 0; i < 16; i++) {
            const int l = clampi(near_int(inv * x[i]), -32, 31);
            const float w = x[i] * x[i];
            slx += w * x[i] * (float)l, sl2 += w * (float)(l * l);
        }
        if (!(sl2 > 0)) continue;
        /* quality = slx^2 / sl2 (error reduction of the best scale for these levels) */
        if (best < 0 || slx * slx > best * sl2) {
            best = slx * slx / sl2, best_scale = slx / sl2;
            for (int i = 0; i < 16; i++) L[i] = (uint8_t)(clampi(near_int(inv * x[i]), -32, 31) + 32);
        }
    }
    if (best < 0) { /* all weights vanished (values below ~1e-19): plain grid */
        const float inv = -32.0f / max;
        for (int i = 0; i < 16; i++) L[i] = (uint8_t)(clampi(near_int(inv * x[i]), -32, 31) + 32);
        return 1.0f / inv;
    }
    return best_scale;
}

static void quant_q6_k(const float *x, pl_block_q6_k *y, int64_t nb) {
    uint8_t L[PL_QK_K];
    float sc[16];
    for (int64_t i = 0; i < nb; i++, x += PL_QK_K) {
        float max_sc = 0, amax_sc = 0;
        for (int g = 0; g < 16; g++) {
            sc[g] = fit_q6_group(x + 16 * g, L + 16 * g);
            if (fabsf(sc[g]) > amax_sc) amax_sc = fabsf(sc[g]), max_sc = sc[g];
        }
        memset(y[i].ql, 0, sizeof y[i].ql);
        memset(y[i].qh, 0, sizeof y[i].qh);
        if (amax_sc < GROUP_EPS) {
            memset(y[i].scales, 0, sizeof y[i].scales);
            y[i].d = 0;
            continue;
        }
        const float inv = -128.0f / max_sc;
        y[i].d = pl_f32_to_fp16(1.0f / inv);
        for (int g = 0; g < 16; g++) y[i].scales[g] = (int8_t)clampi(near_int(inv * sc[g]), -128, 127);
        const float d = pl_fp16_to_f32(y[i].d);
        for (int g = 0; g < 16; g++) {
            const float dg = d * (float)y[i].scales[g];
            if (dg == 0) continue;
            for (int l = 0; l < 16; l++) L[16 * g + l] = (uint8_t)(clampi(near_int(x[16 * g + l] / dg), -32, 31) + 32);
        }
        /* per 128 values h: ql[64h + l] = v[l] | v[l+64] << 4, ql[64h + 32 + l] =
         * v[l+32] | v[l+96] << 4, qh[32h + l] = top two bits of v[l], v[l+32],
         * v[l+64], v[l+96] at bits 0, 2, 4, 6 */
        for (int h = 0; h < 2; h++) {
            const uint8_t *v = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                y[i].ql[64 * h + l] = (uint8_t)((v[l] & 0xF) | ((v[l + 64] & 0xF) << 4));
                y[i].ql[64 * h + 32 + l] = (uint8_t)((v[l + 32] & 0xF) | ((v[l + 96] & 0xF) << 4));
                y[i].qh[32 * h + l] = (uint8_t)((v[l] >> 4) | ((v[l + 32] >> 4) << 2) | ((v[l + 64] >> 4) << 4) |
                                                ((v[l + 96] >> 4) << 6));
            }
        }
    }
}

/* ---- entry points --------------------------------------------------------- */

bool pl_quantize_supported(uint32_t type) {
    switch (type) {
    case GGML_F32:
    case GGML_F16:
    case GGML_BF16:
    case GGML_Q4_0:
    case GGML_Q4_1:
    case GGML_Q5_0:
    case GGML_Q5_1:
    case GGML_Q8_0:
    case GGML_Q4_K:
    case GGML_Q5_K:
    case GGML_Q6_K: return true;
    default: return false;
    }
}

int pl_quantize_row(uint32_t type, const float *src, void *dst, int64_t n, pl_err *err) {
    if (!pl_quantize_supported(type))
        return pl_fail(err, PL_ERR_UNSUPPORTED, "quantize: type %s (%u) is not supported", ggml_type_name(type), type);
    const int64_t blck = ggml_blck_size(type);
    if (!src || !dst || n <= 0 || n % blck)
        return pl_fail(err, PL_ERR_ARG, "quantize: %lld values are not a positive multiple of %s's block of %lld",
                       (long long)n, ggml_type_name(type), (long long)blck);
    switch (type) {
    case GGML_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return PL_OK;
    case GGML_F16:
    case GGML_BF16: {
        uint8_t *p = dst;
        for (int64_t i = 0; i < n; i++) {
            const uint16_t h = type == GGML_F16 ? pl_f32_to_fp16(src[i]) : pl_f32_to_bf16(src[i]);
            memcpy(p + 2 * i, &h, 2);
        }
        return PL_OK;
    }
    default: break;
    }
    for (int64_t i = 0; i < n; i++)
        if (!(fabsf(src[i]) <= PL_QUANT_MAX_ABS))
            return pl_fail(err, PL_ERR_RANGE, "quantize: value %g at %lld is not finite or exceeds %g for %s",
                           (double)src[i], (long long)i, (double)PL_QUANT_MAX_ABS, ggml_type_name(type));
    const int64_t nb = n / blck;
    switch (type) {
    case GGML_Q4_0: quant_q4_0(src, dst, nb); break;
    case GGML_Q4_1: quant_q4_1(src, dst, nb); break;
    case GGML_Q5_0: quant_q5_0(src, dst, nb); break;
    case GGML_Q5_1: quant_q5_1(src, dst, nb); break;
    case GGML_Q8_0: quant_q8_0(src, dst, nb); break;
    case GGML_Q4_K: quant_q4_k(src, dst, nb); break;
    case GGML_Q5_K: quant_q5_k(src, dst, nb); break;
    case GGML_Q6_K: quant_q6_k(src, dst, nb); break;
    default: return pl_fail(err, PL_ERR_INTERNAL, "quantize: unhandled type %u", type);
    }
    return PL_OK;
}
