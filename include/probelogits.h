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
    PL_TOK_CONTINUATION = 4,  /* the text continues earlier text: SentencePiece adds no
                                 space prefix before its first fragment */
};

/* Tokenizes text[0..len) (any bytes). Writes at most cap ids; *n_out gets
 * the number of ids the text needs, so a too-small buffer returns
 * PL_ERR_RANGE with *n_out set and the call can be repeated. */
int pl_tokenize(const pl_model *model, const char *text, size_t len, int flags, int32_t *ids, size_t cap, size_t *n_out,
                char *err, size_t err_cap);

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

/* ---- KV cache as process state ----------------------------------------- */

typedef struct pl_kv_state pl_kv_state;

/* Copies the session's KV positions [0, n_past) into a new checkpoint. */
int pl_session_checkpoint(pl_session *session, pl_kv_state **out);
/* Makes the session hold exactly the checkpoint's positions. When the
 * checkpoint came from this session and those slots were not rewritten
 * since, this is O(n_past) integer compares and no copy; otherwise the KV
 * data are copied back. Any session of the same model may restore it. */
int pl_session_restore(pl_session *session, const pl_kv_state *state);
int32_t pl_kv_state_n_past(const pl_kv_state *state);
void pl_kv_state_free(pl_kv_state *state);
/* A new, independent session (same model, n_ctx, threads) holding a copy of
 * this session's KV positions; the two never see each other's later tokens. */
int pl_session_fork(pl_session *session, pl_session **out, char *err, size_t err_cap);
int pl_session_n_threads(const pl_session *session);

/* Fast mode (off by default): before each matmul with quantized weights
 * (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K) the activations are
 * quantized to int8 per 32-value block and multiplied with integer dot
 * products, like llama.cpp; attention, norms and RoPE stay float, and
 * F32/F16/BF16 weights are unaffected. Results stay bitwise deterministic
 * across threads, batch sizes and cached/uncached prefixes, but move away
 * from the exact forward by about as much as llama.cpp's do. Applies to the
 * following evals (forks inherit it); on = 0 restores the exact mode.
 * The first call on a model repacks its Q8_0/Q4_0/Q5_0/Q4_K/Q6_K matrices
 * (layers and output) into a row-interleaved copy (same size) and drops the
 * mapped originals from memory; PL_ERR_NOMEM if that copy cannot be allocated (fast mode is still
 * on, computing the same bits from the original rows). */
int pl_session_set_fast(pl_session *session, int on);

/* Message of the last failed call on this session. */
const char *pl_session_errmsg(const pl_session *session);

/* ---- numerics ------------------------------------------------------------ */

/* Softmax of n values in double via log-sum-exp; probs sum to 1 within 1e-12.
 * Returns 1 when the row is degenerate (a NaN, a +inf, or no finite value):
 * probs are then uniform. *lse (may be NULL) gets the log-sum-exp, or NaN
 * for a degenerate row. */
int pl_softmax(const double *logits, int n, double *probs, double *lse);

/* Index of the largest of n floats (the first on ties), NaNs skipped; -1
 * when n <= 0 or every value is NaN. Greedy decoding's token choice. */
int32_t pl_argmax(const float *v, int32_t n);

/* ---- probes ---------------------------------------------------------------- */

#define PL_MAX_LABELS 16

typedef struct pl_probe pl_probe;

/* How a probe prompt is built and read. Strings are copied at creation. */
typedef struct pl_probe_params {
    const char *template_name;    /* NULL/"auto" (from the model), none, plain, chatml, llama3, llama2,
                                     mistral, phi3 */
    const char *system;           /* policy text of the system turn (NULL/"" = none); cached prefix */
    const char *const *questions; /* n_questions wordings put after the action (NULL = one default) */
    int n_questions;
    const char *action_prefix; /* before the action in the user turn (NULL = "Action: ") */
    const char *answer_prefix; /* after the opened assistant turn (NULL = "") */
    const char *const *labels; /* n_labels (2..16) verbalizers, the first is the positive one;
                                  NULL = {"Yes", "No"} */
    int n_labels;
    double alpha;                    /* calibration strength (0 = uncalibrated) */
    const char *const *content_free; /* calibration inputs (NULL = the default 7; n_content_free = 0 and a
                                        non-NULL pointer = no calibration) */
    int n_content_free;
    int multi_token; /* score labels of several tokens exactly (sum of log-probabilities) */
} pl_probe_params;

typedef struct pl_probe_result {
    int n_labels;
    int label;                              /* argmax of calibrated_probs */
    int32_t token_ids[PL_MAX_LABELS];       /* verbalizer id of each label (its first token) */
    int n_label_tokens[PL_MAX_LABELS];      /* tokens per label in context (1 unless multi_token) */
    double logits[PL_MAX_LABELS];           /* raw logits (single-token labels) or summed log-probs */
    double probs[PL_MAX_LABELS];            /* restricted softmax of logits, uncalibrated */
    double calibrated_probs[PL_MAX_LABELS]; /* softmax of log(probs) - alpha * bias */
    double bias[PL_MAX_LABELS];             /* mean restricted log-prob of each label on content-free inputs */
    double confidence;                      /* max calibrated prob, in [1/N, 1] */
    double margin;                          /* logits[0] - logits[1] (2 labels) or top-1 minus top-2 */
    double calibrated_margin;               /* margin - alpha*(bias[0]-bias[1]) (2 labels) or calibrated top-2 gap */
    double alpha;
    int degenerate; /* non-finite logits: uniform fallback, decision must fail closed */
    int n_tokens;   /* tokens evaluated for this probe (the suffix) */
    double ms;      /* wall time of this probe (batch: of the batch / n) */
} pl_probe_result;

/* Builds a probe on a session: renders and evaluates the cached prefix,
 * resolves each label's token id in context (the token that follows the
 * rendered prompt), and runs the content-free inputs for calibration. */
int pl_probe_create(pl_session *session, const pl_probe_params *params, pl_probe **out, char *err, size_t err_cap);
void pl_probe_free(pl_probe *probe);

/* One action, one forward pass of its suffix over the restored prefix.
 * question indexes params.questions. pl_probe_yes_no requires 2 labels. */
int pl_probe_classify(pl_probe *probe, int question, const char *action, size_t len, pl_probe_result *out);
int pl_probe_yes_no(pl_probe *probe, int question, const char *action, size_t len, pl_probe_result *out);
/* n actions against the one prefix in batched passes (forked sequences);
 * results are bitwise identical to probing one by one. */
int pl_probe_batch(pl_probe *probe, int question, const char *const *actions, const size_t *lens, size_t n,
                   pl_probe_result *out);

int pl_probe_set_alpha(pl_probe *probe, double alpha);
const char *pl_probe_errmsg(const pl_probe *probe);
const char *pl_probe_template(const pl_probe *probe);
int32_t pl_probe_prefix_tokens(const pl_probe *probe);
/* Renders the full prompt text of an action (prefix + suffix), malloc'ed. */
char *pl_probe_render(const pl_probe *probe, int question, const char *action);

/* Saves the evaluated prefix and the calibration; a probe loaded from it
 * (same model file, same params) starts without evaluating anything. A
 * truncated, corrupted, other-model or other-params file is refused. */
int pl_probe_save(const pl_probe *probe, const char *path, char *err, size_t err_cap);
int pl_probe_load(pl_session *session, const pl_probe_params *params, const char *path, pl_probe **out, char *err,
                  size_t err_cap);

#ifdef __cplusplus
}
#endif
#endif
