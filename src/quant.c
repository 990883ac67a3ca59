/* quant.c — ggml weight formats: fp16/bf16 conversions, the scalar reference
 * dequantizers (the definition of what every SIMD kernel must reproduce bit
 * for bit), the type traits table, CPU detection and the per-ISA kernel
 * tables, the scalar reference matmul (the canonical accumulation order of
 * pl_matmul_rows written plainly) and the matmul entry point; for fast mode,
 * the reference activation quantizer (q8a) and integer matmul.
 *
 * Layouts and formulas follow ggml (ggml-common.h, ggml-quants.c); the block
 * structs live in quant_isa.h so the SIMD files share them. This file is
 * compiled for baseline x86-64 (no FMA), so no multiply-add is contracted;
 * the reference matmul calls fmaf explicitly (one rounding, as VFMADD). */
#include "quant.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quant_isa.h"
#include "util.h"

_Static_assert(sizeof(pl_block_q4_0) == 2 + PL_QK / 2, "Q4_0 block is 18 bytes");
_Static_assert(sizeof(pl_block_q4_1) == 4 + PL_QK / 2, "Q4_1 block is 20 bytes");
_Static_assert(sizeof(pl_block_q5_0) == 2 + 4 + PL_QK / 2, "Q5_0 block is 22 bytes");
_Static_assert(sizeof(pl_block_q5_1) == 4 + 4 + PL_QK / 2, "Q5_1 block is 24 bytes");
_Static_assert(sizeof(pl_block_q8_0) == 2 + PL_QK, "Q8_0 block is 34 bytes");
_Static_assert(sizeof(pl_block_q4_k) == 144, "Q4_K block is 144 bytes");
_Static_assert(sizeof(pl_block_q5_k) == 176, "Q5_K block is 176 bytes");
_Static_assert(sizeof(pl_block_q6_k) == 210, "Q6_K block is 210 bytes");
_Static_assert(sizeof(float) == 4 && sizeof(uint32_t) == 4, "IEEE binary32 float");

/* ---- fp16 / bf16 --------------------------------------------------------- */

static inline float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Exact widening; a NaN keeps its payload and gets the quiet bit set, which
 * is what the F16C instruction (VCVTPH2PS) does, so SIMD matches scalar. */
float pl_fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) return f32_from_bits(sign | 0x7f800000u | (mant << 13) | (mant ? 0x00400000u : 0));
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in binary32 */
        float v = (float)mant * 0x1p-24f;
        return f32_from_bits(sign | f32_bits(v));
    }
    return f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
}

/* Round-to-nearest-even narrowing; overflow gives inf, tiny values give
 * (signed) subnormals or zero, NaN stays a quiet NaN with the top payload bits
 * (same results as VCVTPS2PH with rounding mode 0). */
