/* quant_isa.h — private to quant.c, quant_avx2.c and quant_avx512.c: the
 * ggml block layouts (byte-exact, packed so blocks may sit at any address in
 * the mapping) and the per-ISA kernels that quant.c puts in its tables.
 *
 * Every SIMD dequantizer here produces exactly the floats of the scalar
 * reference in quant.c (same operations in the same order, no FMA
 * contraction); every dot is a fixed-order float sum for its ISA. */
#ifndef PL_QUANT_ISA_H
#define PL_QUANT_ISA_H

#include <stddef.h>
#include <stdint.h>

#include "quant.h"

/* Values per block of the legacy (32) and K-quant (256) formats. */
#define PL_QK 32
#define PL_QK_K 256
/* Bytes of packed 6-bit scales and mins in Q4_K / Q5_K. */
#define PL_K_SCALE_SIZE 12

/* Blocks: d / m / dmin are IEEE half scales; qs hold 4-bit (two per byte:
 * low nibble = element j, high nibble = element j + 16 or + 32) or 8-bit
 * quants; qh holds fifth (Q5_x) or fifth+sixth (Q6_K) bits. */
typedef struct __attribute__((packed)) pl_block_q4_0 {
    uint16_t d;            /* fp16 scale */
    uint8_t qs[PL_QK / 2]; /* nibbles: element j low, j+16 high; value (q-8)*d */
} pl_block_q4_0;

typedef struct __attribute__((packed)) pl_block_q4_1 {
    uint16_t d;            /* fp16 scale */
    uint16_t m;            /* fp16 offset (min) */
    uint8_t qs[PL_QK / 2]; /* nibbles as Q4_0; value q*d + m */
} pl_block_q4_1;

typedef struct __attribute__((packed)) pl_block_q5_0 {
    uint16_t d;            /* fp16 scale */
    uint8_t qh[4];         /* little-endian u32: bit j = fifth bit of element j */
    uint8_t qs[PL_QK / 2]; /* low four bits as Q4_0; value (q-16)*d */
} pl_block_q5_0;

typedef struct __attribute__((packed)) pl_block_q5_1 {
    uint16_t d;            /* fp16 scale */
    uint16_t m;            /* fp16 offset (min) */
    uint8_t qh[4];         /* as Q5_0 */
    uint8_t qs[PL_QK / 2]; /* as Q5_0; value q*d + m */
} pl_block_q5_1;

typedef struct __attribute__((packed)) pl_block_q8_0 {
    uint16_t d;       /* fp16 scale */
    int8_t qs[PL_QK]; /* value q*d */
} pl_block_q8_0;

typedef struct __attribute__((packed)) pl_block_q4_k {
    uint16_t d;                      /* fp16 super-scale of the 6-bit scales */
    uint16_t dmin;                   /* fp16 super-scale of the 6-bit mins */
    uint8_t scales[PL_K_SCALE_SIZE]; /* 8 scales + 8 mins, 6 bits each (see pl_k_scale_min) */
    uint8_t qs[PL_QK_K / 2];         /* per 64 values: 32 bytes, low nibbles first 32, high next 32 */
} pl_block_q4_k;

typedef struct __attribute__((packed)) pl_block_q5_k {
    uint16_t d;                      /* as Q4_K */
    uint16_t dmin;                   /* as Q4_K */
    uint8_t scales[PL_K_SCALE_SIZE]; /* as Q4_K */
    uint8_t qh[PL_QK_K / 8];         /* bit 2k / 2k+1 of qh[l]: fifth bit of value 64k+l / 64k+32+l */
    uint8_t qs[PL_QK_K / 2];         /* low four bits, as Q4_K */
} pl_block_q5_k;

typedef struct __attribute__((packed)) pl_block_q6_k {
    uint8_t ql[PL_QK_K / 2];     /* low four bits; per 128 values 64 bytes */
    uint8_t qh[PL_QK_K / 4];     /* high two bits; per 128 values 32 bytes, 4 values per byte */
    int8_t scales[PL_QK_K / 16]; /* one signed 8-bit scale per 16 values */
    uint16_t d;                  /* fp16 super-scale */
} pl_block_q6_k;

/* Scale (*sc) and min (*m) j in [0, 8) of a Q4_K/Q5_K block, unpacked from
 * the 12-byte 6-bit packing: j < 4 in the low six bits of bytes j and j+4;
 * j >= 4 low nibbles / high nibbles of byte j+4 with the top two bits of
 * bytes j-4 / j as bits 4..5. */
