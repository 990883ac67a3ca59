/* model.h — a loaded model: hyperparameters and borrowed weight views for
 * the llama and qwen2 architectures (internal to the library). */
#ifndef PL_MODEL_H
#define PL_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf.h"
#include "probelogits.h"
#include "tokenizer.h"

/* A weight matrix or vector: a view into the mapping. Rows have ne0 values. */
typedef struct pl_weight {
    const void *data;   /* borrowed from the GGUF mapping, NULL if absent */
    uint32_t type;      /* enum ggml_type */
    int64_t ne0;        /* values per row (input dimension) */
    int64_t ne1;        /* rows (output dimension); 1 for vectors */
    size_t row_bytes;   /* bytes per row */
    const uint8_t *r16; /* fast mode: the rows repacked (pl_r16_pack, ne1 * row_bytes), or NULL; owned by the model */
} pl_weight;

typedef struct pl_layer {
    pl_weight attn_norm;            /* [n_embd] F32 */
    pl_weight wq, wk, wv, wo;       /* [n_embd -> n_head*head_dim], [.. -> kv_dim] x2, [n_head*head_dim -> n_embd] */
    pl_weight bq, bk, bv;           /* qwen2 biases (F32), data NULL for llama */
    pl_weight ffn_norm;             /* [n_embd] F32 */
    pl_weight w_gate, w_up, w_down; /* [n_embd -> n_ff] x2, [n_ff -> n_embd] */
} pl_layer;

typedef enum { PL_ARCH_LLAMA, PL_ARCH_QWEN2 } pl_arch;

typedef struct pl_hparams {
    pl_arch arch;
    int32_t n_vocab;     /* rows of token_embd = vocabulary size */
    int32_t n_ctx_train; /* context length the model was trained with */
    int32_t n_embd;      /* residual width */
    int32_t n_layer;
    int32_t n_head;    /* query heads */
    int32_t n_head_kv; /* key/value heads (GQA when < n_head) */
    int32_t head_dim;  /* values per head (key_length == value_length) */
    int32_t n_ff;      /* feed-forward width */
    int32_t n_rot;     /* rotated dims per head (rope.dimension_count) */
    float rope_base;   /* rope.freq_base */
    float rope_scale;  /* position multiplier (1 / linear scaling factor) */
    float rms_eps;
    bool rope_neox; /* true: rotate halves (qwen2); false: adjacent pairs (llama) */
} pl_hparams;

struct pl_model {
    gguf_file *gguf; /* owned: the mapping every weight borrows from */
    pl_vocab *vocab; /* owned */
    pl_hparams hp;
    bool vocab_only;
    pl_weight tok_embd;    /* [n_embd, n_vocab] */
    pl_weight output_norm; /* [n_embd] F32 */
    pl_weight output;      /* [n_embd, n_vocab]; = tok_embd when tied */
    pl_weight rope_freqs;  /* [n_rot/2] F32 frequency divisors, data NULL if absent */
    pl_layer *layers;      /* n_layer entries, owned */
    char arch_name[32];    /* general.architecture */
    char *chat_template;   /* NUL-terminated copy or NULL, owned */
    uint8_t *r16_mem;      /* owned: every layer weight's r16 copy, one 64-byte aligned block; NULL until prepared */
    bool fast_prepared;    /* pl_model_prepare_fast has run (under a lock in model.c) */
};

/* Repacks once (thread-safe) every layer matrix and the output matrix the fast-mode r16 kernel takes
 * (pl_r16_supported) and drops the original pages of the file mapping from
 * memory (they are read back from the file if the exact path needs them), so
 * fast mode keeps one copy of the weights. PL_ERR_NOMEM leaves the model
 * unchanged: fast mode then works on the original rows, at the same bits. */
int pl_model_prepare_fast(pl_model *m);

#endif
