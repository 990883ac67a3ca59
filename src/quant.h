/* quant.h — ggml weight formats and the kernel table.
 *
 * Weights stay in their GGUF (ggml) block layout inside the read-only
 * mapping. For every supported type the table gives the block geometry, a
 * scalar reference dequantizer (row of blocks -> float), and the SIMD
 * dequantizer picked at startup from CPUID. Dot products run in float32 on
 * dequantized rows, so activations are never quantized (this keeps us close
 * to an exact forward pass). The matmul row routine is written once here.
 *
 * Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K. */
#ifndef PL_QUANT_H
#define PL_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* IEEE half and bfloat16 conversions (round-to-nearest-even for f32 -> 16). */
float pl_fp16_to_f32(uint16_t h);
uint16_t pl_f32_to_fp16(float f);
float pl_bf16_to_f32(uint16_t h);
uint16_t pl_f32_to_bf16(float f);

/* Dequantizes n values (n a multiple of the type's block size) from src. */
typedef void (*pl_to_float_fn)(const void *src, float *dst, int64_t n);
/* Sum of a[i]*b[i], i < n, accumulated in float in a fixed order for a given
 * kernel (so results do not depend on threads or batch sizes). */
typedef float (*pl_dot_fn)(const float *a, const float *b, int64_t n);

typedef struct pl_type_traits {
    const char *name;          /* "Q4_K", ... */
    uint32_t blck_size;        /* values per block */
    uint32_t type_size;        /* bytes per block */
    pl_to_float_fn to_float_ref; /* scalar reference */
} pl_type_traits;

/* Traits of a supported type, or NULL (the caller reports it by name). */
const pl_type_traits *pl_type_traits_get(uint32_t type);

/* The kernels selected for this CPU. */
typedef struct pl_kernels {
    const char *isa;                  /* "avx512", "avx2" or "scalar" */
    pl_dot_fn dot;                    /* float dot product */
    pl_to_float_fn to_float[40];      /* per ggml type; NULL = unsupported */
} pl_kernels;

/* Kernels for the best ISA this CPU supports (thread-safe, computed once).
 * The environment variable PL_ISA=scalar|avx2|avx512 caps the choice. */
const pl_kernels *pl_kernels_get(void);
/* Kernels for a named ISA if the CPU supports it, else NULL (tests). */
const pl_kernels *pl_kernels_for(const char *isa);

/* y[t*y_stride + r] = dot(W row r, x[t*x_stride ..]) for r in [r0, r1) and
 * t in [0, n_tok). W rows have n_in values of `type`, row bytes apart.
 * scratch holds n_in floats (the dequantized row). Allocates nothing. */
void pl_matmul_rows(const pl_kernels *k, const void *W, uint32_t type, int64_t n_in, int64_t r0, int64_t r1,
                    const float *x, int64_t x_stride, int64_t n_tok, float *y, int64_t y_stride, float *scratch);

/* Bytes of one row of n values of type (0 when n is not a multiple of the block). */
size_t pl_row_size(uint32_t type, int64_t n);

#endif
