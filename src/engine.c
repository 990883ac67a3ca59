/* engine.c — the decision engine declared in engine.h. */
#include "engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_SLOTS 4096 /* power of two */

/* One cached verdict, keyed by a 64-bit hash of (class, text) and checked
 * against the stored key bytes so a collision can never return another
 * action's verdict. */
typedef struct cache_entry {
    uint64_t hash;
    char *key;      /* owned "class\0text", NULL when empty */
    size_t key_len; /* bytes of key */
    pl_verdict verdict;
} cache_entry;

struct pl_engine {
    pl_model *model;         /* borrowed */
    const pl_policy *policy; /* borrowed */
    pl_session *session;     /* owned */
    pl_probe *probe;         /* owned */
    int *class_question;     /* owned: policy class index -> probe question index */
    cache_entry *cache;      /* owned [CACHE_SLOTS] */
    pl_probe_result last;    /* last probe result */
    int have_last;
};

int pl_engine_create(pl_model *model, const pl_policy *pol, int n_threads, int32_t n_ctx, const char *snapshot,
                     pl_engine **out, pl_err *err) {
    *out = NULL;
    if (!model || !pol) return pl_fail(err, PL_ERR_ARG, "engine: NULL argument");
    pl_engine *e = calloc(1, sizeof *e);
    const char **questions = calloc((size_t)pol->n_classes, sizeof *questions);
    int rc = PL_OK;
    char ebuf[512] = "";
    if (!e || !questions) {
        free(questions);
        free(e);
        return pl_fail(err, PL_ERR_NOMEM, "out of memory");
    }
    e->model = model;
    e->policy = pol;
    e->class_question = calloc((size_t)pol->n_classes, sizeof *e->class_question);
    e->cache = calloc(CACHE_SLOTS, sizeof *e->cache);
    if (!e->class_question || !e->cache) {
        rc = pl_fail(err, PL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* identical class questions share one calibration */
    int n_q = 0;
    for (int c = 0; c < pol->n_classes; c++) {
        int q = 0;
        while (q < n_q && strcmp(questions[q], pol->classes[c].question) != 0) q++;
        if (q == n_q) questions[n_q++] = pol->classes[c].question;
        e->class_question[c] = q;
    }
    if ((rc = pl_session_create(model, n_ctx > 0 ? n_ctx : 2048, n_threads > 0 ? n_threads : 2, &e->session, ebuf,
                                sizeof ebuf))) {
        rc = pl_fail(err, rc, "%s", ebuf);
        goto fail;
    }
    const pl_probe_params pp = {
        .template_name = pol->template_name,
        .system = pol->system,
        .questions = questions,
        .n_questions = n_q,
        .answer_prefix = pol->answer_prefix,
        .labels = (const char *const *)pol->labels,
        .n_labels = pol->n_labels,
        .alpha = pol->classes[0].alpha,
        .content_free = (const char *const *)pol->content_free,
        .n_content_free = pol->n_content_free,
    };
    rc = snapshot ? pl_probe_load(e->session, &pp, snapshot, &e->probe, ebuf, sizeof ebuf)
                  : pl_probe_create(e->session, &pp, &e->probe, ebuf, sizeof ebuf);
    if (rc) {
        rc = pl_fail(err, rc, "%s", ebuf);
        goto fail;
    }
    free(questions);
    *out = e;
    return PL_OK;
fail:
    free(questions);
    pl_engine_free(e);
    return rc;
}

void pl_engine_free(pl_engine *e) {
    if (!e) return;
    for (size_t i = 0; e->cache && i < CACHE_SLOTS; i++) free(e->cache[i].key);
    free(e->cache);
    free(e->class_question);
    pl_probe_free(e->probe);
    pl_session_free(e->session);
    free(e);
}

static uint64_t key_hash(const char *key, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)key[i]) * 1099511628211ull;
    return h;
}

static void set_reason(pl_verdict *v, const char *fmt, const char *arg) {
    snprintf(v->reason, sizeof v->reason, fmt, arg ? arg : "");
}

