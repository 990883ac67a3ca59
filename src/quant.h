/* quant.h — ggml weight formats and the kernel table.
 *
 * Weights stay in their GGUF (ggml) block layout inside the read-only
 * mapping. For every supported type the table gives the block geometry, a
 * scalar reference dequantizer (row of blocks -> float), and the SIMD
 * dequantizer picked at startup from CPUID. Dot products run in float32 on
 * dequantized rows, so activations are never quantized (this keeps us close
 * to an exact forward pass). pl_matmul_rows fixes one accumulation order that
 * every ISA's matmul reproduces bit for bit (see there).
 *
 * Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K.
 *
 * Fast mode (opt-in, see pl_matmul_rows_q8): activations are quantized once
 * per matmul input to int8 per 32-value block and the quantized types with
 * an integer kernel (pl_q8_supported) multiply them with integer dot
 * products (AVX-512 VNNI), like llama.cpp; again one fixed order on every
 * ISA. */
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
    const char *name;            /* "Q4_K", ... */
    uint32_t blck_size;          /* values per block */
    uint32_t type_size;          /* bytes per block */
    pl_to_float_fn to_float_ref; /* scalar reference */
} pl_type_traits;

/* Traits of a supported type, or NULL (the caller reports it by name). */
const pl_type_traits *pl_type_traits_get(uint32_t type);

/* Per-ISA matmul body behind pl_matmul_rows (arguments already checked):
 * rows r0..r1 of W (row_bytes apart, n_in values of `type`) times n_tok
 * activation vectors, in the canonical order documented at pl_matmul_rows. */
typedef void (*pl_matmul_fn)(pl_to_float_fn to_float, const void *W, uint32_t type, size_t row_bytes, int64_t n_in,
                             int64_t r0, int64_t r1, const float *x, int64_t x_stride, int64_t n_tok, float *y,
                             int64_t y_stride, float *scratch);

/* Keys per block of the K cache layout. One key/value head's K cache is
 * slot-blocked: [n_blocks][hd][PL_KV_BLOCK] floats, so dimension d of the
 * PL_KV_BLOCK consecutive slots of a block is contiguous (64 bytes) and a
 * SIMD lane holds one key. Element (slot, d) sits at pl_k_index(slot, d, hd). */
#define PL_KV_BLOCK 16
static inline int64_t pl_k_index(int64_t slot, int64_t d, int64_t hd) {
    return slot / PL_KV_BLOCK * PL_KV_BLOCK * hd + d * PL_KV_BLOCK + slot % PL_KV_BLOCK;
}

/* Attention of n_q query heads that share one key/value head (GQA group).
 * The keys are the cache slots [a0, a1) followed by [b0, b1) (either range
 * may be empty); n_keys = (a1-a0) + (b1-b0) >= 1. K is the head's slot-
 * blocked K cache (see PL_KV_BLOCK), V its row-major values (slot s at
 * V + s*v_stride). For each query h (q + h*q_stride, hd values):
 * s_j = dot(q_h, K[key j]) * scale, p = softmax(s) (max subtracted, the sum
 * of exponentials taken in double), out + h*out_stride = sum_j p_j V[key j].
 * scores holds n_q*n_keys floats.
 *
 * Determinism: a key's score is computed by one fixed sequence of
 * operations on its own data (independent of its slot, its lane within a
 * block, or which range it came in), and every reduction over keys (the max,
 * the double sum of exponentials, the value accumulation) runs over the key
 * list positions 0..n_keys-1 in a fixed order per ISA. So the result depends
 * only on the sequence of keys, not on how it is split into the two ranges
 * or on where the slots fall in blocks: ([0,P), [P,n)) gives the same bits
 * as ([0,n), empty). Allocates nothing. */
typedef void (*pl_attn_fn)(const float *q, int64_t q_stride, int n_q, const float *K, const float *V, int64_t v_stride,
                           int32_t a0, int32_t a1, int32_t b0, int32_t b1, int64_t hd, float scale, float *out,
                           int64_t out_stride, float *scores);

/* Portable attention (the scalar table's, and the fallback of SIMD ones). */
void pl_attn_generic(const float *q, int64_t q_stride, int n_q, const float *K, const float *V, int64_t v_stride,
                     int32_t a0, int32_t a1, int32_t b0, int32_t b1, int64_t hd, float scale, float *out,
                     int64_t out_stride, float *scores);

struct pl_kernels;

