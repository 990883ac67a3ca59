/* quantize.h — reference quantizers: float rows -> ggml blocks.
 *
 * Written for model generation (mkmodel) and tests, not for the token path.
 * The algorithms follow ggml's reference quantizers (round-to-scale for
 * Q8_0 / Q4_0 / Q5_0 / Q4_1 / Q5_1, weighted least-squares scale + min search
 * for Q4_K / Q5_K, iterated scale search for Q6_K) without aiming at bit
 * equality with llama.cpp; every block produced is valid and dequantizes
 * (pl_type_traits_get(type)->to_float_ref) close to the input.
 *
 * Input policy: F32 / F16 / BF16 convert any value (IEEE rounding: a value
 * beyond the F16 range becomes inf, NaN stays NaN). The block types reject a
 * row holding a NaN, an infinity or a magnitude above PL_QUANT_MAX_ABS with
 * PL_ERR_RANGE (their fp16 scales could not represent it); all-zero,
 * constant and outlier blocks are fine. */
#ifndef PL_QUANTIZE_H
#define PL_QUANTIZE_H

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

/* Largest |value| a block-quantized row may hold (keeps every fp16 scale,
 * min and offset finite). */
#define PL_QUANT_MAX_ABS 65000.0f

/* True for the types pl_quantize_row can produce: F32, F16, BF16, Q4_0,
 * Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K. */
bool pl_quantize_supported(uint32_t type);

/* Quantizes n floats (n > 0, a multiple of the type's block size) from src
 * into dst, which holds pl_row_size(type, n) bytes. Deterministic; no
 * allocation; thread-safe. Returns PL_OK, PL_ERR_UNSUPPORTED (type),
 * PL_ERR_ARG (n) or PL_ERR_RANGE (non-finite / too large input; dst is then
 * unspecified) with a message in err. */
int pl_quantize_row(uint32_t type, const float *src, void *dst, int64_t n, pl_err *err);

#endif