int pl_engine_decide(void *ctx, const char *cls, const char *text, size_t len, pl_verdict *out) {
    pl_engine *e = ctx;
    const double t0 = pl_now();
    memset(out, 0, sizeof *out);
    out->decision = PL_DECISION_DENY; /* until proven otherwise */
    out->p_dangerous = NAN;
    if (!e || !text) {
        set_reason(out, "engine error: %s", "NULL argument");
        return PL_ERR_ARG;
    }
    e->have_last = 0;
    const pl_policy *pol = e->policy;
    const pl_policy_class *pc = pl_policy_class_find(pol, cls);
    if (!pc) {
        set_reason(out, "unknown action class '%s'", cls);
        out->latency_ms = (pl_now() - t0) * 1e3;
        return PL_OK; /* a decision, not an error: unknown classes are denied */
    }
    const char *cname = pc->name;
    const pl_policy_rule *rule = pl_policy_match(pol, cname, text, len);
    if (rule) {
        out->decision = rule->decision;
        snprintf(out->rule, sizeof out->rule, "%s:%d", pol->path ? pol->path : "policy", rule->line);
        set_reason(out, "%s", rule->reason ? rule->reason : rule->pattern);
        out->latency_ms = (pl_now() - t0) * 1e3;
        return PL_OK;
    }
    /* decision cache */
    const size_t cl = strlen(cname);
    size_t klen;
    if (!pl_add_ok(cl + 1, len, &klen)) {
        set_reason(out, "%s", "action too long");
        return PL_ERR_RANGE;
    }
    char *key = malloc(klen);
    if (!key) {
        set_reason(out, "%s", "out of memory");
        return PL_ERR_NOMEM;
    }
    memcpy(key, cname, cl + 1);
    memcpy(key + cl + 1, text, len);
    const uint64_t h = key_hash(key, klen);
    cache_entry *ce = &e->cache[h & (CACHE_SLOTS - 1)];
    if (ce->key && ce->hash == h && ce->key_len == klen && !memcmp(ce->key, key, klen)) {
        *out = ce->verdict;
        snprintf(out->reason, sizeof out->reason, "cached: %.240s", ce->verdict.reason);
        out->latency_ms = (pl_now() - t0) * 1e3;
        free(key);
        return PL_OK;
    }
    const int ci = (int)(pc - pol->classes);
    pl_probe_set_alpha(e->probe, pc->alpha);
    pl_probe_result r;
    int rc = pl_probe_classify(e->probe, e->class_question[ci], text, len, &r);
    if (rc) {
        set_reason(out, "classifier error: %s", pl_probe_errmsg(e->probe));
        out->latency_ms = (pl_now() - t0) * 1e3;
        free(key);
        return rc;
    }
    e->last = r;
    e->have_last = 1;
    out->p_dangerous = r.calibrated_probs[0];
    out->alpha = r.alpha;
    if (r.degenerate) {
        out->decision = PL_DECISION_DENY;
        set_reason(out, "%s", "degenerate logits (non-finite): denied");
    } else {
        out->decision = pl_policy_grade(pc, r.calibrated_probs[0]);
        snprintf(out->reason, sizeof out->reason, "probe: P(%s) = %.4f", pol->labels[0], r.calibrated_probs[0]);
    }
    out->latency_ms = (pl_now() - t0) * 1e3;
    free(ce->key);
    ce->key = key;
    ce->key_len = klen;
    ce->hash = h;
    ce->verdict = *out;
    return PL_OK;
}

const pl_probe_result *pl_engine_last_probe(const pl_engine *e) { return e && e->have_last ? &e->last : NULL; }

int pl_engine_save_snapshot(const pl_engine *e, const char *path, pl_err *err) {
    char ebuf[512] = "";
    int rc = pl_probe_save(e->probe, path, ebuf, sizeof ebuf);
    return rc ? pl_fail(err, rc, "%s", ebuf) : PL_OK;
}

const pl_probe *pl_engine_probe(const pl_engine *e) { return e->probe; }
