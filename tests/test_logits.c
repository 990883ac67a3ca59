/* test_logits.c — end-to-end logits against llama.cpp's reference run and an
 * exact float64 forward (../shared/fixtures/refs), for all fixture models and
 * all 22 prompts; plus bitwise determinism across thread counts and across
 * splitting a prompt into a cached prefix and a suffix. */
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
    double tol; /* max |dlogit| vs the llama.cpp reference run */
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
/* Our activations and KV cache are float32 with double-precision norms and
 * softmax sums. The fixtures README bounds such an engine at 1e-3 from the
 * exact forward; we measure < 1e-6 and hold the line at 1e-5. */
#define EXACT_TOL 1e-5

static float *read_f32(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *buf = malloc((size_t)sz);
    *n = fread(buf, 4, (size_t)sz / 4, f);
    fclose(f);
    return buf;
}

static double lse(const float *row, int n) {
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < n; i++) mx = row[i] > mx ? row[i] : mx;
    for (int i = 0; i < n; i++) s += exp(row[i] - mx);
    return mx + log(s);
}

static json_object *find_prompt(json_object *arr, const char *name) {
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *p = json_object_array_get_idx(arr, i), *v;
        json_object_object_get_ex(p, "name", &v);
        if (!strcmp(json_object_get_string(v), name)) return p;
    }
    return NULL;
}

