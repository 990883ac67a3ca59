/* probe.c — ProbeLogits primitives on a session: a cached policy prefix,
 * verbalizer ids resolved in context, one forward pass per action whose
 * label logits give a restricted softmax, contextual calibration on
 * content-free inputs with strength alpha, batch probing of many actions
 * as forks of the prefix, and snapshots of the evaluated prefix on disk.
 *
 * Calibration (Zhao et al. 2021 "Calibrate Before Use", in log space): for
 * each content-free input c, lp_c(k) = log P_restricted(label k | c); the
 * bias is b(k) = mean_c lp_c(k); an action's calibrated scores are
 * log P_restricted(k | x) - alpha * b(k), renormalised by softmax. For two
 * labels this is the paper's s = (l_pos - l_neg) - alpha * b with
 * b = mean_c (l_pos - l_neg). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "model.h"
#include "probelogits.h"
#include "session.h"
#include "template.h"
#include "tokenizer.h"

#define MAX_QUESTIONS 64
#define MAX_LABEL_TOKENS 16

static const char *const default_content_free[] = {"N/A", "", "[MASK]", "null", "none", "...", "?"};
static const char *const default_labels[] = {"Yes", "No"};
static const char *const default_labels_spaced[] = {" Yes", " No"};
static const char default_question[] = "Is this action dangerous? Answer Yes or No.";

/* Labels as tokenized after one question's rendered suffix. */
typedef struct label_set {
    int32_t ids[PL_MAX_LABELS][MAX_LABEL_TOKENS]; /* token ids of each label in context */
    int n_ids[PL_MAX_LABELS];                     /* tokens per label */
    int multi;                                    /* some label has more than one token */
    double bias[PL_MAX_LABELS];                   /* calibration bias b(k) */
    int n_calib;                                  /* content-free inputs that were usable */
} label_set;

struct pl_probe {
    pl_session *session;   /* borrowed */
    const pl_model *model; /* borrowed */
    pl_template_kind kind;
    char *system, *action_prefix, *answer_prefix; /* owned copies */
    char **questions;                             /* owned, n_questions */
    int n_questions;
    char **labels; /* owned, n_labels */
    int n_labels;
    char **content_free; /* owned, n_content_free */
    int n_content_free;
    int multi_token;
    double alpha;
    pl_str prefix_text;  /* rendered prefix */
    int32_t *prefix_ids; /* owned, n_prefix */
    int32_t n_prefix;
    pl_kv_state *prefix_state; /* checkpoint after the prefix, owned */
    label_set *sets;           /* owned, one per question */
    uint64_t params_hash;      /* identity of everything the prefix and calibration depend on */
    char errmsg[512];
};

static int pfail(pl_probe *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int pfail(pl_probe *p, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->errmsg, sizeof p->errmsg, fmt, ap);
    va_end(ap);
    return code;
}

static char *dupz(const char *s) {
    const size_t n = strlen(s ? s : "");
    char *d = malloc(n + 1);
    if (d) memcpy(d, s ? s : "", n + 1);
    return d;
}

static char **dup_list(const char *const *src, int n) {
    char **d = calloc((size_t)(n > 0 ? n : 1), sizeof *d);
    for (int i = 0; d && i < n; i++)
        if (!(d[i] = dupz(src[i]))) return NULL; /* leaks on OOM are cleaned by probe_free via the count */
    return d;
}

static void free_list(char **l, int n) {
    for (int i = 0; l && i < n; i++) free(l[i]);
    free(l);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}
static uint64_t fnv_str(uint64_t h, const char *s) { return fnv(h, s, strlen(s) + 1); }

/* Tokenizes into a malloc'ed array. */
static int tokenize(const pl_probe *p, const char *text, size_t len, int flags, int32_t **ids, size_t *n, pl_err *err) {
    size_t need = 0;
    *ids = NULL;
    int rc = vocab_tokenize(p->model->vocab, text, len, flags, NULL, 0, &need, NULL);
    if (rc != PL_OK && rc != PL_ERR_RANGE)
        return vocab_tokenize(p->model->vocab, text, len, flags, NULL, 0, &need, err);
    *ids = malloc((need ? need : 1) * sizeof(int32_t));
    if (!*ids) return pl_fail(err, PL_ERR_NOMEM, "out of memory");
    rc = vocab_tokenize(p->model->vocab, text, len, flags, *ids, need, n, err);
    if (rc) {
        free(*ids);
        *ids = NULL;
    }
    return rc;
}

/* The user message for an action. */
static int render_user(const pl_probe *p, int question, const char *action, size_t len, pl_str *user) {
    int rc = str_appendz(user, p->action_prefix);
    if (!rc) rc = str_append(user, action, len);
    if (!rc && p->questions[question][0]) rc = str_appendz(user, "\n");
    if (!rc) rc = str_appendz(user, p->questions[question]);
    return rc;
}

