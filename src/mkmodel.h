/* mkmodel.h — writes random-weight llama / qwen2 GGUF models of a given shape
 * (benchmarks on a fresh machine, tests), with llama.cpp's per-tensor type
 * choices for the quantization mixtures.
 *
 * Weights are seeded N(0, 0.02), RMSNorm weights 1 + N(0, 0.05), biases
 * N(0, 0.02) (as the fixture models). The tokenizer (every tokenizer.* key)
 * is copied from a vocabulary GGUF; n_vocab is its token count. Generation
 * streams one tensor at a time in row chunks, so memory stays bounded (a few
 * MB per thread) whatever the model size. The file is a byte-for-byte
 * function of the parameters and the seed (not of n_threads). */
#ifndef PL_MKMODEL_H
#define PL_MKMODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

/* Architectures. */
typedef enum pl_mk_arch {
    PL_MK_LLAMA = 0, /* llama: no biases */
    PL_MK_QWEN2 = 1, /* qwen2: Q/K/V biases */
} pl_mk_arch;

/* Weight type mixtures (llama.cpp's file types of the same names). */
typedef enum pl_mk_ftype {
    PL_MK_F16 = 0,
    PL_MK_BF16,
    PL_MK_Q8_0,
    PL_MK_Q4_0,   /* Q4_0; output (and tied token_embd) Q6_K, or Q8_0 when rows are not multiples of 256 */
    PL_MK_Q4_K_M, /* Q4_K; attn_v / ffn_down Q6_K on "more bits" layers; output Q6_K; fallbacks Q5_0/Q8_0 */
    PL_MK_Q5_K_M, /* Q5_K; attn_v / ffn_down Q6_K on "more bits" layers; output Q6_K; fallbacks Q5_1/Q8_0 */
    PL_MK_Q6_K,   /* Q6_K everywhere; fallback Q8_0 */
    PL_MK_FTYPE_COUNT
} pl_mk_ftype;

/* Progress report: called after each tensor chunk is written. */
typedef void (*pl_mkmodel_progress_fn)(void *ud, uint64_t bytes_done, uint64_t bytes_total, uint32_t tensors_done,
                                       uint32_t n_tensors);

typedef struct pl_mkmodel_params {
    const char *out_path;   /* GGUF to create (replaced if it exists; removed on failure) */
    const char *vocab_path; /* GGUF whose tokenizer.* metadata is copied */
    const char *name;       /* general.name; NULL = "random-<arch>" */
    pl_mk_arch arch;
    int32_t n_embd;                  /* hidden size, a multiple of 32 and of n_head */
    int32_t n_layer;                 /* transformer blocks, >= 1 */
    int32_t n_head;                  /* query heads */
    int32_t n_head_kv;               /* key/value heads, divides n_head */
    int32_t n_ff;                    /* feed-forward size, a multiple of 32 */
    int32_t n_ctx_train;             /* <arch>.context_length */
    float rope_theta;                /* <arch>.rope.freq_base */
    float rms_eps;                   /* <arch>.attention.layer_norm_rms_epsilon */
    bool tied;                       /* true: no output.weight (the token embedding is reused) */
    pl_mk_ftype ftype;               /* weight type mixture */
    uint64_t seed;                   /* PRNG seed */
    int n_threads;                   /* generation / quantization threads (<= 0: 1) */
    pl_mkmodel_progress_fn progress; /* optional */
    void *progress_ud;               /* passed to progress */
} pl_mkmodel_params;

/* Fills the shape fields of *p (arch, dimensions, context length, rope
 * theta, eps, tied) for a named preset: "smollm2-135m", "qwen2.5-0.5b",
 * "llama3-8b"; *vocab_file gets the basename of the vocabulary GGUF the
 * preset expects (in the fixtures' vocab/ folder). Other fields are kept.
 * Returns PL_ERR_ARG for an unknown name. */
int pl_mkmodel_preset(const char *name, pl_mkmodel_params *p, const char **vocab_file, pl_err *err);

/* Parses "F16", "BF16", "Q8_0", "Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K"
 * (case-insensitive); returns false for anything else. */
bool pl_mk_ftype_parse(const char *s, pl_mk_ftype *out);
/* Name of a mixture ("Q4_K_M"), "?" when out of range. */
const char *pl_mk_ftype_name(pl_mk_ftype f);

/* ggml type of a 2-D weight under llama.cpp's rules for ftype: `tensor` is
 * the name without "blk.N." ("token_embd.weight", "attn_v.weight",
 * "output.weight", ...), i_layer / n_layer its block (ignored outside
 * blocks), ne0 its row length. */
uint32_t pl_mk_weight_type(pl_mk_ftype ftype, const char *tensor, int i_layer, int n_layer, int64_t ne0, bool tied);

/* Writes the model described by p. Returns PL_OK or a negative status with
 * a message in err (invalid shape, unreadable vocabulary, I/O). */
int pl_mkmodel(const pl_mkmodel_params *p, pl_err *err);

#endif