/* ---- fast mode: int8 activations and integer dot products ----------------
 *
 * Activation layout ("q8a"), per token of n_in values (n_in a multiple of
 * 32; nb = n_in/32 blocks of 32, grouped 16 blocks = 512 values a group,
 * ng = ceil(nb/16) groups, PL_Q8A_GROUP_BYTES each, the last zero-padded):
 * a group holds, for lane l in [0,16) (block b = 16g + l):
 *   bytes [0, 512): the quants transposed, byte s*64 + 4l + k = q[b][4s + k]
 *                   (s < 8, k < 4), so one 64-byte load gives 4 quants of
 *                   each of 16 blocks (a VNNI lane per block);
 *   float d[16]   at 512: the block scale d_b = amax_b / 127;
 *   float ax[16]  at 576: d_b * (float)sum_b (for min / offset terms);
 *   int32 sum[16] at 640: sum_b of the block's 32 quants;
 *   int32 sumh[16] at 704: sum of its first 16 quants (Q6_K halves);
 *   int32 off[16] at 768: -128 * sum_b (the offset term of unsigned codes).
 * After the groups (at pl_q8a_groups_bytes), the same blocks in natural
 * order for the r16 kernels, PL_Q8A_NAT_BYTES (one cache line) per block:
 *   int8 q[32] at 0; float d at 32; float ax at 36; int32 off at 40;
 *   int32 -32 * sumh at 44; int32 -32 * (sum - sumh) at 48; zero to 64.
 * Quantization (the scalar reference defines it; every ISA reproduces the
 * bytes): amax = max |x|, d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0,
 * q = (int)nearbyintf(x * id) (round to nearest even); padding lanes are 0. */
#define PL_Q8A_GROUP_BYTES 832
#define PL_Q8A_NAT_BYTES 64
/* Bytes of the transposed groups of one token. */
static inline int64_t pl_q8a_groups_bytes(int64_t n_in) { return (n_in / 32 + 15) / 16 * PL_Q8A_GROUP_BYTES; }
/* Bytes per token of the q8a layout for rows of n_in values. */
static inline int64_t pl_q8a_stride(int64_t n_in) { return pl_q8a_groups_bytes(n_in) + n_in / 32 * PL_Q8A_NAT_BYTES; }
/* Quantizes n_tok rows of n_in floats (x + t*xs) to q8a at dst + t*stride
 * (stride = pl_q8a_stride(n_in)), the parts named by `parts`; n_in must be a
 * multiple of 32. */
typedef void (*pl_quant_act_fn)(const float *x, int64_t xs, int64_t n_in, int64_t n_tok, uint8_t *dst, int parts);
/* parts of the q8a layout to write (the others are left as they are): the
 * transposed groups (per-call kernels) and/or the natural blocks (r16). */
#define PL_Q8A_GROUPS 1
#define PL_Q8A_NATURAL 2
/* Integer matmul body behind pl_matmul_rows_q8 (arguments already checked). */
typedef void (*pl_matmul_q8_fn)(const void *W, uint32_t type, size_t rs, int64_t n, int64_t r0, int64_t r1,
                                const uint8_t *xq, int64_t n_tok, float *y, int64_t ys, uint8_t *scratch);
/* Rows the integer matmul repacks at once, and the per-thread scratch bytes
 * it needs for rows of n_in values (64-byte aligned inside, so 64 of slack). */
#define PL_Q8_ROWS 4
#define PL_Q8_SCRATCH_BYTES(n_in) ((int64_t)PL_Q8_ROWS * pl_q8a_groups_bytes(n_in) + 64)

/* True when type has an integer kernel (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K,
 * Q5_K, Q6_K); other types keep the float path in fast mode. */
bool pl_q8_supported(uint32_t type);

/* y[t*y_stride + r] for r in [r0, r1), t < n_tok: W row r (n_in values of a
 * pl_q8_supported type) times token t of the q8a activations xq (token t at
 * xq + t*pl_q8a_stride(n_in)). scratch holds PL_Q8_SCRATCH_BYTES(n_in).
 *
 * Canonical order (every ISA, bit for bit, whatever n_tok, the row range or
 * the thread count): per block b the exact integer S_b = sum_i w_i * a_i
 * over its 32 values (w_i the integer weight quant with its offset removed:
 * nibble-8, q5-16, q8, Q6_K q-32 times the 16-value scale, Q4_K/Q5_K
 * nibble/q5 with no min); with dw_b the weight scale (Q4_K/Q5_K:
 * d * (float)sc_j; Q6_K: d; legacy: d) and lane l = b % 16, 16 float lanes
 * from +0 take, in block order,
 *   acc[l] = fmaf((float)S_b, dw_b * d_b, acc[l])
 * and then the min term: Q4_K/Q5_K acc[l] = fmaf(-(dmin * (float)m_j), ax_b,
 * acc[l]); Q4_1/Q5_1 acc[l] = fmaf(m, ax_b, acc[l]); then the halving tree
 * of pl_matmul_rows (l += l+8, +4, +2, then [0] + [1]). Allocates nothing. */