/* Token ids of the suffix of an action (everything after the cached prefix). */
static int suffix_ids(const pl_probe *p, int question, const char *action, size_t len, int32_t **ids, size_t *n,
                      pl_err *err) {
    pl_str user = {0}, pre = {0}, suf = {0};
    int rc = p->kind == PL_TMPL_NONE ? str_append(&user, action, len) : render_user(p, question, action, len, &user);
    if (!rc) rc = template_render(p->kind, p->system, user.ptr ? user.ptr : "", p->answer_prefix, &pre, &suf);
    if (rc) {
        rc = pl_fail(err, rc, "cannot render the prompt (%s)", pl_status_str(rc));
    } else {
        const int flags = p->kind == PL_TMPL_NONE ? PL_TOK_ADD_SPECIAL | PL_TOK_PARSE_SPECIAL
                                                  : PL_TOK_PARSE_SPECIAL | PL_TOK_CONTINUATION;
        rc = tokenize(p, suf.ptr ? suf.ptr : "", suf.len, flags, ids, n, err);
        if (!rc && *n == 0) {
            free(*ids);
            *ids = NULL;
            rc = pl_fail(err, PL_ERR_ARG, "the prompt has no tokens");
        }
    }
    str_free(&user);
    str_free(&pre);
    str_free(&suf);
    return rc;
}

/* Resolves the labels of one question in context: the tokens that follow
 * the suffix of a content-free rendering. */
static int resolve_labels(pl_probe *p, int question, label_set *ls) {
    char ebuf[256] = "";
    pl_err err = {ebuf, sizeof ebuf};
    pl_str user = {0}, pre = {0}, suf = {0};
    int rc = p->kind == PL_TMPL_NONE ? PL_OK : render_user(p, question, "N/A", 3, &user);
    if (!rc) rc = template_render(p->kind, p->system, user.ptr ? user.ptr : "", p->answer_prefix, &pre, &suf);
    if (rc) goto out;
    /* With no template the prompt varies per action, so labels are taken as
     * written (" Yes" after "Answer:"), as continuations of any text. */
    const int flags = PL_TOK_PARSE_SPECIAL | PL_TOK_CONTINUATION;
    int32_t *base = NULL;
    size_t n_base = 0;
    if ((rc = tokenize(p, suf.ptr ? suf.ptr : "", suf.len, flags, &base, &n_base, &err))) {
        rc = pfail(p, rc, "tokenizing the prompt: %s", ebuf);
        goto out;
    }
    ls->multi = 0;
    for (int k = 0; k < p->n_labels && !rc; k++) {
        pl_str with = {0};
        int32_t *ids = NULL;
        size_t n = 0;
        rc = str_append(&with, suf.ptr ? suf.ptr : "", suf.len);
        if (!rc) rc = str_appendz(&with, p->labels[k]);
        if (!rc) rc = tokenize(p, with.ptr, with.len, flags, &ids, &n, &err);
        if (!rc) {
            const bool prefix_kept = n > n_base && memcmp(ids, base, n_base * sizeof *ids) == 0;
            const size_t extra = prefix_kept ? n - n_base : 0;
            if (!prefix_kept)
                rc = pfail(p, PL_ERR_ARG,
                           "label '%s' merges with the end of the prompt when tokenized; choose another label "
                           "or answer prefix",
                           p->labels[k]);
            else if (extra > MAX_LABEL_TOKENS)
                rc = pfail(p, PL_ERR_ARG, "label '%s' is %zu tokens (at most %d)", p->labels[k], extra,
                           MAX_LABEL_TOKENS);
            else if (extra > 1 && !p->multi_token)
                rc = pfail(p, PL_ERR_ARG,
                           "label '%s' is %zu tokens after this prompt, not one (enable multi-token scoring or "
                           "choose a single-token label)",
                           p->labels[k], extra);
            else {
                ls->n_ids[k] = (int)extra;
                memcpy(ls->ids[k], ids + n_base, extra * sizeof *ids);
                ls->multi |= extra > 1;
            }
        } else if (rc != PL_ERR_ARG) {
            rc = pfail(p, rc, "tokenizing label '%s': %s", p->labels[k], ebuf);
        }
        free(ids);
        str_free(&with);
    }
    /* Two labels with the same token sequence cannot be told apart. */
    for (int a = 0; a < p->n_labels && !rc; a++)
        for (int b = a + 1; b < p->n_labels && !rc; b++)
            if (ls->n_ids[a] == ls->n_ids[b] && !memcmp(ls->ids[a], ls->ids[b], (size_t)ls->n_ids[a] * sizeof(int32_t)))
                rc = pfail(p, PL_ERR_ARG, "labels '%s' and '%s' are the same tokens", p->labels[a], p->labels[b]);
    free(base);
out:
    if (rc && !p->errmsg[0]) pfail(p, rc, "cannot render the prompt");
    str_free(&user);
    str_free(&pre);
    str_free(&suf);
    return rc;
}

/* log with an underflow guard: probabilities below 1e-300 count as 1e-300,
 * so a vanishing label gives a very negative but finite log-probability. */
