/* cli_bench.c — `probelogits bench`: verifies, then measures the probe
 * workload of ../shared/bench/probe-workload.json on a model: prefix
 * evaluation, per-probe latency with the prefix restored from a
 * checkpoint (one action at a time, and 8 actions per batched pass),
 * prompt processing at 64 and 512 tokens, generation, checkpoint restore,
 * achieved weight bandwidth next to the machine's measured read bandwidth,
 * and peak RSS. Output: a table for people or --json for machines. */
#include <json-c/json.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli_common.h"
#include "gguf.h"
#include "model.h"
#include "probelogits.h"
#include "quant.h"

static const char usage_bench[] =
    "usage: probelogits bench -m MODEL [--workload FILE] [-t N] [--json] [--template NAME] [--n-probes N] [--fast]\n"
    "Verifies that cached, batched probes equal the uncached whole-prompt forward pass bit for bit,\n"
    "then measures: prefix evaluation; per-probe latency (mean/p50/p95) with the prefix restored from a\n"
    "checkpoint; 8 probes per batched pass; prompt processing at 64 and 512 tokens; generation;\n"
    "checkpoint restore; achieved weight bandwidth and the machine's read bandwidth; peak RSS.\n"
    "  --workload FILE  default ../shared/bench/probe-workload.json\n"
    "  --template NAME  chatml or llama3 (default: llama3 when the vocabulary has its tokens, else chatml)\n"
    "  --n-probes N     use the first N actions (default all)\n"
    "  --json           one JSON object on stdout (progress stays on stderr)\n"
    "  --fast           int8 activations for quantized matmuls (pl_session_set_fast)\n";

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(double *v, size_t n, double q) {
    qsort(v, n, sizeof *v, cmp_double);
    const double idx = q * (double)(n - 1);
    const size_t lo = (size_t)idx;
    return lo + 1 < n ? v[lo] + (v[lo + 1] - v[lo]) * (idx - (double)lo) : v[lo];
}

static void progress(const char *what, size_t i, size_t n, int quiet) {
    if (quiet || (i != n && i % (n / 10 > 0 ? n / 10 : 1) != 0)) return;
    fprintf(stderr, "\r%-28s %3zu%%", what, n ? i * 100 / n : 100);
    if (i == n) fputc('\n', stderr);
    fflush(stderr);
}

/* Read bandwidth of this machine: n_threads threads each read their share
 * of a 512 MiB buffer (16 times the L3 of this machine class) with the
 * kernels' stream_sum, which prefetches like the decode matmuls. The bench
 * runs these passes between blocks of generated tokens, so both see the
 * same state of a shared machine whose bandwidth moves by tens of percent
 * within seconds. */
#define BW_BYTES ((size_t)512 << 20)
typedef struct bw_arg {
    const uint8_t *p;
    size_t n;
    uint64_t sum;
} bw_arg;
static void *bw_thread(void *v) {
    bw_arg *a = v;
    a->sum = pl_kernels_get()->stream_sum(a->p, a->n);
    return NULL;
}
/* One pass over buf (BW_BYTES, every page touched): GB/s, or NAN when a
 * thread cannot start. */
static double bw_pass(const uint8_t *buf, int n_threads) {
    if (n_threads > 8) n_threads = 8;
    const size_t share = BW_BYTES / (size_t)n_threads / 64 * 64;
    pthread_t th[8];
    bw_arg args[8];
    int started = 0;
    const double t0 = pl_now();
    for (int t = 0; t < n_threads; t++) {
        args[t] = (bw_arg){buf + share * (size_t)t, share, 0};
        if (pthread_create(&th[t], NULL, bw_thread, &args[t]) != 0) break;
        started++;
    }
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    const double dt = pl_now() - t0;
    return started == n_threads ? (double)share * n_threads / dt / 1e9 : NAN;
}

/* Bytes of weights one decode token reads: every layer matrix, the norms,
 * and the full output matrix (generation needs every logit). */