void pl_matmul_rows_q8(const struct pl_kernels *k, const void *W, uint32_t type, int64_t n_in, int64_t r0, int64_t r1,
                       const uint8_t *xq, int64_t n_tok, float *y, int64_t y_stride, uint8_t *scratch);

/* ---- fast mode: row-interleaved weights ("r16") -----------------------------
 * A Q8_0, Q4_0, Q5_0, Q4_K, Q5_K or Q6_K matrix whose rows come in whole groups of 16 can be
 * repacked once (pl_model_prepare_fast) so that one 64-byte vector holds four
 * codes of each of 16 rows: the integer kernel keeps rows in SIMD lanes, reads
 * the weights as they lie (no per-call repack, no padding of rows shorter
 * than 512 values) and reproduces pl_matmul_rows_q8 bit for bit. The packed
 * matrix has exactly the bytes of the original. Groups of 16 rows follow one
 * another; inside a group one entry per block b, residue-major (blocks 0, 16,
 * 32, ..., then 1, 17, ..., the order of the canonical lane sums). An entry:
 *   all types: uint16 d[16], the f16 block scales of rows 0..15;
 *   Q8_0 (544 bytes): 8 vectors s of 64 bytes, byte 4r+k = q[r][4s+k] + 128;
 *   Q4_0 (288 bytes): 4 vectors p, byte 4r+k = qs[r][4p+k] (its low nibble is
 *                     value 4p+k, its high nibble value 16+4p+k);
 *   Q5_0 (352 bytes): as Q4_0, then uint64 hm[8]: bit 4r+k of hm[s] is bit
 *                     4s+k of qh[r] (the fifth bit of value 4s+k).
 * The K-quants keep one entry per super-block (8 blocks), super-blocks in
 * order: Q4_K 2304 bytes (f16 d[16], dmin[16], scale byte k of row r at
 * 64 + 16k + r, the qs of sub-block pair i as 8 vectors at 256 + 512i);
 * Q5_K 2816 bytes (the Q4_K entry, then uint64 hm at 2304 + 64j + 8s: bit
 * 4r+c is the fifth bit of value 4s+c of sub-block j of row r);
 * Q6_K 3360 bytes (f16 d[16], scale k of row r at 32 + 16k + r, ql in four
 * 512-byte regions at 288, qh in two at 2336; see r16_pack_q4_k / _q5_k / _q6_k).
 * The activations the r16 kernels read are the natural-order part of q8a. */
bool pl_r16_supported(uint32_t type, int64_t n_in, int64_t n_rows);
/* Packs n_rows rows of n_in values (pl_r16_supported) into out, which holds
 * n_rows * pl_row_size(type, n_in) bytes. */
void pl_r16_pack(uint32_t type, const void *W, int64_t n_in, int64_t n_rows, uint8_t *out);
/* y[t*ys + r] for r in [r0, r1) (multiples of 16), t < n_tok: packed matrix P
 * (rows of n_in values) times the q8a activations xq, exactly as
 * pl_matmul_rows_q8 on the unpacked rows. Allocates nothing. */
typedef void (*pl_matmul_r16_fn)(const uint8_t *P, uint32_t type, int64_t n_in, int64_t r0, int64_t r1,
                                 const uint8_t *xq, int64_t n_tok, float *y, int64_t ys);

/* Fast mode's SiLU gate: g[i] = g[i] / (1 + exp(-g[i])) * u[i], with exp the
 * 16-lane polynomial of the attention kernel (pl_exp_ref, relative error
 * below 2e-7) instead of libm's expf; every ISA gives the same bits. */
typedef void (*pl_silu_fn)(float *g, const float *u, int64_t n);
/* The scalar definition of that exp (see quant.c). */
float pl_exp_ref(float x);
/* Fast mode's RMS norm: out[i] = (x[i] * scale) * w[i], scale = (float)(1 /
 * sqrt(ss / n + eps)) with ss summed in double over 16 lanes (value i into
 * lane i % 16, each product exact), lanes reduced by the halving tree. */
typedef void (*pl_rmsnorm_fn)(float *out, const float *x, const float *w, int64_t n, float eps);