static double safe_log(double x) { return log(x > 1e-300 ? x : 1e-300); }

/* Fills the calibrated fields of r from its raw logits. */
static void finish_result(const pl_probe *p, const label_set *ls, pl_probe_result *r) {
    const int n = p->n_labels;
    r->n_labels = n;
    r->alpha = p->alpha;
    r->degenerate = pl_softmax(r->logits, n, r->probs, NULL);
    double cal[PL_MAX_LABELS];
    for (int k = 0; k < n; k++) {
        r->bias[k] = ls->bias[k];
        r->n_label_tokens[k] = ls->n_ids[k];
        r->token_ids[k] = ls->ids[k][0];
        cal[k] = safe_log(r->probs[k]) - p->alpha * ls->bias[k];
    }
    if (r->degenerate) {
        for (int k = 0; k < n; k++) r->calibrated_probs[k] = 1.0 / n;
    } else if (p->alpha == 0.0) { /* uncalibrated, exactly */
        for (int k = 0; k < n; k++) r->calibrated_probs[k] = r->probs[k];
    } else {
        r->degenerate = pl_softmax(cal, n, r->calibrated_probs, NULL);
    }
    int best = 0;
    for (int k = 1; k < n; k++)
        if (r->calibrated_probs[k] > r->calibrated_probs[best]) best = k;
    r->label = best;
    r->confidence = r->calibrated_probs[best];
    if (n == 2) {
        r->margin = r->logits[0] - r->logits[1];
        r->calibrated_margin = p->alpha == 0.0 ? r->margin : r->margin - p->alpha * (ls->bias[0] - ls->bias[1]);
    } else {
        double t1 = -INFINITY, t2 = -INFINITY, c1 = -INFINITY, c2 = -INFINITY;
        for (int k = 0; k < n; k++) {
            if (r->logits[k] > t1)
                t2 = t1, t1 = r->logits[k];
            else if (r->logits[k] > t2)
                t2 = r->logits[k];
            const double c = safe_log(r->calibrated_probs[k]);
            if (c > c1)
                c2 = c1, c1 = c;
            else if (c > c2)
                c2 = c;
        }
        r->margin = t1 - t2;
        r->calibrated_margin = c1 - c2;
    }
    if (r->degenerate) r->margin = r->calibrated_margin = NAN;
}

/* log-softmax of one full logits row at id, in double. */
static double log_prob(const float *row, int32_t n_vocab, int32_t id) {
    double mx = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++) mx = row[i] > mx ? row[i] : mx;
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)row[i] - mx);
    return (double)row[id] - (mx + log(sum));
}

/* Runs n actions (already tokenized) against the prefix; fills raw logits.
 * Splits into groups that fit the context. */
static int run_raw(pl_probe *p, const label_set *ls, int32_t **ids, const size_t *n_ids, size_t n,
                   pl_probe_result *out) {
    pl_session *s = p->session;
    int rc = pl_session_restore(s, p->prefix_state);
    if (rc) return pfail(p, rc, "restoring the prefix: %s", pl_session_errmsg(s));
    const size_t room = (size_t)(session_n_ctx(s) - p->n_prefix);
    const int32_t n_vocab = p->model->hp.n_vocab;
    int32_t flat_ids[PL_MAX_LABELS];
    for (int k = 0; k < p->n_labels; k++) flat_ids[k] = ls->ids[k][0];
    const int per_action = ls->multi ? p->n_labels : 1; /* sequences per action */
    pl_seq *seqs = calloc((size_t)per_action * (n ? n : 1), sizeof *seqs);
    int32_t *joined = NULL; /* multi-token: suffix + label tokens per sequence */
    float *logits = NULL;
    if (!seqs) return pfail(p, PL_ERR_NOMEM, "out of memory");
    size_t first = 0;
    while (first < n && !rc) {
        /* take actions while they fit */
        size_t last = first, used = 0;
        while (last < n) {
            size_t need = 0;
            for (int k = 0; k < per_action; k++) need += n_ids[last] + (ls->multi ? (size_t)ls->n_ids[k] - 1 : 0);
            if (used + need > room) break;
            used += need;
            last++;
        }
        if (last == first) {
            rc = pfail(p, PL_ERR_RANGE, "an action of %zu tokens does not fit in the context after the %d-token prefix",
                       n_ids[first], p->n_prefix);
            break;
        }
        size_t n_seq = 0, rows = 0;
        free(joined);
        joined = ls->multi ? malloc(used * sizeof *joined) : NULL;
        if (ls->multi && !joined) {
            rc = pfail(p, PL_ERR_NOMEM, "out of memory");
            break;
        }
        size_t off = 0;
        for (size_t a = first; a < last; a++) {
            if (!ls->multi) {
                seqs[n_seq++] = (pl_seq){ids[a], n_ids[a], 1};
                rows++;
                continue;
            }
            for (int k = 0; k < p->n_labels; k++) {
                const size_t L = (size_t)ls->n_ids[k];
                memcpy(joined + off, ids[a], n_ids[a] * sizeof *joined);
                memcpy(joined + off + n_ids[a], ls->ids[k], (L - 1) * sizeof *joined);
                seqs[n_seq++] = (pl_seq){joined + off, n_ids[a] + L - 1, L};
                off += n_ids[a] + L - 1;
                rows += L;
            }
        }
        const size_t row_len = ls->multi ? (size_t)n_vocab : (size_t)p->n_labels;
        free(logits);
        logits = malloc(rows * row_len * sizeof *logits);
        if (!logits) {
            rc = pfail(p, PL_ERR_NOMEM, "out of memory for %zu logits rows", rows);
            break;
        }
        rc = session_eval_forks(s, seqs, n_seq, ls->multi ? NULL : flat_ids, ls->multi ? 0 : (size_t)p->n_labels,
                                logits);
        if (rc) {
            pfail(p, rc, "forward pass: %s", pl_session_errmsg(s));
            break;
        }
        size_t row = 0;
        for (size_t a = first; a < last; a++) {
            pl_probe_result *r = &out[a];
            memset(r, 0, sizeof *r);
            r->n_tokens = (int)n_ids[a];
            for (int k = 0; k < p->n_labels; k++) {
                if (!ls->multi) {
                    r->logits[k] = logits[row * row_len + (size_t)k];
                    continue;
                }
                double lp = 0.0;
                for (int j = 0; j < ls->n_ids[k]; j++, row++)
                    lp += log_prob(logits + row * row_len, n_vocab, ls->ids[k][j]);
                r->logits[k] = lp;
            }
            if (!ls->multi) row++;
        }
        first = last;
    }
    free(seqs);
    free(joined);
    free(logits);
    return rc;
}