static double weight_bytes_per_token(const pl_model *m) {
    double b = (double)m->output.row_bytes * (double)m->output.ne1;
    for (int32_t l = 0; l < m->hp.n_layer; l++) {
        const pl_layer *L = &m->layers[l];
        const pl_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) b += (double)ws[i]->row_bytes * (double)ws[i]->ne1;
    }
    return b;
}

/* A JSON number, or null for a figure that could not be measured (NaN):
 * JSON has no NaN. */
static json_object *json_num(double x) { return isfinite(x) ? json_object_new_double(x) : NULL; }

/* The workload: {"system_prompt": string, "question": string, "actions":
 * [{"action": string}, ...] (at least one)}; other keys are ignored. Prints
 * what is wrong (file, key, index) and returns 0 when it is not that. */
static int workload_check(json_object *wl, const char *path, const char **system, const char **question,
                          json_object **acts) {
    json_object *v;
    if (!wl) {
        fprintf(stderr, "probelogits: cannot read the workload %s (missing, unreadable or not JSON)\n", path);
        return 0;
    }
    if (!json_object_is_type(wl, json_type_object) || !json_object_object_get_ex(wl, "system_prompt", &v) ||
        !json_object_is_type(v, json_type_string)) {
        fprintf(stderr, "probelogits: workload %s: \"system_prompt\" must be a string\n", path);
        return 0;
    }
    *system = json_object_get_string(v);
    if (!json_object_object_get_ex(wl, "question", &v) || !json_object_is_type(v, json_type_string)) {
        fprintf(stderr, "probelogits: workload %s: \"question\" must be a string\n", path);
        return 0;
    }
    *question = json_object_get_string(v);
    if (!json_object_object_get_ex(wl, "actions", acts) || !json_object_is_type(*acts, json_type_array) ||
        json_object_array_length(*acts) == 0) {
        fprintf(stderr, "probelogits: workload %s: \"actions\" must be a non-empty array\n", path);
        return 0;
    }
    for (size_t i = 0; i < json_object_array_length(*acts); i++) {
        json_object *a = json_object_array_get_idx(*acts, i);
        if (!json_object_is_type(a, json_type_object) || !json_object_object_get_ex(a, "action", &v) ||
            !json_object_is_type(v, json_type_string)) {
            fprintf(stderr, "probelogits: workload %s: actions[%zu] must be an object with an \"action\" string\n",
                    path, i);
            return 0;
        }
    }
    return 1;
}

typedef struct bench_opts {
    const char *model, *workload, *tmpl;
    int threads, json;
    int fast; /* --fast: pl_session_set_fast on every session */
    long n_probes;
} bench_opts;

static int parse(int argc, char **argv, bench_opts *o) {
    o->workload = "../shared/bench/probe-workload.json";
    o->threads = 2;
    o->n_probes = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        char *end;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_bench, stdout);
            return -1;
        } else if (!strcmp(a, "--json"))
            o->json = 1;
        else if (!strcmp(a, "--fast"))
            o->fast = 1;
        else if (!next)
            return cli_die_usage(usage_bench, "an option needs a value");
        else if (!strcmp(a, "-m"))
            o->model = next, i++;
        else if (!strcmp(a, "--workload"))
            o->workload = next, i++;
        else if (!strcmp(a, "--template"))
            o->tmpl = next, i++;
        else if (!strcmp(a, "-t")) {
            long v = strtol(next, &end, 10);
            if (*end || v < 1 || v > 256) return cli_die_usage(usage_bench, "-t needs 1..256");
            o->threads = (int)v, i++;
        } else if (!strcmp(a, "--n-probes")) {
            o->n_probes = strtol(next, &end, 10);
            if (*end || o->n_probes < 1) return cli_die_usage(usage_bench, "--n-probes needs a count >= 1");
            i++;
        } else
            return cli_die_usage(usage_bench, "unknown option");
    }
    if (!o->model) return cli_die_usage(usage_bench, "missing -m MODEL");
    return 0;
}