int main(void) {
    json_object *prompts = json_object_from_file(FIX "/prompts.json");
    CHECK(prompts != NULL, "cannot read prompts.json");
    if (!prompts) return testlib_finish("test_logits");
    printf("%-28s %10s %10s %10s %8s\n", "model", "vs_ref", "tol", "vs_exact", "lse_ref");
    for (size_t mi = 0; mi < sizeof models / sizeof models[0]; mi++) {
        char path[512], err[512] = "";
        snprintf(path, sizeof path, FIX "/models/%s.gguf", models[mi].name);
        pl_model *m = NULL;
        int rc = pl_model_open(path, 0, &m, err, sizeof err);
        CHECK(rc == PL_OK, "%s: %s", models[mi].name, err);
        if (rc) continue;
        pl_session *s1 = NULL, *s2 = NULL;
        CHECK(pl_session_create(m, 1024, 2, &s2, err, sizeof err) == PL_OK, "%s", err);
        CHECK(pl_session_create(m, 1024, 1, &s1, err, sizeof err) == PL_OK, "%s", err);
        snprintf(path, sizeof path, FIX "/refs/%s/refs.json", models[mi].name);
        json_object *refs = json_object_from_file(path);
        snprintf(path, sizeof path, FIX "/refs/%s/exact.json", models[mi].name);
        json_object *exact = json_object_from_file(path), *ref_prompts, *exact_prompts;
        CHECK(refs && exact, "cannot read refs for %s", models[mi].name);
        if (!refs || !exact || !s1 || !s2) continue;
        json_object_object_get_ex(refs, "prompts", &ref_prompts);
        json_object_object_get_ex(exact, "prompts", &exact_prompts);
        const int n_vocab = pl_model_n_vocab(m);
        float *row1 = malloc(sizeof(float) * (size_t)n_vocab);
        double worst_ref = 0, worst_exact = 0, worst_lse = 0;
        for (size_t pi = 0; pi < json_object_array_length(ref_prompts); pi++) {
            json_object *rp = json_object_array_get_idx(ref_prompts, pi), *v, *last;
            json_object_object_get_ex(rp, "name", &v);
            const char *name = json_object_get_string(v);
            const char *text = prompt_text(prompts, name);
            CHECK(text != NULL, "prompt %s missing", name);
            if (!text) continue;
            int32_t ids[4096];
            size_t n = 0;
            rc = pl_tokenize(m, text, strlen(text), PL_TOK_ADD_SPECIAL | PL_TOK_PARSE_SPECIAL, ids, 4096, &n, err,
                             sizeof err);
            json_object *rtok;
            json_object_object_get_ex(rp, "tokens", &rtok);
            bool same = rc == PL_OK && n == json_object_array_length(rtok);
            for (size_t i = 0; same && i < n; i++)
                same = ids[i] == json_object_get_int(json_object_array_get_idx(rtok, i));
            CHECK(same, "%s/%s: token ids differ from refs.json (rc %d, n %zu vs %zu)", models[mi].name, name, rc, n,
                  json_object_array_length(rtok));
            if (!same) continue;
            const bool all = !strcmp(name, "plain");
            pl_session_truncate(s2, 0);
            rc = pl_session_eval(s2, ids, n, all ? PL_EVAL_ALL_POSITIONS : PL_EVAL_LAST);
            CHECK(rc == PL_OK, "%s/%s: eval: %s", models[mi].name, name, pl_session_errmsg(s2));
            if (rc) continue;
            const float *row = pl_session_logits(s2, all ? n - 1 : 0);
            json_object_object_get_ex(rp, "last", &last);
            double d = top_diff(row, last);
            json_object *full;
            if (json_object_object_get_ex(rp, "last_full", &full)) {
                snprintf(path, sizeof path, FIX "/refs/%s/%s", models[mi].name, json_object_get_string(full));
                size_t nf = 0;
                float *ref = read_f32(path, &nf);
                CHECK(ref && nf == (size_t)n_vocab, "%s: bad %s", models[mi].name, path);
                for (size_t i = 0; ref && i < nf; i++) d = fmax(d, fabs((double)row[i] - ref[i]));
                free(ref);
            }
            json_object_object_get_ex(last, "lse", &v);
            worst_lse = fmax(worst_lse, fabs(lse(row, n_vocab) - json_object_get_double(v)));
            CHECK(d <= models[mi].tol, "%s/%s: max |dlogit| %.3g > %.3g", models[mi].name, name, d, models[mi].tol);
            worst_ref = fmax(worst_ref, d);
            json_object *ep = find_prompt(exact_prompts, name), *elast;
            CHECK(ep != NULL, "%s: %s missing from exact.json", models[mi].name, name);
            if (ep && json_object_object_get_ex(ep, "last", &elast)) {
                double de = top_diff(row, elast);
                worst_exact = fmax(worst_exact, de);
                CHECK(de <= EXACT_TOL, "%s/%s: vs exact %.3g > %.3g", models[mi].name, name, de, EXACT_TOL);
            }
            if (all) { /* every position against refs, exact and the full block */
                json_object *pos, *epos = NULL;
                json_object_object_get_ex(rp, "positions", &pos);
                if (ep) json_object_object_get_ex(ep, "positions", &epos);
                CHECK(json_object_array_length(pos) == n, "%s: positions count", models[mi].name);
                for (size_t i = 0; i < n && i < json_object_array_length(pos); i++) {
                    const float *ri = pl_session_logits(s2, i);
                    double dp = top_diff(ri, json_object_array_get_idx(pos, i));
                    CHECK(dp <= models[mi].tol, "%s/plain pos %zu: %.3g", models[mi].name, i, dp);
                    worst_ref = fmax(worst_ref, dp);
                    if (epos) {
                        double de = top_diff(ri, json_object_array_get_idx(epos, i));
                        CHECK(de <= EXACT_TOL, "%s/plain pos %zu vs exact: %.3g", models[mi].name, i, de);
                        worst_exact = fmax(worst_exact, de);
                    }
                }
                if (json_object_object_get_ex(rp, "positions_full", &full)) {
                    snprintf(path, sizeof path, FIX "/refs/%s/%s", models[mi].name, json_object_get_string(full));
                    size_t nf = 0;
                    float *ref = read_f32(path, &nf);
                    CHECK(ref && nf == n * (size_t)n_vocab, "bad %s", path);
                    double da = 0;
                    for (size_t i = 0; ref && i < nf; i++)
                        da = fmax(
                            da, fabs((double)pl_session_logits(s2, i / (size_t)n_vocab)[i % (size_t)n_vocab] - ref[i]));
                    CHECK(da <= models[mi].tol, "%s: all-positions block %.3g", models[mi].name, da);
                    worst_ref = fmax(worst_ref, da);
                    free(ref);
                }
            }
            /* Determinism: one thread, and a prefix/suffix split, give the
             * same bits as two threads in one batch. */
            if (pi % 4 == 0 || !strcmp(name, "long")) {
                memcpy(row1, row, sizeof(float) * (size_t)n_vocab);
                pl_session_truncate(s1, 0);
                size_t cut = n / 2;
                if (cut) CHECK(pl_session_eval(s1, ids, cut, PL_EVAL_LAST) == PL_OK, "%s", pl_session_errmsg(s1));
                CHECK(pl_session_eval(s1, ids + cut, n - cut, PL_EVAL_LAST) == PL_OK, "%s", pl_session_errmsg(s1));
                CHECK(memcmp(pl_session_logits(s1, 0), row1, sizeof(float) * (size_t)n_vocab) == 0,
                      "%s/%s: -t 1 with a cached prefix differs bitwise from -t 2 in one batch", models[mi].name, name);
            }
        }
        printf("%-28s %10.3g %10.3g %10.3g %8.2g\n", models[mi].name, worst_ref, models[mi].tol, worst_exact,
               worst_lse);
        free(row1);
        json_object_put(refs);
        json_object_put(exact);
        pl_session_free(s1);
        pl_session_free(s2);
        pl_model_close(m);
    }
    json_object_put(prompts);
    return testlib_finish("test_logits");
}