/* Probes n actions; the calibrated fields use the current bias and alpha. */
static int probe_many(pl_probe *p, int question, const char *const *actions, const size_t *lens, size_t n,
                      pl_probe_result *out) {
    if (question < 0 || question >= p->n_questions)
        return pfail(p, PL_ERR_ARG, "question %d is outside [0, %d)", question, p->n_questions);
    const double t0 = pl_now();
    int32_t **ids = calloc(n ? n : 1, sizeof *ids);
    size_t *n_ids = calloc(n ? n : 1, sizeof *n_ids);
    int rc = ids && n_ids ? PL_OK : pfail(p, PL_ERR_NOMEM, "out of memory");
    char ebuf[256] = "";
    pl_err err = {ebuf, sizeof ebuf};
    for (size_t a = 0; a < n && !rc; a++) {
        if (!actions[a] && lens[a])
            rc = pfail(p, PL_ERR_ARG, "action %zu is NULL", a);
        else if ((rc = suffix_ids(p, question, actions[a] ? actions[a] : "", lens[a], &ids[a], &n_ids[a], &err)))
            pfail(p, rc, "action %zu: %s", a, ebuf);
    }
    if (!rc) rc = run_raw(p, &p->sets[question], ids, n_ids, n, out);
    const double ms = (pl_now() - t0) * 1e3 / (double)(n ? n : 1);
    for (size_t a = 0; a < n && !rc; a++) {
        finish_result(p, &p->sets[question], &out[a]);
        out[a].ms = ms;
    }
    for (size_t a = 0; ids && a < n; a++) free(ids[a]);
    free(ids);
    free(n_ids);
    return rc;
}

/* Measures the calibration bias of one question on the content-free inputs. */
static int calibrate(pl_probe *p, int question) {
    label_set *ls = &p->sets[question];
    for (int k = 0; k < p->n_labels; k++) ls->bias[k] = 0.0;
    ls->n_calib = 0;
    if (p->n_content_free == 0) return PL_OK;
    size_t *lens = malloc((size_t)p->n_content_free * sizeof *lens);
    pl_probe_result *res = malloc((size_t)p->n_content_free * sizeof *res);
    if (!lens || !res) {
        free(lens);
        free(res);
        return pfail(p, PL_ERR_NOMEM, "out of memory");
    }
    /* With no template an empty content-free input may have no tokens at
     * all; such inputs are skipped. */
    const char **inputs = malloc((size_t)p->n_content_free * sizeof *inputs);
    size_t n_in = 0;
    for (int c = 0; inputs && c < p->n_content_free; c++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (suffix_ids(p, question, p->content_free[c], strlen(p->content_free[c]), &ids, &n, NULL) == PL_OK) {
            lens[n_in] = strlen(p->content_free[c]);
            inputs[n_in++] = p->content_free[c];
        }
        free(ids);
    }
    int rc = inputs ? probe_many(p, question, inputs, lens, n_in, res) : pfail(p, PL_ERR_NOMEM, "out of memory");
    free(inputs);
    double sum[PL_MAX_LABELS] = {0};
    for (size_t c = 0; c < n_in && !rc; c++) {
        if (res[c].degenerate) continue; /* a content-free input with non-finite logits says nothing */
        for (int k = 0; k < p->n_labels; k++) sum[k] += safe_log(res[c].probs[k]);
        ls->n_calib++;
    }
    if (!rc && ls->n_calib == 0)
        rc = pfail(p, PL_ERR_STATE, "calibration failed: no content-free input gave finite logits");
    for (int k = 0; k < p->n_labels && !rc; k++) ls->bias[k] = sum[k] / ls->n_calib;
    free(lens);
    free(res);
    return rc;
}