uint16_t pl_f32_to_fp16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x3ff));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* >= 65520 rounds to inf */
    if (a < 0x38800000u) {                                  /* below 2^-14: half subnormal */
        if (a < 0x33000000u) return sign;                   /* <= 2^-25 rounds to zero */
        uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
        uint32_t s = 126 - e; /* 14..24: m * 2^(e-150) / 2^-24 = m >> s */
        uint32_t r = m >> s, rem = m & ((1u << s) - 1), half = 1u << (s - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t h = ((a >> 13) - (112u << 10)), rem = a & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

/* Exact widening (bf16 is the top half of a binary32). */
float pl_bf16_to_f32(uint16_t h) { return f32_from_bits((uint32_t)h << 16); }

/* Round-to-nearest-even narrowing; NaN stays NaN (quiet bit forced). */
uint16_t pl_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

/* ---- scalar reference dequantizers ---------------------------------------
 * Each turns n values (a multiple of the block size) at src into floats. The
 * exact expression of each is the contract the SIMD versions reproduce. */

/* F32: a copy (src may be unaligned). */
static void to_float_f32(const void *restrict src, float *restrict dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

/* F16: exact widening of each half. */
static void to_float_f16(const void *restrict src, float *restrict dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = pl_fp16_to_f32(pl_load_u16(p + 2 * i));
}

/* BF16: exact widening of each bfloat16. */
static void to_float_bf16(const void *restrict src, float *restrict dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = pl_bf16_to_f32(pl_load_u16(p + 2 * i));
}

/* Q4_0: y = (float)(nibble - 8) * d. */
static void to_float_q4_0(const void *restrict src, float *restrict dst, int64_t n) {
    const pl_block_q4_0 *x = src;
    for (int64_t i = 0; i < n / PL_QK; i++, dst += PL_QK) {
        const float d = pl_fp16_to_f32(x[i].d);
        for (int j = 0; j < PL_QK / 2; j++) {
            const int x0 = (x[i].qs[j] & 0x0F) - 8;
            const int x1 = (x[i].qs[j] >> 4) - 8;
            dst[j] = (float)x0 * d;
            dst[j + PL_QK / 2] = (float)x1 * d;
        }
    }
}

/* Q4_1: y = (float)nibble * d + m. */
static void to_float_q4_1(const void *restrict src, float *restrict dst, int64_t n) {
    const pl_block_q4_1 *x = src;
    for (int64_t i = 0; i < n / PL_QK; i++, dst += PL_QK) {
        const float d = pl_fp16_to_f32(x[i].d);
        const float m = pl_fp16_to_f32(x[i].m);
        for (int j = 0; j < PL_QK / 2; j++) {
            const int x0 = x[i].qs[j] & 0x0F;
            const int x1 = x[i].qs[j] >> 4;
            dst[j] = (float)x0 * d + m;
            dst[j + PL_QK / 2] = (float)x1 * d + m;
        }
    }
}

/* Q5_0: y = (float)((nibble | fifth_bit << 4) - 16) * d, fifth bit of
 * element e = bit e of the little-endian u32 qh. */
static void to_float_q5_0(const void *restrict src, float *restrict dst, int64_t n) {
    const pl_block_q5_0 *x = src;
    for (int64_t i = 0; i < n / PL_QK; i++, dst += PL_QK) {
        const float d = pl_fp16_to_f32(x[i].d);
        const uint32_t qh = pl_load_u32(x[i].qh);
        for (int j = 0; j < PL_QK / 2; j++) {
            const int h0 = (int)((qh >> j) & 1) << 4;
            const int h1 = (int)((qh >> (j + 16)) & 1) << 4;
            const int x0 = ((x[i].qs[j] & 0x0F) | h0) - 16;
            const int x1 = ((x[i].qs[j] >> 4) | h1) - 16;
            dst[j] = (float)x0 * d;
            dst[j + PL_QK / 2] = (float)x1 * d;
        }
    }
}

/* Q5_1: y = (float)(nibble | fifth_bit << 4) * d + m. */
static void to_float_q5_1(const void *restrict src, float *restrict dst, int64_t n) {
    const pl_block_q5_1 *x = src;
    for (int64_t i = 0; i < n / PL_QK; i++, dst += PL_QK) {
        const float d = pl_fp16_to_f32(x[i].d);
        const float m = pl_fp16_to_f32(x[i].m);
        const uint32_t qh = pl_load_u32(x[i].qh);
        for (int j = 0; j < PL_QK / 2; j++) {
            const int h0 = (int)((qh >> j) & 1) << 4;
            const int h1 = (int)((qh >> (j + 16)) & 1) << 4;
            const int x0 = (x[i].qs[j] & 0x0F) | h0;
            const int x1 = (x[i].qs[j] >> 4) | h1;
            dst[j] = (float)x0 * d + m;
            dst[j + PL_QK / 2] = (float)x1 * d + m;
        }
    }
}

/* Q8_0: y = (float)q * d. */
static void to_float_q8_0(const void *restrict src, float *restrict dst, int64_t n) {
    const pl_block_q8_0 *x = src;
    for (int64_t i = 0; i < n / PL_QK; i++, dst += PL_QK) {
        const float d = pl_fp16_to_f32(x[i].d);
        for (int j = 0; j < PL_QK; j++) dst[j] = (float)x[i].qs[j] * d;
    }
}

/* Q4_K: per 64 values k (0..3), scales/mins 2k and 2k+1:
 * d1 = d * sc, m1 = dmin * m; y = d1 * (float)nibble - m1. */
static void to_float_q4_k(const void *restrict src, float *restrict dst, int64_t n) {
    const pl_block_q4_k *x = src;
    for (int64_t i = 0; i < n / PL_QK_K; i++) {
        const float d = pl_fp16_to_f32(x[i].d);
        const float min = pl_fp16_to_f32(x[i].dmin);
        const uint8_t *q = x[i].qs;
        for (int j = 0; j < 4; j++, q += 32) {
            uint8_t sc, m;
            pl_k_scale_min(2 * j, x[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = min * (float)m;
            pl_k_scale_min(2 * j + 1, x[i].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = min * (float)m;
            for (int l = 0; l < 32; l++) *dst++ = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *dst++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

/* Q5_K: as Q4_K with the fifth bit from qh: y = d1 * (float)(nibble + 16*bit) - m1. */
static void to_float_q5_k(const void *restrict src, float *restrict dst, int64_t n) {
    const pl_block_q5_k *x = src;
    for (int64_t i = 0; i < n / PL_QK_K; i++) {
        const float d = pl_fp16_to_f32(x[i].d);
        const float min = pl_fp16_to_f32(x[i].dmin);
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        for (int j = 0; j < 4; j++, ql += 32) {
            uint8_t sc, m;
            pl_k_scale_min(2 * j, x[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = min * (float)m;
            pl_k_scale_min(2 * j + 1, x[i].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = min * (float)m;
            const uint8_t u1 = (uint8_t)(1u << (2 * j)), u2 = (uint8_t)(2u << (2 * j));
            for (int l = 0; l < 32; l++) *dst++ = d1 * (float)((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *dst++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

/* Q6_K: per 128 values (ql 64 bytes, qh 32 bytes, scales 8), for l < 32:
 * q1..q4 = (low nibble of ql[l] / ql[l+32], high nibble of ql[l] / ql[l+32])
 * | (bits 0-1 / 2-3 / 4-5 / 6-7 of qh[l]) << 4, minus 32, at y[l], y[l+32],
 * y[l+64], y[l+96] with scales sc[l/16 + 0/2/4/6]: y = (d * (float)sc) * (float)q. */
static void to_float_q6_k(const void *restrict src, float *restrict dst, int64_t n) {
    const pl_block_q6_k *x = src;
    for (int64_t i = 0; i < n / PL_QK_K; i++) {
        const float d = pl_fp16_to_f32(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int h = 0; h < 2; h++, dst += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                dst[l] = d * (float)sc[is] * (float)q1;
                dst[l + 32] = d * (float)sc[is + 2] * (float)q2;
                dst[l + 64] = d * (float)sc[is + 4] * (float)q3;
                dst[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

/* ---- traits -------------------------------------------------------------- */

static const pl_type_traits k_traits[GGML_TYPE_COUNT] = {
    [GGML_F32] = {"F32", 1, 4, to_float_f32},
    [GGML_F16] = {"F16", 1, 2, to_float_f16},
    [GGML_BF16] = {"BF16", 1, 2, to_float_bf16},
    [GGML_Q4_0] = {"Q4_0", PL_QK, sizeof(pl_block_q4_0), to_float_q4_0},
    [GGML_Q4_1] = {"Q4_1", PL_QK, sizeof(pl_block_q4_1), to_float_q4_1},
    [GGML_Q5_0] = {"Q5_0", PL_QK, sizeof(pl_block_q5_0), to_float_q5_0},
    [GGML_Q5_1] = {"Q5_1", PL_QK, sizeof(pl_block_q5_1), to_float_q5_1},
    [GGML_Q8_0] = {"Q8_0", PL_QK, sizeof(pl_block_q8_0), to_float_q8_0},
    [GGML_Q4_K] = {"Q4_K", PL_QK_K, sizeof(pl_block_q4_k), to_float_q4_k},
    [GGML_Q5_K] = {"Q5_K", PL_QK_K, sizeof(pl_block_q5_k), to_float_q5_k},
    [GGML_Q6_K] = {"Q6_K", PL_QK_K, sizeof(pl_block_q6_k), to_float_q6_k},
};

const pl_type_traits *pl_type_traits_get(uint32_t type) {
    if (type >= GGML_TYPE_COUNT || !k_traits[type].name) return NULL;
    return &k_traits[type];
}

size_t pl_row_size(uint32_t type, int64_t n) {
    const pl_type_traits *t = pl_type_traits_get(type);
    if (!t || n < 0 || n % t->blck_size) return 0;
    size_t bytes;
    if (!pl_mul_ok((size_t)(n / t->blck_size), t->type_size, &bytes)) return 0;
    return bytes;
}

/* ---- dot products -------------------------------------------------------- */

/* Scalar dot: a fixed 16-way split. Lane l accumulates a[i]*b[i] (multiply,
 * then add: two roundings) for i = l, l+16, ... over the full 16-chunks; the
 * tail element n16+l goes to lane l; lanes are then summed as a fixed tree
 * (l += l+8, l += l+4, l += l+2, l += l+1). The order depends on n only. */
static float dot_scalar(const float *restrict a, const float *restrict b, int64_t n) {
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) acc[l] += a[i + l] * b[i + l];
    for (int l = 0; i + l < n; l++) acc[l] += a[i + l] * b[i + l];
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

/* ---- scalar reference matmul -------------------------------------------- */

/* Canonical matmul dot of one dequantized row w with x (see pl_matmul_rows):
 * 16 lane sums updated with fmaf chunk by chunk, a partial tail chunk on its
 * first lanes only, then the fixed halving tree. */
static float matmul_dot_ref(const float *restrict w, const float *restrict x, int64_t n) {
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) acc[l] = fmaf(w[i + l], x[i + l], acc[l]);
    for (int l = 0; i + l < n; l++) acc[l] = fmaf(w[i + l], x[i + l], acc[l]);
    for (int h = 8; h >= 1; h /= 2)
        for (int l = 0; l < h; l++) acc[l] += acc[l + h];
    return acc[0];
}

/* Reference matmul body: one row at a time, dequantized into scratch (F32
 * rows are read in place when aligned), then one canonical dot per token. */
static void matmul_scalar(pl_to_float_fn to_float, const void *W, uint32_t type, size_t rs, int64_t n, int64_t r0,
                          int64_t r1, const float *x, int64_t xs, int64_t nt, float *y, int64_t ys, float *scratch) {
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)W + (size_t)r * rs;
        const float *w = scratch;
        if (type == GGML_F32 && ((uintptr_t)row % _Alignof(float)) == 0)
            w = (const float *)(const void *)row;
        else
            to_float(row, scratch, n);
        for (int64_t t = 0; t < nt; t++) y[t * ys + r] = matmul_dot_ref(w, x + t * xs, n);
    }
}

/* ---- fast mode: q8a activations and the reference integer matmul ---------- */

/* Reference quantizer (defines the q8a bytes, see quant.h). */
static void quant_act_scalar(const float *x, int64_t xs, int64_t n, int64_t nt, uint8_t *dst, int parts) {
    const int64_t nb = n / PL_QK, stride = pl_q8a_stride(n), gbytes = pl_q8a_groups_bytes(n);
    uint8_t group_tmp[PL_Q8A_GROUP_BYTES]; /* where groups go when they are not wanted */
    for (int64_t t = 0; t < nt; t++) {
        uint8_t *o = dst + t * stride;
        if (parts & PL_Q8A_GROUPS) memset(o, 0, (size_t)gbytes);
        if (parts & PL_Q8A_NATURAL) memset(o + gbytes, 0, (size_t)(stride - gbytes));
        for (int64_t b = 0; b < nb; b++) {
            const float *v = x + t * xs + b * PL_QK;
            uint8_t *G = parts & PL_Q8A_GROUPS ? o + b / 16 * PL_Q8A_GROUP_BYTES : group_tmp;
            const int l = (int)(b % 16);
            float amax = 0.0f;
            for (int i = 0; i < PL_QK; i++) {
                const float a = fabsf(v[i]);
                if (a > amax) amax = a;
            }
            const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            int32_t sum = 0, sumh = 0;
            for (int i = 0; i < PL_QK; i++) {
                const int q = (int)nearbyintf(v[i] * id);
                G[(i / 4) * 64 + 4 * l + i % 4] = (uint8_t)(int8_t)q;
                sum += q;
                if (i < 16) sumh += q;
            }
            const float ax = d * (float)sum;
            memcpy(G + 512 + 4 * l, &d, 4);
            memcpy(G + 576 + 4 * l, &ax, 4);
            memcpy(G + 640 + 4 * l, &sum, 4);
            memcpy(G + 704 + 4 * l, &sumh, 4);
            const int32_t off = -128 * sum, nh = -32 * sumh, nr = -32 * (sum - sumh);
            memcpy(G + 768 + 4 * l, &off, 4);
            if (!(parts & PL_Q8A_NATURAL)) continue;
            uint8_t *N = o + gbytes + b * PL_Q8A_NAT_BYTES; /* natural copy */
            for (int i = 0; i < PL_QK; i++) N[i] = G[(i / 4) * 64 + 4 * l + i % 4];
            memcpy(N + 32, &d, 4);
            memcpy(N + 36, &ax, 4);
            memcpy(N + 40, &off, 4);
            memcpy(N + 44, &nh, 4);
            memcpy(N + 48, &nr, 4);
        }
    }
}

bool pl_q8_supported(uint32_t type) {
    switch (type) {
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

/* Integer weights w[32] of 32-value block b of a row (offsets removed; Q6_K
 * times its 16-value scales), the weight scale *dw and the signed min factor
 * *mw added as fmaf(mw, ax_b, acc) (0 when the type has none). */
static void q8_block_ref(uint32_t type, const uint8_t *row, int64_t b, int32_t w[32], float *dw, float *mw) {
    *mw = 0.0f;
    switch (type) {
    case GGML_Q8_0: {
        const pl_block_q8_0 *x = (const pl_block_q8_0 *)(const void *)row + b;
        *dw = pl_fp16_to_f32(x->d);
        for (int i = 0; i < 32; i++) w[i] = x->qs[i];
        break;
    }
    case GGML_Q4_0:
    case GGML_Q4_1: {
        const uint8_t *qs;
        if (type == GGML_Q4_0) {
            const pl_block_q4_0 *x = (const pl_block_q4_0 *)(const void *)row + b;
            *dw = pl_fp16_to_f32(x->d), qs = x->qs;
        } else {
            const pl_block_q4_1 *x = (const pl_block_q4_1 *)(const void *)row + b;
            *dw = pl_fp16_to_f32(x->d), *mw = pl_fp16_to_f32(x->m), qs = x->qs;
        }
        const int off = type == GGML_Q4_0 ? 8 : 0;
        for (int i = 0; i < 16; i++) w[i] = (qs[i] & 0xF) - off, w[i + 16] = (qs[i] >> 4) - off;
        break;
    }
    case GGML_Q5_0:
    case GGML_Q5_1: {
        const uint8_t *qs, *qhp;
        if (type == GGML_Q5_0) {
            const pl_block_q5_0 *x = (const pl_block_q5_0 *)(const void *)row + b;
            *dw = pl_fp16_to_f32(x->d), qs = x->qs, qhp = x->qh;
        } else {
            const pl_block_q5_1 *x = (const pl_block_q5_1 *)(const void *)row + b;
            *dw = pl_fp16_to_f32(x->d), *mw = pl_fp16_to_f32(x->m), qs = x->qs, qhp = x->qh;
        }
        const uint32_t qh = pl_load_u32(qhp);
        const int off = type == GGML_Q5_0 ? 16 : 0;
        for (int i = 0; i < 16; i++) {
            w[i] = ((qs[i] & 0xF) | (int)((qh >> i) & 1) << 4) - off;
            w[i + 16] = ((qs[i] >> 4) | (int)((qh >> (i + 16)) & 1) << 4) - off;
        }
        break;
    }
    case GGML_Q4_K:
    case GGML_Q5_K: {
        const int64_t sb = b / 8;
        const int j = (int)(b % 8);
        const uint8_t *scales, *qs, *qh = NULL;
        float d, dmin;
        if (type == GGML_Q4_K) {
            const pl_block_q4_k *x = (const pl_block_q4_k *)(const void *)row + sb;
            d = pl_fp16_to_f32(x->d), dmin = pl_fp16_to_f32(x->dmin), scales = x->scales, qs = x->qs;
        } else {
            const pl_block_q5_k *x = (const pl_block_q5_k *)(const void *)row + sb;
            d = pl_fp16_to_f32(x->d), dmin = pl_fp16_to_f32(x->dmin), scales = x->scales, qs = x->qs, qh = x->qh;
        }
        uint8_t sc, m;
        pl_k_scale_min(j, scales, &sc, &m);
        *dw = d * (float)sc;
        *mw = -(dmin * (float)m);
        const uint8_t *q = qs + (j / 2) * 32;
        for (int i = 0; i < 32; i++) {
            w[i] = j % 2 ? q[i] >> 4 : q[i] & 0xF;
            if (qh && (qh[i] & (1u << j))) w[i] += 16;
        }
        break;
    }
    case GGML_Q6_K: {
        const pl_block_q6_k *x = (const pl_block_q6_k *)(const void *)row + b / 8;
        const int j = (int)(b % 8), h = j / 4, k = j % 4;
        *dw = pl_fp16_to_f32(x->d);
        for (int i = 0; i < 32; i++) {
            const uint8_t qlb = x->ql[64 * h + i + (k & 1) * 32];
            const int nib = k < 2 ? qlb & 0xF : qlb >> 4;
            const int q = nib | ((x->qh[32 * h + i] >> (2 * k)) & 3) << 4;
            w[i] = (q - 32) * x->scales[8 * h + i / 16 + 2 * k];
        }
        break;
    }
    default:
        *dw = __builtin_nanf("");
        for (int i = 0; i < 32; i++) w[i] = 0;
        break;
    }
}

/* Reference integer matmul: the canonical order of pl_matmul_rows_q8 written
 * plainly, decoding each block from the ggml layout (not the SIMD repack). */
static void matmul_q8_scalar(const void *W, uint32_t type, size_t rs, int64_t n, int64_t r0, int64_t r1,
                             const uint8_t *xq, int64_t nt, float *y, int64_t ys, uint8_t *scratch) {
    (void)scratch;
    const int64_t nb = n / PL_QK, stride = pl_q8a_stride(n);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)W + (size_t)r * rs;
        for (int64_t t = 0; t < nt; t++) {
            const uint8_t *a = xq + t * stride;
            float acc[16] = {0};
            for (int64_t b = 0; b < nb; b++) {
                int32_t w[32];
                float dw, mw, dx, ax;
                q8_block_ref(type, row, b, w, &dw, &mw);
                const uint8_t *G = a + b / 16 * PL_Q8A_GROUP_BYTES;
                const int l = (int)(b % 16);
                int32_t S = 0;
                for (int i = 0; i < 32; i++) S += w[i] * (int8_t)G[(i / 4) * 64 + 4 * l + i % 4];
                memcpy(&dx, G + 512 + 4 * l, 4);
                memcpy(&ax, G + 576 + 4 * l, 4);
                acc[l] = fmaf((float)S, dw * dx, acc[l]);
                if (type == GGML_Q4_1 || type == GGML_Q5_1 || type == GGML_Q4_K || type == GGML_Q5_K)
                    acc[l] = fmaf(mw, ax, acc[l]);
            }
            for (int h = 8; h >= 1; h /= 2)
                for (int l = 0; l < h; l++) acc[l] += acc[l + h];
            y[t * ys + r] = acc[0];
        }
    }
}

/* ---- fast mode: row-interleaved weights (r16, layout in quant.h) ------------ */

/* Bytes of one (group of 16 rows, block) entry, 0 for other types. */
static size_t r16_block_bytes(uint32_t type) {
    switch (type) {
    case GGML_Q8_0: return 16 * sizeof(pl_block_q8_0);
    case GGML_Q4_0: return 16 * sizeof(pl_block_q4_0);
    case GGML_Q5_0: return 16 * sizeof(pl_block_q5_0);
    case GGML_Q4_K: return 16 * sizeof(pl_block_q4_k) / 8; /* entries per super-block: 8 blocks */
    case GGML_Q5_K: return 16 * sizeof(pl_block_q5_k) / 8;
    case GGML_Q6_K: return 16 * sizeof(pl_block_q6_k) / 8;
    default: return 0;
    }
}

/* K-quants: one r16 entry per super-block (8 blocks). */
static bool r16_super(uint32_t type) { return type == GGML_Q4_K || type == GGML_Q5_K || type == GGML_Q6_K; }

bool pl_r16_supported(uint32_t type, int64_t n_in, int64_t n_rows) {
    const int64_t blk = r16_super(type) ? PL_QK_K : PL_QK;
    return r16_block_bytes(type) != 0 && n_in > 0 && n_in % blk == 0 && n_rows > 0 && n_rows % 16 == 0;
}

/* Q4_K entry of (group g, super-block sb), 2304 bytes: f16 d[16] at 0, f16
 * dmin[16] at 32, scale byte k of row r at 64 + 16k + r, then per pair of
 * sub-blocks i < 4 at 256 + 512i, vector s < 8 at +64s: byte 4r+c =
 * qs[r][32i + 4s + c] (low nibble: sub-block 2i, high: 2i+1). */
static void r16_pack_k4(uint8_t *o, int r, uint16_t d, uint16_t dmin, const uint8_t *scales, const uint8_t *qs) {
    memcpy(o + 2 * r, &d, 2);
    memcpy(o + 32 + 2 * r, &dmin, 2);
    for (int k = 0; k < PL_K_SCALE_SIZE; k++) o[64 + 16 * k + r] = scales[k];
    for (int i = 0; i < 4; i++)
        for (int v = 0; v < 32; v++) o[256 + 512 * i + (v / 4) * 64 + 4 * r + v % 4] = qs[32 * i + v];
}
static void r16_pack_q4_k(const uint8_t *W, size_t rs, int64_t g, int64_t sb, uint8_t *o) {
    for (int r = 0; r < 16; r++) {
        const pl_block_q4_k *x = (const pl_block_q4_k *)(const void *)(W + (size_t)(g * 16 + r) * rs) + sb;
        r16_pack_k4(o, r, x->d, x->dmin, x->scales, x->qs);
    }
}

/* Q5_K entry, 2816 bytes: the Q4_K entry of its d, dmin, scales and low
 * nibbles, then per sub-block j < 8, vector s < 8 a uint64 (little endian)
 * at 2304 + 64j + 8s: bit 4r+c = the fifth bit of value 4s+c of sub-block j
 * of row r (bit j of qh[r][4s+c]). */
static void r16_pack_q5_k(const uint8_t *W, size_t rs, int64_t g, int64_t sb, uint8_t *o) {
    memset(o + 2304, 0, 512);
    for (int r = 0; r < 16; r++) {
        const pl_block_q5_k *x = (const pl_block_q5_k *)(const void *)(W + (size_t)(g * 16 + r) * rs) + sb;
        r16_pack_k4(o, r, x->d, x->dmin, x->scales, x->qs);
        for (int j = 0; j < 8; j++)
            for (int v = 0; v < 32; v++) {
                const int bit = 4 * r + v % 4;
                if ((x->qh[v] >> j) & 1) o[2304 + 64 * j + 8 * (v / 4) + bit / 8] |= (uint8_t)(1u << (bit % 8));
            }
    }
}

/* Q6_K entry of (group g, super-block sb), 3360 bytes: f16 d[16] at 0, scale
 * k of row r at 32 + 16k + r, then the ql bytes in 4 regions of 512 at 288 +
 * 512(2h + half) (h < 2, half < 2), vector s at +64s: byte 4r+c =
 * ql[r][64h + 32half + 4s + c]; then the qh bytes in 2 regions at 2336 + 512h,
 * vector s: byte 4r+c = qh[r][32h + 4s + c]. */
static void r16_pack_q6_k(const uint8_t *W, size_t rs, int64_t g, int64_t sb, uint8_t *o) {
    for (int r = 0; r < 16; r++) {
        const pl_block_q6_k *x = (const pl_block_q6_k *)(const void *)(W + (size_t)(g * 16 + r) * rs) + sb;
        memcpy(o + 2 * r, &x->d, 2);
        for (int k = 0; k < 16; k++) o[32 + 16 * k + r] = (uint8_t)x->scales[k];
        for (int q = 0; q < 4; q++)
            for (int v = 0; v < 32; v++) o[288 + 512 * q + (v / 4) * 64 + 4 * r + v % 4] = x->ql[32 * q + v];
        for (int h = 0; h < 2; h++)
            for (int v = 0; v < 32; v++) o[2336 + 512 * h + (v / 4) * 64 + 4 * r + v % 4] = x->qh[32 * h + v];
    }
}

/* Index of block b's entry inside its group: entries are residue-major
 * (blocks 0, 16, 32, ..., then 1, 17, ...), the order the kernels walk. */
static int64_t r16_entry(int64_t nb, int64_t b) {
    const int64_t l = b % 16, q = nb / 16, rem = nb % 16;
    /* residues below l hold q + 1 entries each while they are < rem */
    return l * q + (l < rem ? l : rem) + b / 16;
}

void pl_r16_pack(uint32_t type, const void *W, int64_t n_in, int64_t n_rows, uint8_t *out) {
    const int64_t nb = n_in / PL_QK;
    const size_t rs = pl_row_size(type, n_in), bb = r16_block_bytes(type);
    if (r16_super(type)) { /* super-block entries in order */
        for (int64_t g = 0; g < n_rows / 16; g++)
            for (int64_t sb = 0; sb < nb / 8; sb++) {
                uint8_t *o = out + ((size_t)g * (size_t)nb + (size_t)sb * 8) * bb;
                if (type == GGML_Q4_K)
                    r16_pack_q4_k(W, rs, g, sb, o);
                else if (type == GGML_Q5_K)
                    r16_pack_q5_k(W, rs, g, sb, o);
                else
                    r16_pack_q6_k(W, rs, g, sb, o);
            }
        return;
    }
    for (int64_t g = 0; g < n_rows / 16; g++)
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *o = out + ((size_t)g * (size_t)nb + (size_t)r16_entry(nb, b)) * bb;
            for (int r = 0; r < 16; r++) {
                const uint8_t *row = (const uint8_t *)W + (size_t)(g * 16 + r) * rs;
                if (type == GGML_Q8_0) {
                    const pl_block_q8_0 *x = (const pl_block_q8_0 *)(const void *)row + b;
                    memcpy(o + 2 * r, &x->d, 2);
                    for (int i = 0; i < 32; i++) o[32 + (i / 4) * 64 + 4 * r + i % 4] = (uint8_t)(x->qs[i] + 128);
                } else if (type == GGML_Q4_0) {
                    const pl_block_q4_0 *x = (const pl_block_q4_0 *)(const void *)row + b;
                    memcpy(o + 2 * r, &x->d, 2);
                    for (int i = 0; i < 16; i++) o[32 + (i / 4) * 64 + 4 * r + i % 4] = x->qs[i];
                } else {
                    const pl_block_q5_0 *x = (const pl_block_q5_0 *)(const void *)row + b;
                    memcpy(o + 2 * r, &x->d, 2);
                    for (int i = 0; i < 16; i++) o[32 + (i / 4) * 64 + 4 * r + i % 4] = x->qs[i];
                    const uint32_t qh = pl_load_u32(x->qh);
                    for (int i = 0; i < 32; i++) {
                        uint8_t *hm = o + 32 + 256 + (i / 4) * 8; /* uint64 hm[i/4], little endian */
                        const int bit = 4 * r + i % 4;
                        if ((qh >> i) & 1)
                            hm[bit / 8] |= (uint8_t)(1u << (bit % 8));
                        else
                            hm[bit / 8] &= (uint8_t) ~(1u << (bit % 8));
                    }
                }
            }
        }
}

/* Reference kernel on packed weights: decodes each (row, block) back to its
 * integer weights and follows the canonical order of matmul_q8_scalar. */
static void matmul_r16_scalar(const uint8_t *P, uint32_t type, int64_t n, int64_t r0, int64_t r1, const uint8_t *xq,
                              int64_t nt, float *y, int64_t ys) {
    const int64_t nb = n / PL_QK, stride = pl_q8a_stride(n);
    const size_t bb = r16_block_bytes(type);
    for (int64_t r = r0; r < r1; r++) {
        const int64_t g = r / 16;
        const int lane = (int)(r % 16);
        for (int64_t t = 0; t < nt; t++) {
            const uint8_t *a = xq + t * stride;
            float acc[16] = {0};
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *o = r16_super(type) ? P + ((size_t)g * (size_t)nb + (size_t)(b / 8) * 8) * bb
                                                   : P + ((size_t)g * (size_t)nb + (size_t)r16_entry(nb, b)) * bb;
                uint16_t dh;
                memcpy(&dh, o + 2 * lane, 2);
                float dw = pl_fp16_to_f32(dh), mw = 0.0f;
                int32_t w[32];
                if (type == GGML_Q4_K || type == GGML_Q5_K) {
                    const int j = (int)(b % 8);
                    uint8_t sc8[PL_K_SCALE_SIZE], sc, m;
                    for (int k = 0; k < PL_K_SCALE_SIZE; k++) sc8[k] = o[64 + 16 * k + lane];
                    pl_k_scale_min(j, sc8, &sc, &m);
                    memcpy(&dh, o + 32 + 2 * lane, 2);
                    mw = -(pl_fp16_to_f32(dh) * (float)m);
                    dw = dw * (float)sc;
                }
                for (int i = 0; i < 32; i++) {
                    if (type == GGML_Q6_K) {
                        const int j = (int)(b % 8), h = j / 4, kk = j % 4;
                        const uint8_t qlb = o[288 + 512 * (2 * h + (kk & 1)) + (i / 4) * 64 + 4 * lane + i % 4];
                        const uint8_t qhb = o[2336 + 512 * h + (i / 4) * 64 + 4 * lane + i % 4];
                        const int q = (kk < 2 ? qlb & 0xF : qlb >> 4) | ((qhb >> (2 * kk)) & 3) << 4;
                        w[i] = (q - 32) * (int8_t)o[32 + 16 * (8 * h + i / 16 + 2 * kk) + lane];
                    } else if (type == GGML_Q4_K || type == GGML_Q5_K) {
                        const int j = (int)(b % 8), bit = 4 * lane + i % 4;
                        const uint8_t q = o[256 + 512 * (j / 2) + (i / 4) * 64 + 4 * lane + i % 4];
                        w[i] = j % 2 ? q >> 4 : q & 0xF;
                        if (type == GGML_Q5_K)
                            w[i] |= ((o[2304 + 64 * j + 8 * (i / 4) + bit / 8] >> (bit % 8)) & 1) << 4;
                    } else if (type == GGML_Q8_0) {
                        w[i] = o[32 + (i / 4) * 64 + 4 * lane + i % 4] - 128;
                    } else {
                        const uint8_t q = o[32 + ((i % 16) / 4) * 64 + 4 * lane + i % 4];
                        int v = i < 16 ? q & 0xF : q >> 4;
                        if (type == GGML_Q4_0) {
                            v -= 8;
                        } else {
                            const int bit = 4 * lane + i % 4;
                            v = (v | ((o[32 + 256 + (i / 4) * 8 + bit / 8] >> (bit % 8)) & 1) << 4) - 16;
                        }
                        w[i] = v;
                    }
                }
                const uint8_t *N = a + pl_q8a_groups_bytes(n) + b * PL_Q8A_NAT_BYTES;
                const int l = (int)(b % 16);
                int32_t S = 0;
                for (int i = 0; i < 32; i++) S += w[i] * (int8_t)N[i];
                float dx, ax;
                memcpy(&dx, N + 32, 4);
                memcpy(&ax, N + 36, 4);
                acc[l] = fmaf((float)S, dw * dx, acc[l]);
                if (type == GGML_Q4_K || type == GGML_Q5_K) acc[l] = fmaf(mw, ax, acc[l]);
            }
            for (int h = 8; h >= 1; h /= 2)
                for (int l = 0; l < h; l++) acc[l] += acc[l + h];
            y[t * ys + r] = acc[0];
        }
    }
}

/* ---- attention ---------------------------------------------------------------- */

/* Canonical score of one key (also the AVX-512 kernel's, lane by lane):
 * two chains over the even and the odd dimensions, each starting at +0 and
 * updated with one fma per dimension in increasing d, then (even + odd) *
 * scale. k walks one key's dims PL_KV_BLOCK floats apart. */
static float attn_score_ref(const float *restrict q, const float *restrict k, int64_t hd, float scale) {
    float e = 0.0f, o = 0.0f;
    int64_t d = 0;
    for (; d + 2 <= hd; d += 2) {
        e = fmaf(q[d], k[d * PL_KV_BLOCK], e);
        o = fmaf(q[d + 1], k[(d + 1) * PL_KV_BLOCK], o);
    }
    if (d < hd) e = fmaf(q[d], k[d * PL_KV_BLOCK], e);
    return (e + o) * scale;
}

/* Order: scores as attn_score_ref, the max, exponentials with expf and
 * their sum in double in key order; the values accumulated key by key in
 * float (o += e_j * v), then o *= 1/sum. */
void pl_attn_generic(const float *q, int64_t q_stride, int n_q, const float *K, const float *V, int64_t v_stride,
                     int32_t a0, int32_t a1, int32_t b0, int32_t b1, int64_t hd, float scale, float *out,
                     int64_t out_stride, float *scores) {
    const int32_t na = a1 > a0 ? a1 - a0 : 0, nb = b1 > b0 ? b1 - b0 : 0, n_keys = na + nb;
    for (int h = 0; h < n_q; h++) {
        const float *qh = q + h * q_stride;
        float *sc = scores + (int64_t)h * n_keys;
        float mx = -INFINITY;
        for (int32_t j = 0; j < n_keys; j++) {
            const int64_t slot = j < na ? (int64_t)a0 + j : (int64_t)b0 + (j - na);
            sc[j] = attn_score_ref(qh, K + pl_k_index(slot, 0, hd), hd, scale);
            if (sc[j] > mx) mx = sc[j];
        }
        double sum = 0.0;
        for (int32_t j = 0; j < n_keys; j++) {
            sc[j] = expf(sc[j] - mx);
            sum += sc[j];
        }
        const float inv = (float)(1.0 / sum);
        float *o = out + h * out_stride;
        for (int64_t d = 0; d < hd; d++) o[d] = 0.0f;
        for (int32_t j = 0; j < n_keys; j++) {
            const int64_t slot = j < na ? (int64_t)a0 + j : (int64_t)b0 + (j - na);
            const float p = sc[j];
            const float *v = V + slot * v_stride;
            for (int64_t d = 0; d < hd; d++) o[d] += p * v[d];
        }
        for (int64_t d = 0; d < hd; d++) o[d] *= inv;
    }
}

/* ---- fast mode: SiLU with a polynomial exp ------------------------------------ */

/* p * 2^n as VSCALEFPS computes it for an integral n (special cases from
 * its definition: NaNs propagate, 0 * 2^inf and inf * 2^-inf are NaN). */
static float scalef_ref(float p, float n) {
    if (p != p) return p;
    if (n != n) return n;
    if (isinf(n)) {
        if (n > 0) return p == 0.0f ? NAN : copysignf(INFINITY, p);
        return isinf(p) ? NAN : copysignf(0.0f, p);
    }
    const float c = n > 512.0f ? 512.0f : n < -512.0f ? -512.0f : n; /* beyond: inf or 0 either way */
    return ldexpf(p, (int)c);
}

/* exp(x) exactly as exp16 in quant_avx512.c, one lane: clamp below at -87.3
 * (a NaN becomes -87.3, as VMAXPS returns its second operand), n = x*log2(e)
 * rounded to nearest even, r = x - n*ln2 in two FMA steps, a degree-7 Taylor
 * polynomial by Horner FMAs, times 2^n. */
float pl_exp_ref(float x) {
    x = x > -87.3f ? x : -87.3f;
    const float n = nearbyintf(x * 1.44269504088896341f);
    float r = fmaf(-n, 0.693359375f, x);
    r = fmaf(-n, -2.12194440e-4f, r);
    float p = 1.0f / 5040.0f;
    p = fmaf(p, r, 1.0f / 720.0f);
    p = fmaf(p, r, 1.0f / 120.0f);
    p = fmaf(p, r, 1.0f / 24.0f);
    p = fmaf(p, r, 1.0f / 6.0f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    return scalef_ref(p, n);
}

static void rmsnorm_scalar(float *out, const float *x, const float *w, int64_t n, float eps) {
    double acc[16] = {0};
    for (int64_t i = 0; i < n; i++) acc[i % 16] += (double)x[i] * (double)x[i];
    for (int h = 8; h >= 1; h /= 2)
        for (int l = 0; l < h; l++) acc[l] += acc[l + h];
    const float scale = (float)(1.0 / sqrt(acc[0] / (double)n + eps));
    for (int64_t i = 0; i < n; i++) out[i] = (x[i] * scale) * w[i];
}

static void silu_mul_scalar(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + pl_exp_ref(-g[i])) * u[i];
}

static uint64_t stream_sum_scalar(const uint8_t *p, size_t n) {
    uint64_t sum = 0;
    for (size_t i = 0; i + 8 <= n; i += 8) sum += pl_load_u64(p + i);
    return sum;
}

/* ---- kernel tables and CPU detection -------------------------------------- */

#define REF_TABLE                                                                                                      \
    [GGML_F32] = to_float_f32, [GGML_F16] = to_float_f16, [GGML_BF16] = to_float_bf16, [GGML_Q4_0] = to_float_q4_0,    \
    [GGML_Q4_1] = to_float_q4_1, [GGML_Q5_0] = to_float_q5_0, [GGML_Q5_1] = to_float_q5_1,                             \
    [GGML_Q8_0] = to_float_q8_0, [GGML_Q4_K] = to_float_q4_k, [GGML_Q5_K] = to_float_q5_k, [GGML_Q6_K] = to_float_q6_k

static const pl_kernels k_scalar = {
    .isa = "scalar",
    .dot = dot_scalar,
    .to_float = {REF_TABLE},
    .matmul = matmul_scalar,
    .attn = pl_attn_generic,
    .quant_act = quant_act_scalar,
    .matmul_q8 = matmul_q8_scalar,
    .matmul_r16 = matmul_r16_scalar,
    .silu_mul = silu_mul_scalar,
    .rmsnorm = rmsnorm_scalar,
    .stream_sum = stream_sum_scalar,
};

/* SIMD tables: the designated initializers after REF_TABLE override it, so a
 * type without a SIMD kernel (only F32 here) keeps its scalar reference. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init"
static const pl_kernels k_avx2 = {
    .isa = "avx2",
    .dot = pl_dot_avx2,
    .to_float =
        {REF_TABLE, [GGML_F16] = pl_to_float_f16_avx2, [GGML_BF16] = pl_to_float_bf16_avx2,
         [GGML_Q4_0] = pl_to_float_q4_0_avx2, [GGML_Q4_1] = pl_to_float_q4_1_avx2, [GGML_Q5_0] = pl_to_float_q5_0_avx2,
         [GGML_Q5_1] = pl_to_float_q5_1_avx2, [GGML_Q8_0] = pl_to_float_q8_0_avx2, [GGML_Q4_K] = pl_to_float_q4_k_avx2,
         [GGML_Q5_K] = pl_to_float_q5_k_avx2, [GGML_Q6_K] = pl_to_float_q6_k_avx2},
    .matmul = pl_matmul_avx2,
    .attn = pl_attn_generic,
    .quant_act = quant_act_scalar, /* no AVX2 integer kernels: the references */
    .matmul_q8 = matmul_q8_scalar,
    .matmul_r16 = matmul_r16_scalar,
    .silu_mul = silu_mul_scalar,
    .rmsnorm = rmsnorm_scalar,
    .stream_sum = pl_stream_sum_avx2,
};

static const pl_kernels k_avx512 = {
    .isa = "avx512",
    .dot = pl_dot_avx512,
    .to_float = {REF_TABLE, [GGML_F16] = pl_to_float_f16_avx512, [GGML_BF16] = pl_to_float_bf16_avx512,
                 [GGML_Q4_0] = pl_to_float_q4_0_avx512, [GGML_Q4_1] = pl_to_float_q4_1_avx512,
                 [GGML_Q5_0] = pl_to_float_q5_0_avx512, [GGML_Q5_1] = pl_to_float_q5_1_avx512,
                 [GGML_Q8_0] = pl_to_float_q8_0_avx512, [GGML_Q4_K] = pl_to_float_q4_k_avx512,
                 [GGML_Q5_K] = pl_to_float_q5_k_avx512, [GGML_Q6_K] = pl_to_float_q6_k_avx512},
    .matmul = pl_matmul_avx512,
    .attn = pl_attn_avx512,
    .quant_act = pl_quant_act_avx512,
    .matmul_q8 = pl_matmul_q8_avx512,
    .matmul_r16 = pl_matmul_r16_avx512,
    .silu_mul = pl_silu_mul_avx512,
    .rmsnorm = pl_rmsnorm_avx512,
    .stream_sum = pl_stream_sum_avx512,
};
#pragma GCC diagnostic pop

/* CPU features the SIMD files are compiled for, read with CPUID; the OS
 * must also save the vector state (XCR0 via XGETBV). Cheap enough to
 * query on each (rare) call: pl_kernels_get caches its choice. */
typedef struct cpu_features {
    bool avx2;   /* AVX2 + FMA + F16C, OS saves YMM */
    bool avx512; /* the above + AVX-512 F/BW/VL/DQ/VNNI/BF16, OS saves ZMM */
} cpu_features;

/* Queries CPUID and XCR0. */
static cpu_features detect_cpu(void) {
    cpu_features f = {false, false};
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const bool fma = c >> 12 & 1, osxsave = c >> 27 & 1, avx = c >> 28 & 1, f16c = c >> 29 & 1;
    if (!osxsave || !avx) return f;
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    (void)xhi;
    const bool os_ymm = (xlo & 0x6) == 0x6, os_zmm = (xlo & 0xe6) == 0xe6;
    if (__get_cpuid_max(0, NULL) < 7) return f;
    __cpuid_count(7, 0, a, b, c, d);
    const bool avx2 = b >> 5 & 1, f512 = b >> 16 & 1, dq = b >> 17 & 1, bw = b >> 30 & 1, vl = b >> 31 & 1;
    const bool vnni = c >> 11 & 1;
    const unsigned max_sub = a;
    bool bf16 = false;
    if (max_sub >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        bf16 = a >> 5 & 1;
    }
    f.avx2 = os_ymm && avx2 && fma && f16c;
    f.avx512 = f.avx2 && os_zmm && f512 && dq && bw && vl && vnni && bf16;
#endif
    return f;
}

const pl_kernels *pl_kernels_for(const char *isa) {
    if (!isa) return NULL;
    if (!strcmp(isa, "scalar")) return &k_scalar;
    if (!strcmp(isa, "avx2")) return detect_cpu().avx2 ? &k_avx2 : NULL;
    if (!strcmp(isa, "avx512")) return detect_cpu().avx512 ? &k_avx512 : NULL;
    return NULL;
}

static const pl_kernels *g_best;
static pthread_once_t g_best_once = PTHREAD_ONCE_INIT;

/* Picks the best supported ISA at or below the PL_ISA cap (unset or unknown
 * values: no cap). */
static void pick_best(void) {
    const char *cap = getenv("PL_ISA");
    int level = 2; /* 0 scalar, 1 avx2, 2 avx512 */
    if (cap && !strcmp(cap, "scalar"))
        level = 0;
    else if (cap && !strcmp(cap, "avx2"))
        level = 1;
    if (level >= 2 && detect_cpu().avx512)
        g_best = &k_avx512;
    else if (level >= 1 && detect_cpu().avx2)
        g_best = &k_avx2;
    else
        g_best = &k_scalar;
}

const pl_kernels *pl_kernels_get(void) {
    pthread_once(&g_best_once, pick_best);
    return g_best;
}

/* ---- matmul -------------------------------------------------------------- */

void pl_matmul_rows(const pl_kernels *k, const void *W, uint32_t type, int64_t n_in, int64_t r0, int64_t r1,
                    const float *x, int64_t x_stride, int64_t n_tok, float *y, int64_t y_stride, float *scratch) {
    const size_t rs = pl_row_size(type, n_in);
    pl_to_float_fn to_float = type < GGML_TYPE_COUNT ? k->to_float[type] : NULL;
    if (!to_float || (rs == 0 && n_in > 0)) {
        /* unsupported type or bad row length: a caller bug; make it visible */
        for (int64_t r = r0; r < r1; r++)
            for (int64_t t = 0; t < n_tok; t++) y[t * y_stride + r] = __builtin_nanf("");
        return;
    }
    if (r1 <= r0 || n_tok <= 0) return;
    k->matmul(to_float, W, type, rs, n_in, r0, r1, x, x_stride, n_tok, y, y_stride, scratch);
}

void pl_matmul_rows_q8(const pl_kernels *k, const void *W, uint32_t type, int64_t n_in, int64_t r0, int64_t r1,
                       const uint8_t *xq, int64_t n_tok, float *y, int64_t y_stride, uint8_t *scratch) {
    const size_t rs = pl_row_size(type, n_in);
    if (!pl_q8_supported(type) || n_in % PL_QK != 0 || (rs == 0 && n_in > 0)) {
        for (int64_t r = r0; r < r1; r++)
            for (int64_t t = 0; t < n_tok; t++) y[t * y_stride + r] = __builtin_nanf("");
        return;
    }
    if (r1 <= r0 || n_tok <= 0) return;
    k->matmul_q8(W, type, rs, n_in, r0, r1, xq, n_tok, y, y_stride, scratch);
}
