/* probelogits.h — public C API of probelogits: load a GGUF language model,
 * tokenize exactly as llama.cpp does, and run forward passes whose logits a
 * governance layer reads (one pass, no generated text).
 *
 * Conventions: every function that can fail returns an int status (PL_OK = 0,
 * negative = error); a human-readable message is written into the caller's
 * `err` buffer where one is taken, or is retrievable from the handle with
 * pl_*_errmsg(). Handles are opaque; every create/open has a free/close that
 * accepts NULL. Nothing here calls exit() or abort(). */
#ifndef PROBELOGITS_H
#define PROBELOGITS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. */
enum {
    PL_OK = 0,
    PL_ERR_IO = -1,          /* file could not be opened, read or mapped */
    PL_ERR_FORMAT = -2,      /* malformed input (GGUF, text, request) */
    PL_ERR_UNSUPPORTED = -3, /* well-formed but not supported (arch, weight type) */
    PL_ERR_NOMEM = -4,       /* allocation failed */
    PL_ERR_ARG = -5,         /* invalid argument from the caller */
    PL_ERR_RANGE = -6,       /* out of capacity (context full, buffer too small) */
    PL_ERR_STATE = -7,       /* operation not valid in the handle's current state */
    PL_ERR_INTERNAL = -8,    /* a bug: an invariant did not hold */
};

/* Short constant description of a status code. */
const char *pl_status_str(int status);

/* ---- models ------------------------------------------------------------ */

typedef struct pl_model pl_model;

/* Maps a GGUF file read-only, validates it and binds the weights of a
 * supported architecture (llama, qwen2). With vocab_only != 0 only the
 * tokenizer is loaded (vocab-only GGUFs have no tensors). */
int pl_model_open(const char *path, int vocab_only, pl_model **out, char *err, size_t err_cap);
void pl_model_close(pl_model *model);

int32_t pl_model_n_vocab(const pl_model *model);
int32_t pl_model_n_ctx_train(const pl_model *model);
int32_t pl_model_bos(const pl_model *model); /* -1 when the vocab has none */
int32_t pl_model_eos(const pl_model *model); /* -1 when the vocab has none */
/* Chat template text from tokenizer.chat_template, or NULL. */
const char *pl_model_chat_template(const pl_model *model);

/* ---- tokenizer --------------------------------------------------------- */

enum {
    PL_TOK_ADD_SPECIAL = 1,   /* add BOS (and EOS) as the vocab's metadata says */
    PL_TOK_PARSE_SPECIAL = 2, /* turn special-token text (<|im_start|>) into its id */
};

/* Tokenizes text[0..len) (any bytes). Writes at most cap ids; *n_out gets
 * the number of ids the text needs, so a too-small buffer returns
 * PL_ERR_RANGE with *n_out set and the call can be repeated. */
int pl_tokenize(const pl_model *model, const char *text, size_t len, int flags, int32_t *ids, size_t cap,
                size_t *n_out, char *err, size_t err_cap);

/* Bytes of token id as they appear in text (byte-level BPE decoded, SPM
 * '▁' turned into ' ', <0xNN> into the byte). Writes at most cap bytes and
 * returns the full length, or a negative status for an invalid id. Special
 * (control) tokens render as their text. */
int pl_token_to_piece(const pl_model *model, int32_t id, char *buf, size_t cap);

/* Id of the single vocabulary entry that spells exactly text[0..len) as it
 * appears in a prompt (O(1) hash lookup), or -1 when no single entry does:
 * first a special (control / user-defined / unknown) token with that exact
 * text ("<|im_start|>"), else the text in the vocabulary's stored form
 * (byte-level BPE: " Yes" is stored as "ĠYes"; SentencePiece: ' ' is '▁'),
 * else for SentencePiece a single byte's <0xNN> token. */
int32_t pl_text_to_id(const pl_model *model, const char *text, size_t len);

/* ---- sessions: KV cache, forward pass ---------------------------------- */

typedef struct pl_session pl_session;

/* A session owns a KV cache of n_ctx positions and all activation buffers
 * (allocated here, never on the token path) and a pool of n_threads. */
int pl_session_create(pl_model *model, int32_t n_ctx, int n_threads, pl_session **out, char *err, size_t err_cap);
void pl_session_free(pl_session *session);

enum {
    PL_EVAL_LAST = 0,          /* logits for the last token only */
    PL_EVAL_ALL_POSITIONS = 1, /* logits for every token of the batch */
};

/* Appends n tokens to the KV cache at positions n_past..n_past+n-1 in one
 * batched pass (causal). Logits are then readable with pl_session_logits. */
int pl_session_eval(pl_session *session, const int32_t *ids, size_t n, int flags);

/* Logits row i of the last eval (i = 0 for PL_EVAL_LAST; 0..n-1 for
 * PL_EVAL_ALL_POSITIONS), n_vocab floats owned by the session; NULL when i
 * is out of range. */
const float *pl_session_logits(const pl_session *session, size_t i);

/* Number of positions held in the KV cache. */
int32_t pl_session_n_past(const pl_session *session);

/* Forgets positions >= n_past (n_past <= current). */
int pl_session_truncate(pl_session *session, int32_t n_past);

/* Message of the last failed call on this session. */
const char *pl_session_errmsg(const pl_session *session);

#ifdef __cplusplus
}
#endif
#endif