/* Bytes ahead of the read position that the streaming kernels (one-token
 * r16 matmuls, stream_sum) prefetch. Those calls read each weight once; the
 * hardware prefetcher alone held two threads at ~33 of the ~48 GB/s this
 * machine class streams (measured at 0, 2, 4, 6, 8, 12 and 16 KiB ahead on
 * 0.5 GB matrices: 4-8 KiB best, 0 worst). A prefetch never faults, so it
 * may run past the end of a buffer. */
#define PL_STREAM_AHEAD 6144
/* Sum of the n / 8 little-endian 64-bit words at p, wrapping; n a multiple
 * of 64, p 64-byte aligned. Reads memory as fast as the matmuls stream
 * weights: the bench's measure of the machine's read bandwidth. */
typedef uint64_t (*pl_stream_sum_fn)(const uint8_t *p, size_t n);

/* The kernels selected for this CPU. */
typedef struct pl_kernels {
    const char *isa;             /* "avx512", "avx2" or "scalar" */
    pl_dot_fn dot;               /* float dot product (attention; its own order) */
    pl_to_float_fn to_float[40]; /* per ggml type; NULL = unsupported */
    pl_matmul_fn matmul;         /* the matmul body (see pl_matmul_rows) */
    pl_attn_fn attn;             /* attention of one GQA group (see pl_attn_fn) */
    pl_quant_act_fn quant_act;   /* fast mode: float rows -> q8a (see pl_q8a_stride) */
    pl_matmul_q8_fn matmul_q8;   /* fast mode: integer matmul body (see pl_matmul_rows_q8) */
    pl_matmul_r16_fn matmul_r16; /* fast mode: the same on r16-packed weights */
    pl_silu_fn silu_mul;         /* fast mode: the FFN gate (see pl_silu_fn) */
    pl_rmsnorm_fn rmsnorm;       /* fast mode: the layers' RMS norms (see pl_rmsnorm_fn) */
    pl_stream_sum_fn stream_sum; /* bench: a full-speed read of memory (see pl_stream_sum_fn) */
} pl_kernels;

/* Kernels for the best ISA this CPU supports (thread-safe, computed once).
 * The environment variable PL_ISA=scalar|avx2|avx512 caps the choice. */
const pl_kernels *pl_kernels_get(void);
/* Kernels for a named ISA if the CPU supports it, else NULL (tests). */
const pl_kernels *pl_kernels_for(const char *isa);

/* Rows of weights the SIMD matmul dequantizes at once (a register tile). */
#define PL_MATMUL_ROWS 6
/* Floats of per-thread scratch pl_matmul_rows needs for rows of n_in values:
 * PL_MATMUL_ROWS dequantized rows, each padded to a multiple of 16 floats,
 * plus 64 floats of slack. The buffer must be 4-byte aligned (64 is best). */
#define PL_MATMUL_SCRATCH(n_in) ((int64_t)PL_MATMUL_ROWS * (((int64_t)(n_in) + 15) / 16 * 16) + 64)

/* y[t*y_stride + r] = dot(W row r, x[t*x_stride ..]) for r in [r0, r1) and
 * t in [0, n_tok). W rows have n_in values of `type`, row bytes apart.
 * scratch holds PL_MATMUL_SCRATCH(n_in) floats. Allocates nothing.
 *
 * Canonical order (the same on every ISA, so results are bit-identical
 * whatever n_tok, the row range, a row's place in a tile, the thread count,
 * and whether PL_ISA is scalar, avx2 or avx512): each weight value is first
 * dequantized to the float of the type's scalar reference (to_float_ref);
 * then 16 lane partial sums acc[0..16) start at +0 and, for c = 0, 16, 32, ...
 * with c + 16 <= n_in, acc[l] = fma(w[c+l], x[c+l], acc[l]) (one rounding);
 * a tail of n_in % 16 values does the same for lanes l < n_in - c only; the
 * lanes are then reduced as acc[l] += acc[l+8] (l < 8), acc[l] += acc[l+4]
 * (l < 4), acc[l] += acc[l+2] (l < 2), result = acc[0] + acc[1]. */
void pl_matmul_rows(const pl_kernels *k, const void *W, uint32_t type, int64_t n_in, int64_t r0, int64_t r1,
                    const float *x, int64_t x_stride, int64_t n_tok, float *y, int64_t y_stride, float *scratch);

/* Bytes of one row of n values of type (0 when n is not a multiple of the block). */
size_t pl_row_size(uint32_t type, int64_t n);

#endif
