/* session.h — internal session entry points used by the probe layer:
 * evaluating several token sequences as forks of the cached prefix in
 * batched passes, and reading only selected logits. */
#ifndef PL_SESSION_H
#define PL_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "probelogits.h"

/* One forked sequence: n tokens continuing the session's cached prefix;
 * logits are returned for its last n_out tokens (1 <= n_out <= n). */
typedef struct pl_seq {
    const int32_t *ids; /* borrowed */
    size_t n;
    size_t n_out;
} pl_seq;

/* Evaluates every sequence as an independent continuation of the current
 * n_past positions (they attend to the prefix and to themselves only), in
 * batched passes, and writes logits rows, sequence by sequence, to out:
 * n_ids values per row (the logits of vocab_ids) or n_vocab values when
 * vocab_ids is NULL. The cache keeps its n_past; slots after it are
 * scratch. Results are bitwise identical to evaluating each sequence alone
 * after the prefix with pl_session_eval. */
int session_eval_forks(pl_session *s, const pl_seq *seqs, size_t n_seqs, const int32_t *vocab_ids, size_t n_ids,
                       float *out);

const pl_model *session_model(const pl_session *s);
int32_t session_n_ctx(const pl_session *s);

/* Raw access to the KV cache of positions [0, n) for snapshots: per layer,
 * n*kv_dim floats of K then of V. */
size_t session_kv_floats_per_layer(const pl_session *s, int32_t n);
int session_kv_export(const pl_session *s, int32_t n, float *dst);
int session_kv_import(pl_session *s, int32_t n, const float *src);

#endif