static inline void pl_k_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* ---- AVX2 + FMA + F16C (quant_avx2.c) ---------------------------------- */
/* Matmul body in the canonical order of pl_matmul_rows (16 lanes as 2 x 8). */
void pl_matmul_avx2(pl_to_float_fn to_float, const void *W, uint32_t type, size_t rs, int64_t n, int64_t r0, int64_t r1,
                    const float *x, int64_t xs, int64_t nt, float *y, int64_t ys, float *scratch);
float pl_dot_avx2(const float *a, const float *b, int64_t n);
void pl_to_float_f16_avx2(const void *src, float *dst, int64_t n);
void pl_to_float_bf16_avx2(const void *src, float *dst, int64_t n);
void pl_to_float_q4_0_avx2(const void *src, float *dst, int64_t n);
void pl_to_float_q4_1_avx2(const void *src, float *dst, int64_t n);
void pl_to_float_q5_0_avx2(const void *src, float *dst, int64_t n);
void pl_to_float_q5_1_avx2(const void *src, float *dst, int64_t n);
void pl_to_float_q8_0_avx2(const void *src, float *dst, int64_t n);
void pl_to_float_q4_k_avx2(const void *src, float *dst, int64_t n);
void pl_to_float_q5_k_avx2(const void *src, float *dst, int64_t n);
void pl_to_float_q6_k_avx2(const void *src, float *dst, int64_t n);

/* ---- AVX-512 F/BW/VL/DQ (+VNNI/BF16 reserved) (quant_avx512.c) --------- */
/* Matmul body in the canonical order of pl_matmul_rows. */
void pl_matmul_avx512(pl_to_float_fn to_float, const void *W, uint32_t type, size_t rs, int64_t n, int64_t r0,
                      int64_t r1, const float *x, int64_t xs, int64_t nt, float *y, int64_t ys, float *scratch);
float pl_dot_avx512(const float *a, const float *b, int64_t n);
void pl_attn_avx512(const float *q, int64_t q_stride, int n_q, const float *K, const float *V, int64_t v_stride,
                    int32_t a0, int32_t a1, int32_t b0, int32_t b1, int64_t hd, float scale, float *out,
                    int64_t out_stride, float *scores);
void pl_to_float_f16_avx512(const void *src, float *dst, int64_t n);
void pl_to_float_bf16_avx512(const void *src, float *dst, int64_t n);
void pl_to_float_q4_0_avx512(const void *src, float *dst, int64_t n);
void pl_to_float_q4_1_avx512(const void *src, float *dst, int64_t n);
void pl_to_float_q5_0_avx512(const void *src, float *dst, int64_t n);
void pl_to_float_q5_1_avx512(const void *src, float *dst, int64_t n);
void pl_to_float_q8_0_avx512(const void *src, float *dst, int64_t n);
void pl_to_float_q4_k_avx512(const void *src, float *dst, int64_t n);
void pl_to_float_q5_k_avx512(const void *src, float *dst, int64_t n);
void pl_to_float_q6_k_avx512(const void *src, float *dst, int64_t n);
/* Fast mode: the q8a quantizer and integer matmul (VNNI), bit for bit the
 * references quant_act_scalar / matmul_q8_scalar in quant.c. */
void pl_quant_act_avx512(const float *x, int64_t xs, int64_t n, int64_t nt, uint8_t *dst, int parts);
void pl_matmul_q8_avx512(const void *W, uint32_t type, size_t rs, int64_t n, int64_t r0, int64_t r1, const uint8_t *xq,
                         int64_t nt, float *y, int64_t ys, uint8_t *scratch);
/* Fast mode's SiLU gate, bit for bit silu_mul_scalar. */
void pl_silu_mul_avx512(float *g, const float *u, int64_t n);
/* Fast mode's RMS norm, bit for bit rmsnorm_scalar. */
void pl_rmsnorm_avx512(float *out, const float *x, const float *w, int64_t n, float eps);
/* The bench's memory read, the same sum as stream_sum_scalar. */
uint64_t pl_stream_sum_avx512(const uint8_t *p, size_t n);
uint64_t pl_stream_sum_avx2(const uint8_t *p, size_t n);
/* The same on r16-packed weights (pl_r16_pack), bit for bit matmul_q8_scalar. */
void pl_matmul_r16_avx512(const uint8_t *P, uint32_t type, int64_t n, int64_t r0, int64_t r1, const uint8_t *xq,
                          int64_t nt, float *y, int64_t ys);

#endif