int cli_bench(int argc, char **argv) {
    bench_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    char err[512] = "";
    int status = 1;
    pl_model *m = NULL;
    pl_session *s = NULL, *ref = NULL, *other = NULL;
    pl_probe *p = NULL;
    pl_kv_state *cp = NULL;
    double *lat = NULL;
    const char **actions = NULL;
    size_t *lens = NULL;
    pl_probe_result *res = NULL, *res2 = NULL;
    int32_t *ids = NULL;
    uint8_t *bw_buf = NULL; /* the read test's buffer */
    json_object *wl = json_object_from_file(o.workload), *acts;
    const char *system, *question;
    if (!workload_check(wl, o.workload, &system, &question, &acts)) goto out;
    size_t n = json_object_array_length(acts);
    if (o.n_probes > 0 && (size_t)o.n_probes < n) n = (size_t)o.n_probes;
    actions = calloc(n, sizeof *actions);
    lens = calloc(n, sizeof *lens);
    lat = calloc(n, sizeof *lat);
    res = calloc(n, sizeof *res);
    res2 = calloc(n, sizeof *res2);
    ids = calloc(8192, sizeof *ids);
    if (!actions || !lens || !lat || !res || !res2 || !ids) {
        fprintf(stderr, "probelogits: out of memory for %zu actions\n", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *t;
        json_object_object_get_ex(json_object_array_get_idx(acts, i), "action", &t);
        actions[i] = json_object_get_string(t);
        lens[i] = (size_t)json_object_get_string_len(t);
    }
    if (!o.json) fprintf(stderr, "loading %s\n", o.model);
    if (pl_model_open(o.model, 0, &m, err, sizeof err) || pl_session_create(m, 2048, o.threads, &s, err, sizeof err) ||
        pl_session_create(m, 2048, o.threads, &ref, err, sizeof err) ||
        pl_session_create(m, 2048, o.threads, &other, err, sizeof err)) {
        fprintf(stderr, "probelogits: %s\n", err);
        goto out;
    }
    pl_session_set_fast(s, o.fast), pl_session_set_fast(ref, o.fast), pl_session_set_fast(other, o.fast);
    const char *tmpl = o.tmpl ? o.tmpl : pl_text_to_id(m, "<|start_header_id|>", 19) >= 0 ? "llama3" : "chatml";
    const char *labels[2] = {" Yes", " No"};
    const pl_probe_params pp = {.template_name = tmpl,
                                .system = system,
                                .questions = &question,
                                .n_questions = 1,
                                .answer_prefix = "Answer:",
                                .labels = labels,
                                .n_labels = 2,
                                .alpha = 0.0,
                                .content_free = labels,
                                .n_content_free = 0};
    double t0 = pl_now();
    if (pl_probe_create(s, &pp, &p, err, sizeof err)) {
        fprintf(stderr, "probelogits: %s\n", err);
        goto out;
    }
    /* prefix evaluation, timed on its own session */
    int32_t n_prefix = pl_probe_prefix_tokens(p);
    char *full0 = pl_probe_render(p, 0, "x");
    size_t n_ids = 0;
    pl_tokenize(m, full0, strlen(full0), PL_TOK_ADD_SPECIAL | PL_TOK_PARSE_SPECIAL, ids, 8192, &n_ids, err, sizeof err);
    free(full0);
    t0 = pl_now();
    rc = pl_session_eval(ref, ids, (size_t)n_prefix, PL_EVAL_LAST);
    const double prefix_ms = (pl_now() - t0) * 1e3;

    /* 1. verify: cached one-by-one, batched, and uncached whole prompt agree bit for bit */
    const size_t n_verify = n < 8 ? n : 8;
    int verified = rc == PL_OK;
    for (size_t i = 0; i < n_verify && verified; i++) {
        if (pl_probe_classify(p, 0, actions[i], lens[i], &res[i]) != PL_OK) { /* e.g. an action too long */
            fprintf(stderr, "probelogits: action %zu: %s\n", i, pl_probe_errmsg(p));
            goto out;
        }
        char *full = pl_probe_render(p, 0, actions[i]);
        size_t nf = 0;
        verified = verified && full &&
                   pl_tokenize(m, full, strlen(full), PL_TOK_ADD_SPECIAL | PL_TOK_PARSE_SPECIAL, ids, 8192, &nf, err,
                               sizeof err) == PL_OK &&
                   pl_session_truncate(ref, 0) == PL_OK && pl_session_eval(ref, ids, nf, PL_EVAL_LAST) == PL_OK;
        const float *row = verified ? pl_session_logits(ref, 0) : NULL;
        verified = verified && row && (double)row[res[i].token_ids[0]] == res[i].logits[0] &&
                   (double)row[res[i].token_ids[1]] == res[i].logits[1];
        free(full);
        progress("verifying", i + 1, n_verify, o.json);
    }
    verified = verified && pl_probe_batch(p, 0, actions, lens, n_verify, res2) == PL_OK;
    for (size_t i = 0; i < n_verify && verified; i++)
        verified = !memcmp(res[i].logits, res2[i].logits, sizeof res[i].logits);
    if (!verified) {
        fprintf(stderr, "probelogits: verification FAILED: cached/batched probes differ from the whole-prompt pass\n");
        goto out;
    }
    if (!o.json)
        fprintf(stderr, "verified: cached, batched and uncached probes agree bit for bit (%zu actions)\n", n_verify);

    /* 2. per-probe latency, one action at a time (prefix restored from the checkpoint) */
    double suffix_tokens = 0;
    for (size_t i = 0; i < n; i++) {
        t0 = pl_now();
        if (pl_probe_classify(p, 0, actions[i], lens[i], &res[i])) {
            fprintf(stderr, "probelogits: %s\n", pl_probe_errmsg(p));
            goto out;
        }
        lat[i] = (pl_now() - t0) * 1e3;
        suffix_tokens += res[i].n_tokens;
        progress("probes, one at a time", i + 1, n, o.json);
    }
    double mean = 0;
    for (size_t i = 0; i < n; i++) mean += lat[i] / (double)n;
    const double p50 = percentile(lat, n, 0.5), p95 = percentile(lat, n, 0.95);

    /* 3. 8 actions per batched pass */
    t0 = pl_now();
    for (size_t i = 0; i < n; i += 8) {
        const size_t k = n - i < 8 ? n - i : 8;
        if (pl_probe_batch(p, 0, actions + i, lens + i, k, res2 + i)) {
            fprintf(stderr, "probelogits: %s\n", pl_probe_errmsg(p));
            goto out;
        }
        progress("probes, 8 per pass", i + k, n, o.json);
    }
    const double batch_ms = (pl_now() - t0) * 1e3 / (double)n;

    /* 4. prompt processing from an empty cache */
    const int32_t n_vocab = pl_model_n_vocab(m);
    for (int i = 0; i < 512; i++) ids[i] = (int32_t)((1103515245u * (unsigned)i + 12345u) % (unsigned)n_vocab);
    double pp_tps[2];
    const int pp_n[2] = {64, 512};
    for (int k = 0; k < 2; k++) {
        double best = 1e30;
        for (int rep = 0; rep < 2; rep++) {
            pl_session_truncate(ref, 0);
            t0 = pl_now();
            pl_session_eval(ref, ids, (size_t)pp_n[k], PL_EVAL_LAST);
            best = fmin(best, pl_now() - t0);
        }
        pp_tps[k] = pp_n[k] / best;
        progress("prompt processing", (size_t)k + 1, 2, o.json);
    }

    /* 5. checkpoint restore: into another session (a full copy) */
    pl_session_truncate(s, 0);
    pl_session_eval(s, ids, (size_t)n_prefix, PL_EVAL_LAST);
    pl_session_checkpoint(s, &cp);
    double restore_ms = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        pl_session_truncate(other, 0);
        t0 = pl_now();
        pl_session_restore(other, cp);
        restore_ms = fmin(restore_ms, (pl_now() - t0) * 1e3);
    }
    /* the probe path's restore: same session, prefix slots untouched (O(prefix) compares) */
    double restore_fast_ms = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        pl_session_eval(s, ids + n_prefix, 8, PL_EVAL_LAST);
        t0 = pl_now();
        pl_session_restore(s, cp);
        restore_fast_ms = fmin(restore_fast_ms, (pl_now() - t0) * 1e3);
    }

    /* 6. a saved snapshot: load it into a fresh session, time the first probe */
    char snap[64];
    snprintf(snap, sizeof snap, "/tmp/probelogits-bench-%d.snap", (int)getpid());
    double snap_load_ms = NAN, first_probe_ms = NAN;
    pl_probe *q = NULL;
    if (pl_probe_save(p, snap, err, sizeof err) == PL_OK) {
        t0 = pl_now();
        if (pl_probe_load(other, &pp, snap, &q, err, sizeof err) == PL_OK) {
            snap_load_ms = (pl_now() - t0) * 1e3;
            pl_probe_result r1;
            t0 = pl_now();
            if (pl_probe_classify(q, 0, actions[0], lens[0], &r1) == PL_OK) first_probe_ms = (pl_now() - t0) * 1e3;
        }
        remove(snap);
    }
    pl_probe_free(q);

    /* peak RSS before the read test's buffer; the expected budget is the
     * model file plus the KV caches of the 3 sessions here */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double rss_mb = (double)ru.ru_maxrss / 1024.0;
    const double model_mb = (double)gguf_file_size(m->gguf) / 1048576.0;
    const double kv_mb =
        3.0 * 2.0 * (double)m->hp.n_layer * 2048.0 * (double)m->hp.n_head_kv * m->hp.head_dim * 4.0 / 1048576.0;

    /* 7. generation, with a pass of the machine's read test after every 8
     * tokens (timed apart): the weights' GB/s in generation next to the
     * machine's over the same seconds (mean of the passes, and the fastest) */
    bw_buf = aligned_alloc(4096, BW_BYTES);
    if (!bw_buf) {
        fprintf(stderr, "probelogits: out of memory for the read test's %zu MiB\n", BW_BYTES >> 20);
        goto out;
    }
    for (size_t i = 0; i < BW_BYTES; i += 8) memcpy(bw_buf + i, &i, 8); /* every page touched: no zero-page reads */
    const int n_gen = 64, gen_block = 8;
    double tg_total = 0, bw_inv_sum = 0, machine_bw_best = 0;
    pl_session_truncate(ref, 0);
    pl_session_eval(ref, ids, 16, PL_EVAL_LAST);
    for (int i = 0; i < n_gen; i++) {
        t0 = pl_now();
        const float *row = pl_session_logits(ref, 0);
        int32_t best = pl_argmax(row, n_vocab);
        if (best < 0) best = 0; /* all NaN (random weights can overflow): any token keeps the timing honest */
        pl_session_eval(ref, &best, 1, PL_EVAL_LAST);
        tg_total += pl_now() - t0;
        if ((i + 1) % gen_block == 0) {
            const double g = bw_pass(bw_buf, o.threads);
            bw_inv_sum += 1.0 / g;                      /* equal bytes per pass: the harmonic mean is bytes over time */
            machine_bw_best = fmax(machine_bw_best, g); /* NaN-safe: fmax ignores a NaN pass */
        }
        progress("generation and read test", (size_t)i + 1, (size_t)n_gen, o.json);
    }
    const double machine_bw = (n_gen / gen_block) / bw_inv_sum; /* NaN when a pass failed */
    const double tg_s = tg_total / n_gen;
    const double bytes = weight_bytes_per_token(m);
    const double bw = bytes / tg_s / 1e9;

    if (o.json) {
        json_object *j = json_object_new_object(), *pj = json_object_new_object();
        json_object_object_add(j, "model", json_object_new_string(o.model));
        json_object_object_add(j, "isa", json_object_new_string(pl_kernels_get()->isa));
        json_object_object_add(j, "threads", json_object_new_int(o.threads));
        json_object_object_add(j, "fast", json_object_new_boolean(o.fast));
        json_object_object_add(j, "template", json_object_new_string(tmpl));
        json_object_object_add(j, "verified", json_object_new_boolean(verified));
        json_object_object_add(j, "prefix_tokens", json_object_new_int(n_prefix));
        json_object_object_add(j, "suffix_tokens_mean", json_num(suffix_tokens / (double)n));
        json_object_object_add(j, "n_probes", json_object_new_int((int)n));
        json_object_object_add(j, "prefix_ms", json_num(prefix_ms));
        json_object_object_add(pj, "mean", json_num(mean));
        json_object_object_add(pj, "p50", json_num(p50));
        json_object_object_add(pj, "p95", json_num(p95));
        json_object_object_add(j, "probe_ms", pj);
        json_object_object_add(j, "probe_batch8_ms", json_num(batch_ms));
        json_object_object_add(j, "pp64_tps", json_num(pp_tps[0]));
        json_object_object_add(j, "pp512_tps", json_num(pp_tps[1]));
        json_object_object_add(j, "tg_tps", json_num(1.0 / tg_s));
        json_object_object_add(j, "restore_ms", json_num(restore_fast_ms));
        json_object_object_add(j, "restore_copy_ms", json_num(restore_ms));
        json_object_object_add(j, "snapshot_load_ms", json_num(snap_load_ms));
        json_object_object_add(j, "snapshot_first_probe_ms", json_num(first_probe_ms));
        json_object_object_add(j, "model_mb", json_num(model_mb));
        json_object_object_add(j, "kv_mb", json_num(kv_mb));
        json_object_object_add(j, "bandwidth_gbps", json_num(bw));
        json_object_object_add(j, "machine_bandwidth_gbps", json_num(machine_bw));
        json_object_object_add(j, "machine_bandwidth_best_gbps", json_num(machine_bw_best));
        json_object_object_add(j, "peak_rss_mb", json_num(rss_mb));
        puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(j);
    } else {
        printf("model            %s (%s kernels, %d threads, template %s)\n", o.model, pl_kernels_get()->isa, o.threads,
               tmpl);
        printf("verified         cached = batched = uncached, bit for bit\n");
        printf("prefix           %d tokens in %.1f ms\n", n_prefix, prefix_ms);
        printf(
            "probe            mean %.2f ms  p50 %.2f ms  p95 %.2f ms  (%zu actions, %.1f suffix tokens on average)\n",
            mean, p50, p95, n, suffix_tokens / (double)n);
        printf("probe, 8/pass    %.2f ms per probe\n", batch_ms);
        printf("prompt           pp64 %.0f tok/s  pp512 %.0f tok/s\n", pp_tps[0], pp_tps[1]);
        printf("generation       %.1f tok/s  (%.1f MB of weights per token)\n", 1.0 / tg_s, bytes / 1e6);
        printf(
            "bandwidth        %.1f GB/s achieved in generation = %.0f %% of the machine's read bandwidth, %.1f GB/s\n"
            "                 (mean of 8 passes between blocks of generated tokens; fastest pass %.1f GB/s)\n",
            bw, 100.0 * bw / machine_bw, machine_bw, machine_bw_best);
        printf("restore          %.4f ms on the probe path (same session); %.3f ms copied into another session\n",
               restore_fast_ms, restore_ms);
        printf("snapshot         loaded in %.1f ms; first probe after it %.2f ms (mean of all probes %.2f ms)\n",
               snap_load_ms, first_probe_ms, mean);
        printf("peak RSS         %.0f MB (model file %.0f MB + KV caches of 3 sessions %.0f MB = %.0f MB)\n", rss_mb,
               model_mb, kv_mb, model_mb + kv_mb);
    }
    status = 0;
out:
    free(bw_buf);
    json_object_put(wl);
    free(actions);
    free(lens);
    free(lat);
    free(res);
    free(res2);
    free(ids);
    pl_kv_state_free(cp);
    pl_probe_free(p);
    pl_session_free(s);
    pl_session_free(ref);
    pl_session_free(other);
    pl_model_close(m);
    return status;
}