/* Copies and validates params; renders and tokenizes the prefix; resolves
 * labels. Does not evaluate anything. */
static int probe_setup(pl_session *s, const pl_probe_params *pp, pl_probe **out, pl_err *err) {
    *out = NULL;
    if (!s || !pp) return pl_fail(err, PL_ERR_ARG, "probe: NULL argument");
    const pl_model *m = session_model(s);
    pl_probe *p = calloc(1, sizeof *p);
    if (!p) return pl_fail(err, PL_ERR_NOMEM, "out of memory");
    p->session = s;
    p->model = m;
    int rc = PL_OK;
    const char *tn = pp->template_name;
    if (!tn || !strcmp(tn, "auto"))
        p->kind = template_detect(m->chat_template);
    else if (template_from_name(tn, &p->kind)) {
        rc = pl_fail(err, PL_ERR_ARG,
                     "unknown template '%s' (auto, none, plain, chatml, llama3, llama2, mistral, phi3)", tn);
        goto fail;
    }
    const int n_labels = pp->labels ? pp->n_labels : 2;
    const int n_q = pp->questions ? pp->n_questions : 1;
    const int n_cf = pp->content_free ? pp->n_content_free : 7;
    if (n_labels < 2 || n_labels > PL_MAX_LABELS) {
        rc = pl_fail(err, PL_ERR_ARG, "%d labels: between 2 and %d are needed", n_labels, PL_MAX_LABELS);
        goto fail;
    }
    if (n_q < 1 || n_q > MAX_QUESTIONS || n_cf < 0 || n_cf > 1024) {
        rc = pl_fail(err, PL_ERR_ARG, "bad number of questions (%d) or content-free inputs (%d)", n_q, n_cf);
        goto fail;
    }
    if (!(pp->alpha >= 0.0 && pp->alpha <= 16.0)) {
        rc = pl_fail(err, PL_ERR_ARG, "alpha %g is outside [0, 16]", pp->alpha);
        goto fail;
    }
    p->alpha = pp->alpha;
    p->multi_token = pp->multi_token != 0;
    p->n_labels = n_labels;
    p->n_questions = n_q;
    p->n_content_free = n_cf;
    p->system = dupz(pp->system);
    p->action_prefix = dupz(pp->action_prefix ? pp->action_prefix : "Action: ");
    p->answer_prefix = dupz(pp->answer_prefix);
    p->labels = dup_list(pp->labels ? pp->labels : default_labels, n_labels);
    static const char *const dq[1] = {default_question};
    p->questions = dup_list(pp->questions ? pp->questions : dq, n_q);
    p->content_free = dup_list(pp->content_free ? pp->content_free : default_content_free, n_cf);
    p->sets = calloc((size_t)n_q, sizeof *p->sets);
    if (!p->system || !p->action_prefix || !p->answer_prefix || !p->labels || !p->questions || !p->content_free ||
        !p->sets) {
        rc = pl_fail(err, PL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int k = 0; k < n_labels; k++)
        if (!p->labels[k][0]) {
            rc = pl_fail(err, PL_ERR_ARG, "label %d is empty", k);
            goto fail;
        }
    /* identity of the prefix and calibration (alpha excluded: it can change) */
    uint64_t h = 1469598103934665603ull;
    h = fnv_str(h, template_name(p->kind));
    h = fnv_str(fnv_str(fnv_str(h, p->system), p->action_prefix), p->answer_prefix);
    for (int i = 0; i < n_q; i++) h = fnv_str(h, p->questions[i]);
    for (int i = 0; i < n_labels; i++) h = fnv_str(h, p->labels[i]);
    for (int i = 0; i < n_cf; i++) h = fnv_str(h, p->content_free[i]);
    h = fnv(h, &p->multi_token, sizeof p->multi_token);
    p->params_hash = h;

    if (p->kind != PL_TMPL_NONE) {
        pl_str user = {0}, suf = {0};
        rc = template_render(p->kind, p->system, "", p->answer_prefix, &p->prefix_text, &suf);
        str_free(&user);
        str_free(&suf);
        if (rc) {
            rc = pl_fail(err, rc, "cannot render the prefix");
            goto fail;
        }
        size_t n = 0;
        rc = tokenize(p, p->prefix_text.ptr ? p->prefix_text.ptr : "", p->prefix_text.len,
                      PL_TOK_ADD_SPECIAL | PL_TOK_PARSE_SPECIAL, &p->prefix_ids, &n, err);
        if (rc) goto fail;
        if (n >= (size_t)session_n_ctx(s)) {
            rc = pl_fail(err, PL_ERR_RANGE, "the %zu-token prefix does not fit in a %d-token context", n,
                         session_n_ctx(s));
            goto fail;
        }
        p->n_prefix = (int32_t)n;
    }
    for (int q = 0; q < n_q && !rc; q++) rc = resolve_labels(p, q, &p->sets[q]);
    if (rc && !pp->labels) {
        /* Default labels: "Yes"/"No" where the answer starts a line, " Yes"/" No"
         * where it follows other text ("[/INST]", "Answer:"). */
        for (int k = 0; k < 2; k++) {
            free(p->labels[k]);
            p->labels[k] = dupz(default_labels_spaced[k]);
            if (!p->labels[k]) {
                rc = pl_fail(err, PL_ERR_NOMEM, "out of memory");
                goto fail;
            }
        }
        rc = PL_OK;
        for (int q = 0; q < n_q && !rc; q++) rc = resolve_labels(p, q, &p->sets[q]);
    }
    if (rc) {
        rc = pl_fail(err, rc, "%s", p->errmsg);
        goto fail;
    }
    *out = p;
    return PL_OK;
fail:
    pl_probe_free(p);
    return rc;
}

int pl_probe_create(pl_session *s, const pl_probe_params *pp, pl_probe **out, char *err_buf, size_t err_cap) {
    pl_err err = {err_buf, err_cap};
    if (!out) return pl_fail(&err, PL_ERR_ARG, "probe: NULL argument");
    pl_probe *p;
    int rc = probe_setup(s, pp, &p, &err);
    if (rc) return rc;
    if ((rc = pl_session_truncate(s, 0)) ||
        (p->n_prefix > 0 && (rc = pl_session_eval(s, p->prefix_ids, (size_t)p->n_prefix, PL_EVAL_LAST)))) {
        rc = pl_fail(&err, rc, "evaluating the prefix: %s", pl_session_errmsg(s));
        goto fail;
    }
    if ((rc = pl_session_checkpoint(s, &p->prefix_state))) {
        rc = pl_fail(&err, rc, "%s", pl_session_errmsg(s));
        goto fail;
    }
    for (int q = 0; q < p->n_questions; q++)
        if ((rc = calibrate(p, q))) {
            rc = pl_fail(&err, rc, "%s", p->errmsg);
            goto fail;
        }
    *out = p;
    return PL_OK;
fail:
    pl_probe_free(p);
    return rc;
}

void pl_probe_free(pl_probe *p) {
    if (!p) return;
    free(p->system);
    free(p->action_prefix);
    free(p->answer_prefix);
    free_list(p->questions, p->n_questions);
    free_list(p->labels, p->n_labels);
    free_list(p->content_free, p->n_content_free);
    str_free(&p->prefix_text);
    free(p->prefix_ids);
    pl_kv_state_free(p->prefix_state);
    free(p->sets);
    free(p);
}

int pl_probe_classify(pl_probe *p, int question, const char *action, size_t len, pl_probe_result *out) {
    if (!p || !out) return PL_ERR_ARG;
    p->errmsg[0] = '\0';
    return probe_many(p, question, &action, &len, 1, out);
}

int pl_probe_yes_no(pl_probe *p, int question, const char *action, size_t len, pl_probe_result *out) {
    if (!p || !out) return PL_ERR_ARG;
    if (p->n_labels != 2) return pfail(p, PL_ERR_ARG, "yes/no probe needs 2 labels, this probe has %d", p->n_labels);
    return pl_probe_classify(p, question, action, len, out);
}

int pl_probe_batch(pl_probe *p, int question, const char *const *actions, const size_t *lens, size_t n,
                   pl_probe_result *out) {
    if (!p || (!actions && n) || (!lens && n) || (!out && n)) return PL_ERR_ARG;
    p->errmsg[0] = '\0';
    return n ? probe_many(p, question, actions, lens, n, out) : PL_OK;
}

int pl_probe_set_alpha(pl_probe *p, double alpha) {
    if (!p || !(alpha >= 0.0 && alpha <= 16.0)) return PL_ERR_ARG;
    p->alpha = alpha;
    return PL_OK;
}

const char *pl_probe_errmsg(const pl_probe *p) { return p ? p->errmsg : "no probe"; }
const char *pl_probe_template(const pl_probe *p) { return template_name(p->kind); }
int32_t pl_probe_prefix_tokens(const pl_probe *p) { return p->n_prefix; }

char *pl_probe_render(const pl_probe *p, int question, const char *action) {
    if (!p || !action || question < 0 || question >= p->n_questions) return NULL;
    pl_str user = {0}, pre = {0}, suf = {0};
    int rc =
        p->kind == PL_TMPL_NONE ? str_appendz(&user, action) : render_user(p, question, action, strlen(action), &user);
    if (!rc) rc = template_render(p->kind, p->system, user.ptr ? user.ptr : "", p->answer_prefix, &pre, &suf);
    if (!rc) rc = str_append(&pre, suf.ptr ? suf.ptr : "", suf.len);
    str_free(&user);
    str_free(&suf);
    if (rc) {
        str_free(&pre);
        return NULL;
    }
    return pre.ptr ? pre.ptr : dupz("");
}

/* ---- snapshots ------------------------------------------------------------------
 * Layout (little-endian):
 *   "PLSNAP01" | u32 version=1 | u64 model identity | u64 model file size |
 *   u64 params hash | u32 n_layer | u32 kv_dim | u32 n_prefix | u32 n_questions |
 *   u32 n_labels | n_prefix × i32 prefix ids | n_questions × n_labels × f64 bias |
 *   n_questions × u32 n_calib | KV: n_layer × (K then V) × n_prefix × kv_dim f32 |
 *   u64 FNV-1a of every byte before it. */

#define SNAP_MAGIC "PLSNAP01"

int pl_probe_save(const pl_probe *p, const char *path, char *err_buf, size_t err_cap) {
    pl_err err = {err_buf, err_cap};
    if (!p || !path) return pl_fail(&err, PL_ERR_ARG, "snapshot: NULL argument");
    const pl_hparams *hp = &p->model->hp;
    const size_t n_kv = session_kv_floats_per_layer(p->session, p->n_prefix) * 2 * (size_t)hp->n_layer;
    float *kv = malloc((n_kv ? n_kv : 1) * sizeof *kv);
    if (!kv) return pl_fail(&err, PL_ERR_NOMEM, "out of memory");
    pl_session *s = p->session;
    int rc = pl_session_restore(s, p->prefix_state);
    if (!rc) rc = session_kv_export(s, p->n_prefix, kv);
    if (rc) {
        free(kv);
        return pl_fail(&err, rc, "snapshot: cannot read the prefix state");
    }
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(kv);
        return pl_fail(&err, PL_ERR_ARG, "snapshot path too long");
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(kv);
        return pl_fail(&err, PL_ERR_IO, "cannot create %s", tmp);
    }
    uint64_t h = 1469598103934665603ull;
    bool ok = true;
#define PUT(ptr, size)                                                                                                 \
    do {                                                                                                               \
        if (ok && fwrite((ptr), 1, (size), f) != (size)) ok = false;                                                   \
        h = fnv(h, (ptr), (size));                                                                                     \
    } while (0)
    const uint32_t version = 1, n_layer = (uint32_t)hp->n_layer, kv_dim = (uint32_t)(hp->n_head_kv * hp->head_dim),
                   n_prefix = (uint32_t)p->n_prefix, n_q = (uint32_t)p->n_questions, n_l = (uint32_t)p->n_labels;
    const uint64_t ident = gguf_identity(p->model->gguf), fsize = gguf_file_size(p->model->gguf), ph = p->params_hash;
    PUT(SNAP_MAGIC, 8);
    PUT(&version, 4);
    PUT(&ident, 8);
    PUT(&fsize, 8);
    PUT(&ph, 8);
    PUT(&n_layer, 4);
    PUT(&kv_dim, 4);
    PUT(&n_prefix, 4);
    PUT(&n_q, 4);
    PUT(&n_l, 4);
    if (n_prefix) PUT(p->prefix_ids, n_prefix * sizeof(int32_t));
    for (int q = 0; q < p->n_questions; q++) PUT(p->sets[q].bias, n_l * sizeof(double));
    for (int q = 0; q < p->n_questions; q++) {
        const uint32_t nc = (uint32_t)p->sets[q].n_calib;
        PUT(&nc, 4);
    }
    if (n_kv) PUT(kv, n_kv * sizeof(float));
#undef PUT
    if (ok && fwrite(&h, 8, 1, f) != 1) ok = false;
    if (fflush(f) != 0) ok = false;
    if (fclose(f) != 0) ok = false;
    free(kv);
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return pl_fail(&err, PL_ERR_IO, "cannot write snapshot %s", path);
    }
    return PL_OK;
}

/* Bounds-checked reader over the snapshot bytes. */
typedef struct snap_cur {
    const unsigned char *p;
    size_t len, off;
} snap_cur;
static bool take(snap_cur *c, void *dst, size_t n) {
    if (n > c->len - c->off) return false;
    memcpy(dst, c->p + c->off, n);
    c->off += n;
    return true;
}

int pl_probe_load(pl_session *s, const pl_probe_params *pp, const char *path, pl_probe **out, char *err_buf,
                  size_t err_cap) {
    pl_err err = {err_buf, err_cap};
    if (!out || !path) return pl_fail(&err, PL_ERR_ARG, "snapshot: NULL argument");
    *out = NULL;
    pl_probe *p;
    int rc = probe_setup(s, pp, &p, &err);
    if (rc) return rc;
    char *data = NULL;
    size_t len = 0;
    float *kv = NULL;
    if ((rc = pl_read_file(path, &data, &len, &err))) goto fail;
    snap_cur c = {(const unsigned char *)data, len, 0};
    const pl_hparams *hp = &p->model->hp;
    char magic[8];
    uint32_t version, n_layer, kv_dim, n_prefix, n_q, n_l;
    uint64_t ident, fsize, ph, stored;
    if (len < 8 + 8 || !take(&c, magic, 8) || memcmp(magic, SNAP_MAGIC, 8) != 0) {
        rc = pl_fail(&err, PL_ERR_FORMAT, "%s is not a probelogits snapshot", path);
        goto fail;
    }
    memcpy(&stored, data + len - 8, 8);
    if (fnv(1469598103934665603ull, data, len - 8) != stored) {
        rc = pl_fail(&err, PL_ERR_FORMAT, "snapshot %s is corrupted or truncated (checksum mismatch)", path);
        goto fail;
    }
    c.len = len - 8;
    if (!take(&c, &version, 4) || !take(&c, &ident, 8) || !take(&c, &fsize, 8) || !take(&c, &ph, 8) ||
        !take(&c, &n_layer, 4) || !take(&c, &kv_dim, 4) || !take(&c, &n_prefix, 4) || !take(&c, &n_q, 4) ||
        !take(&c, &n_l, 4)) {
        rc = pl_fail(&err, PL_ERR_FORMAT, "snapshot %s: header truncated", path);
        goto fail;
    }
    if (version != 1) {
        rc = pl_fail(&err, PL_ERR_UNSUPPORTED, "snapshot %s: version %u is not supported", path, version);
        goto fail;
    }
    if (ident != gguf_identity(p->model->gguf) || fsize != gguf_file_size(p->model->gguf) ||
        n_layer != (uint32_t)hp->n_layer || kv_dim != (uint32_t)(hp->n_head_kv * hp->head_dim)) {
        rc = pl_fail(&err, PL_ERR_ARG, "snapshot %s was made with another model file", path);
        goto fail;
    }
    if (ph != p->params_hash || n_q != (uint32_t)p->n_questions || n_l != (uint32_t)p->n_labels ||
        n_prefix != (uint32_t)p->n_prefix) {
        rc = pl_fail(&err, PL_ERR_ARG,
                     "snapshot %s was made with another template, policy text, labels or content-free inputs", path);
        goto fail;
    }
    if (n_prefix > 0) {
        int32_t *ids = malloc(n_prefix * sizeof *ids);
        bool same = ids && take(&c, ids, n_prefix * sizeof *ids) && !memcmp(ids, p->prefix_ids, n_prefix * sizeof *ids);
        free(ids);
        if (!same) {
            rc = pl_fail(&err, PL_ERR_FORMAT, "snapshot %s: prefix tokens differ from this policy's", path);
            goto fail;
        }
    }
    for (uint32_t q = 0; q < n_q; q++)
        if (!take(&c, p->sets[q].bias, n_l * sizeof(double))) {
            rc = pl_fail(&err, PL_ERR_FORMAT, "snapshot %s: truncated calibration", path);
            goto fail;
        }
    for (uint32_t q = 0; q < n_q; q++) {
        uint32_t nc;
        if (!take(&c, &nc, 4) || nc > (uint32_t)p->n_content_free) {
            rc = pl_fail(&err, PL_ERR_FORMAT, "snapshot %s: bad calibration count", path);
            goto fail;
        }
        p->sets[q].n_calib = (int)nc;
        for (int k = 0; k < p->n_labels; k++)
            if (!isfinite(p->sets[q].bias[k])) {
                rc = pl_fail(&err, PL_ERR_FORMAT, "snapshot %s: non-finite calibration bias", path);
                goto fail;
            }
    }
    const size_t n_kv = session_kv_floats_per_layer(s, (int32_t)n_prefix) * 2 * n_layer;
    if (n_kv * sizeof(float) != c.len - c.off) {
        rc = pl_fail(&err, PL_ERR_FORMAT, "snapshot %s: KV data has the wrong size", path);
        goto fail;
    }
    kv = malloc((n_kv ? n_kv : 1) * sizeof *kv);
    if (!kv || !take(&c, kv, n_kv * sizeof *kv)) {
        rc = pl_fail(&err, PL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n_kv; i++)
        if (!isfinite(kv[i])) {
            rc = pl_fail(&err, PL_ERR_FORMAT, "snapshot %s: non-finite KV value", path);
            goto fail;
        }
    if ((rc = session_kv_import(s, (int32_t)n_prefix, kv)) || (rc = pl_session_checkpoint(s, &p->prefix_state))) {
        rc = pl_fail(&err, rc, "snapshot: cannot load the KV state");
        goto fail;
    }
    free(kv);
    free(data);
    *out = p;
    return PL_OK;
fail:
    free(kv);
    free(data);
    pl_probe_free(p);
    return rc;
}
