/* cli_eval.c — the `eval` command (CLI only): runs the probe (and/or the
 * generate-and-parse baseline) over a labelled dataset with a progress bar,
 * then writes results.json, report.md and plots through pl_eval_write.
 *
 *   probelogits eval -m MODEL --dataset NAME|FILE [--policy FILE] [--template NAME]
 *                    [--verbalizer POS,NEG ...] [--alpha LIST] [--limit N] [--seed S]
 *                    [--out DIR] [--mode probe|generate|both] [-t N] [--bootstrap B]
 *                    [--batch N] [--max-tokens N] [--per-item] */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_common.h"
#include "dataset.h"
#include "eval.h"
#include "policy.h"
#include "probelogits.h"

static const char usage_eval[] =
    "usage: probelogits eval -m MODEL --dataset NAME|FILE [options]\n"
    "Evaluates the probe on a labelled dataset: one forward pass per item (cached prefix, batched),\n"
    "an alpha sweep computed from the same raw logits, a threshold sweep, metrics with bootstrap 95%\n"
    "CIs, per-category rows, optionally the generate-and-parse baseline; writes DIR/results.json,\n"
    "DIR/report.md and DIR/plots/*.png (gnuplot, Debian package gnuplot-nox).\n"
    "  -m FILE                model GGUF\n"
    "  --dataset NAME|FILE    os-actions, harmbench, xstest, toxicchat, gtfobins, nl2bash, redcode-exec,\n"
    "                         atomic-red-team, or a .jsonl/.csv file\n"
    "  --policy FILE          YAML policy: template, system text, labels, question, alpha, deny/warn\n"
    "                         (default: the built-in policy; its default class is used)\n"
    "  --template NAME        override the policy's template (auto, chatml, llama3, ..., plain, none)\n"
    "  --verbalizer POS,NEG   a verbalizer pair, positive label first (e.g. Yes,No or Dangerous,Safe);\n"
    "                         repeat for an ensemble (mean calibrated log-odds). The question is the\n"
    "                         policy's when the pair equals the policy's labels, else generated from the\n"
    "                         pair (\"... Answer Safe or Dangerous.\"). Default: the policy's labels.\n"
    "  --alpha LIST           alpha values to sweep (default 0,0.25,0.5,0.8,1,1.5,2); the headline uses\n"
    "                         the policy's alpha\n"
    "  --limit N              evaluate a seeded random sample of N items\n"
    "  --seed S               seed of the sample and the bootstrap (default 1)\n"
    "  --out DIR              output directory (default eval-out)\n"
    "  --mode M               probe (default), generate, or both\n"
    "  -t N                   threads (default 2)\n"
    "  --bootstrap B          bootstrap resamples (default 1000)\n"
    "  --batch N              actions per batched probe pass (default 8)\n"
    "  --max-tokens N         generation: tokens to decode at most (default 8)\n"
    "  --per-item             also write every item's scores into results.json\n";

#define DEFAULT_ALPHAS "0,0.25,0.5,0.8,1,1.5,2"
#define MAX_ALPHAS 64

typedef struct eval_opts {
    const char *model, *dataset, *policy, *tmpl, *alphas, *out, *mode;
    const char *verbalizers[PL_EVAL_MAX_PAIRS];
    int n_verbalizers, threads, batch, max_tokens, per_item;
    long long limit;
    unsigned long long seed, bootstrap;
} eval_opts;

static int parse_ull(const char *s, unsigned long long max, unsigned long long *out) {
    if (!s || !*s || *s == '-') return -1;
    char *end;
    errno = 0;
    const unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max) return -1;
    *out = v;
    return 0;
}

static int parse_opts(int argc, char **argv, eval_opts *o) {
    *o = (eval_opts){.threads = 2,
                     .batch = 8,
                     .max_tokens = 8,
                     .limit = -1,
                     .seed = 1,
                     .bootstrap = 1000,
                     .out = "eval-out",
                     .mode = "probe",
                     .alphas = DEFAULT_ALPHAS};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_eval, stdout);
            return -1;
        }
        if (!strcmp(a, "--per-item")) {
            o->per_item = 1;
            continue;
        }
        if (a[0] != '-') {
            fprintf(stderr, "probelogits: unexpected argument '%s'\n", a);
            return cli_die_usage(usage_eval, NULL);
        }
        if (!next) {
            fprintf(stderr, "probelogits: %s needs a value\n", a);
            return cli_die_usage(usage_eval, NULL);
        }
        unsigned long long v = 0;
        i++;
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            o->model = next;
        else if (!strcmp(a, "--dataset"))
            o->dataset = next;
        else if (!strcmp(a, "--policy"))
            o->policy = next;
        else if (!strcmp(a, "--template"))
            o->tmpl = next;
        else if (!strcmp(a, "--alpha"))
            o->alphas = next;
        else if (!strcmp(a, "-o") || !strcmp(a, "--out"))
            o->out = next;
        else if (!strcmp(a, "--mode")) {
            if (strcmp(next, "probe") && strcmp(next, "generate") && strcmp(next, "both"))
                return cli_die_usage(usage_eval, "--mode is probe, generate or both");
            o->mode = next;
        } else if (!strcmp(a, "--verbalizer")) {
            if (o->n_verbalizers == PL_EVAL_MAX_PAIRS) return cli_die_usage(usage_eval, "at most 8 --verbalizer pairs");
            o->verbalizers[o->n_verbalizers++] = next;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (parse_ull(next, 256, &v) || v < 1)
                return cli_die_usage(usage_eval, "-t needs a thread count in 1..256");
            o->threads = (int)v;
        } else if (!strcmp(a, "--batch")) {
            if (parse_ull(next, 256, &v) || v < 1) return cli_die_usage(usage_eval, "--batch needs a number in 1..256");
            o->batch = (int)v;
        } else if (!strcmp(a, "--max-tokens")) {
            if (parse_ull(next, PL_GEN_MAX_TOKENS, &v) || v < 1)
                return cli_die_usage(usage_eval, "--max-tokens needs a number in 1..32");
            o->max_tokens = (int)v;
        } else if (!strcmp(a, "--limit")) {
            if (parse_ull(next, (unsigned long long)1 << 40, &v) || v < 1)
                return cli_die_usage(usage_eval, "--limit needs a positive count");
            o->limit = (long long)v;
        } else if (!strcmp(a, "--seed")) {
            if (parse_ull(next, UINT64_MAX, &v))
                return cli_die_usage(usage_eval, "--seed needs a non-negative integer");
            o->seed = v;
        } else if (!strcmp(a, "--bootstrap")) {
            if (parse_ull(next, 1000000, &v) || v < 1) return cli_die_usage(usage_eval, "--bootstrap needs 1..1000000");
            o->bootstrap = v;
        } else {
            fprintf(stderr, "probelogits: unknown option %s\n", a);
            return cli_die_usage(usage_eval, NULL);
        }
    }
    if (!o->model) return cli_die_usage(usage_eval, "missing -m MODEL");
    if (!o->dataset) return cli_die_usage(usage_eval, "missing --dataset NAME|FILE");
    return 0;
}

/* Parses "a,b,c" into values in [0, 16]; returns the count or -1. */
static int parse_alphas(const char *s, double *out, int max) {
    char *copy = strdup(s);
    if (!copy) return -1;
    int n = 0;
    for (char *p = copy, *tok; (tok = strsep(&p, ","));) {
        char *end;
        const double v = strtod(tok, &end);
        if (end == tok || *end || !(v >= 0 && v <= 16) || n == max) {
            free(copy);
            return -1;
        }
        out[n++] = v;
    }
    free(copy);
    return n;
}

/* Progress bar with rate and ETA on stderr. */
static void progress(const char *what, size_t done, size_t total, double t0) {
    const double el = pl_now() - t0, rate = el > 0 ? (double)done / el : 0;
    const double eta = rate > 0 ? (double)(total - done) / rate : 0;
    const int width = 30, fill = total ? (int)((double)done / (double)total * width) : width;
    char bar[64];
    for (int k = 0; k < width; k++) bar[k] = k < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r%-8s [%s] %zu/%zu %3.0f%%  %.1f items/s  ETA %d:%02d ", what, bar, done, total,
            total ? 100.0 * (double)done / (double)total : 100.0, rate, (int)eta / 60, (int)eta % 60);
    if (done == total) fputc('\n', stderr);
    fflush(stderr);
}

/* Creates a probe; when a label merges with the end of the prompt, retries
 * with the labels written with a leading space (" Yes"). */
static int make_probe(pl_session *s, pl_probe_params *pp, pl_probe **p, char *err, size_t cap) {
    int rc = pl_probe_create(s, pp, p, err, cap);
    if (rc != PL_ERR_ARG || !pp->labels) return rc;
    char *spaced[PL_MAX_LABELS] = {0};
    const char *sl[PL_MAX_LABELS];
    int ok = 1;
    for (int k = 0; k < pp->n_labels; k++) {
        if (asprintf(&spaced[k], " %s", pp->labels[k]) < 0) spaced[k] = NULL, ok = 0;
        sl[k] = spaced[k];
    }
    if (ok) {
        const char *const *orig = pp->labels;
        char err2[512];
        pp->labels = sl;
        if (pl_probe_create(s, pp, p, err2, sizeof err2) == PL_OK) rc = PL_OK;
        pp->labels = orig;
    }
    for (int k = 0; k < pp->n_labels; k++) free(spaced[k]);
    return rc;
}

int cli_eval(int argc, char **argv) {
    eval_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    double alphas[MAX_ALPHAS];
    const int n_alphas = parse_alphas(o.alphas, alphas, MAX_ALPHAS);
    if (n_alphas < 1) return cli_die_usage(usage_eval, "--alpha needs a comma-separated list of numbers in [0, 16]");
    const int do_probe = strcmp(o.mode, "generate") != 0, do_gen = strcmp(o.mode, "probe") != 0;
    const double t_start = pl_now();

    char ebuf[512] = "";
    pl_err err = {ebuf, sizeof ebuf};
    int status = 1;
    pl_policy *pol = NULL;
    pl_dataset *ds = NULL;
    pl_model *m = NULL;
    pl_session *s = NULL;
    pl_probe *probes[PL_EVAL_MAX_PAIRS] = {0};
    pl_generator *gen = NULL;
    char *vcopy[PL_EVAL_MAX_PAIRS] = {0};
    const char *pos[PL_EVAL_MAX_PAIRS], *neg[PL_EVAL_MAX_PAIRS], *questions[PL_EVAL_MAX_PAIRS];
    char qbuf[PL_EVAL_MAX_PAIRS][512];
    pl_probe_result *res = NULL;
    double *probe_ms = NULL;
    pl_gen_result *gres = NULL;
    int *labels = NULL;
    const char **cats = NULL, **ids = NULL, **texts = NULL;
    size_t *lens = NULL;
    int n_pairs = 0;

    if (pl_eval_check_gnuplot(&err)) goto fail; /* fail before the long run, not after */
    if (o.policy ? pl_policy_load(o.policy, &pol, &err) : pl_policy_default(&pol, &err)) goto fail;
    const pl_policy_class *pc = pl_policy_class_find(pol, NULL);
    if (!pc) {
        pl_fail(&err, PL_ERR_STATE, "the policy has no default class");
        goto fail;
    }
    if (pl_dataset_load(o.dataset, &ds, &err)) goto fail;
    if (o.limit > 0 && pl_dataset_limit(ds, (size_t)o.limit, o.seed, &err)) goto fail;
    if (ds->n == 0) {
        pl_fail(&err, PL_ERR_ARG, "the dataset %s has no items", o.dataset);
        goto fail;
    }
    const size_t n = ds->n;

    /* verbalizer pairs and their questions */
    if (o.n_verbalizers == 0) {
        pos[0] = pol->labels[0];
        neg[0] = pol->labels[1];
        questions[0] = pc->question;
        n_pairs = 1;
    }
    for (int v = 0; v < o.n_verbalizers; v++) {
        char *c = strdup(o.verbalizers[v]), *comma = c ? strchr(c, ',') : NULL;
        vcopy[v] = c;
        if (!comma || comma == c || !comma[1] || strchr(comma + 1, ',')) {
            fprintf(stderr, "probelogits: --verbalizer needs POS,NEG (two labels, positive first), got '%s'\n",
                    o.verbalizers[v]);
            status = 2;
            goto out;
        }
        *comma = '\0';
        pos[v] = c;
        neg[v] = comma + 1;
        if (pol->n_labels == 2 && !strcmp(pos[v], pol->labels[0]) && !strcmp(neg[v], pol->labels[1]))
            questions[v] = pc->question;
        else if (pl_eval_question(pos[v], neg[v], qbuf[v], sizeof qbuf[v], &err))
            goto fail;
        else
            questions[v] = qbuf[v];
        n_pairs++;
    }

    size_t cells;
    if (!pl_mul_ok(n, (size_t)n_pairs, &cells)) {
        pl_fail(&err, PL_ERR_RANGE, "too many items");
        goto fail;
    }
    labels = calloc(n, sizeof *labels);
    cats = calloc(n, sizeof *cats);
    ids = calloc(n, sizeof *ids);
    texts = calloc(n, sizeof *texts);
    lens = calloc(n, sizeof *lens);
    res = do_probe ? calloc(cells, sizeof *res) : NULL;
    probe_ms = do_probe ? calloc(n, sizeof *probe_ms) : NULL;
    gres = do_gen ? calloc(n, sizeof *gres) : NULL;
    if (!labels || !cats || !ids || !texts || !lens || (do_probe && (!res || !probe_ms)) || (do_gen && !gres)) {
        pl_fail(&err, PL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        labels[i] = ds->items[i].label;
        cats[i] = ds->items[i].category;
        ids[i] = ds->items[i].id;
        texts[i] = ds->items[i].text;
        lens[i] = strlen(texts[i]);
    }

    if (pl_model_open(o.model, 0, &m, ebuf, sizeof ebuf) || pl_session_create(m, 0, o.threads, &s, ebuf, sizeof ebuf))
        goto fail;
    const char *tmpl = o.tmpl ? o.tmpl : pol->template_name;
    pl_probe_params pps[PL_EVAL_MAX_PAIRS];
    const char *plabels[PL_EVAL_MAX_PAIRS][PL_MAX_LABELS];
    for (int p = 0; p < n_pairs; p++) {
        const int from_policy = o.n_verbalizers == 0;
        if (from_policy)
            for (int k = 0; k < pol->n_labels; k++) plabels[p][k] = pol->labels[k];
        else
            plabels[p][0] = pos[p], plabels[p][1] = neg[p];
        pps[p] = (pl_probe_params){
            .template_name = tmpl,
            .system = pol->system,
            .questions = &questions[p],
            .n_questions = 1,
            .answer_prefix = pol->answer_prefix,
            .labels = plabels[p],
            .n_labels = from_policy ? pol->n_labels : 2,
            .alpha = pc->alpha,
            .content_free = (const char *const *)pol->content_free,
            .n_content_free = pol->n_content_free,
        };
    }
    fprintf(stderr, "probelogits: %s: %zu items (%zu positive), model %s, mode %s, %d verbalizer pair%s\n", ds->name, n,
            ds->n_pos, o.model, o.mode, n_pairs, n_pairs > 1 ? "s" : "");

    double prefix_ms = 0;
    if (do_probe) {
        const double tp = pl_now();
        for (int p = 0; p < n_pairs; p++)
            if (make_probe(s, &pps[p], &probes[p], ebuf, sizeof ebuf)) goto fail;
        prefix_ms = (pl_now() - tp) * 1e3;
        const double t0 = pl_now();
        for (size_t first = 0; first < n; first += (size_t)o.batch) {
            const size_t cnt = n - first < (size_t)o.batch ? n - first : (size_t)o.batch;
            for (int p = 0; p < n_pairs; p++) {
                pl_probe_result *r = res + (size_t)p * n + first;
                if (pl_probe_batch(probes[p], 0, texts + first, lens + first, cnt, r)) {
                    fprintf(stderr, "\n");
                    pl_fail(&err, PL_ERR_STATE, "probing items %zu..%zu: %s", first, first + cnt - 1,
                            pl_probe_errmsg(probes[p]));
                    goto fail;
                }
                for (size_t i = 0; i < cnt; i++) probe_ms[first + i] += r[i].ms;
            }
            progress("probe", first + cnt, n, t0);
        }
    }
    if (do_gen) {
        const char *gl[PL_MAX_LABELS];
        for (int k = 0; k < pps[0].n_labels; k++) gl[k] = pps[0].labels[k];
        if (pl_generator_create(s, &pps[0], 0, gl, pps[0].n_labels, o.max_tokens, &gen, &err)) goto fail;
        const double t0 = pl_now();
        for (size_t i = 0; i < n; i++) {
            if (pl_generate(gen, texts[i], lens[i], &gres[i], &err)) {
                fprintf(stderr, "\n");
                goto fail;
            }
            if ((i + 1) % 4 == 0 || i + 1 == n) progress("generate", i + 1, n, t0);
        }
    }

    const char *gen_labels[2] = {pps[0].labels[0], pps[0].labels[1]};
    char dpath[4096];
    const char *dataset_path = pl_dataset_path(o.dataset, dpath, sizeof dpath, NULL) == PL_OK ? dpath : ds->path;
    pl_eval_data d = {
        .model = o.model,
        .dataset = ds->name,
        .dataset_path = dataset_path,
        .policy = o.policy,
        .template_name = do_probe ? pl_probe_template(probes[0]) : tmpl,
        .mode = o.mode,
        .n = n,
        .labels = labels,
        .categories = cats,
        .ids = ids,
        .n_pairs = n_pairs,
        .pair_pos = pos,
        .pair_neg = neg,
        .questions = questions,
        .res = res,
        .probe_ms = probe_ms,
        .gen = gres,
        .gen_labels = gen_labels,
        .alphas = alphas,
        .n_alphas = (size_t)n_alphas,
        .alpha = pc->alpha,
        .deny = pc->deny,
        .warn = pc->warn,
        .bootstrap = (size_t)o.bootstrap,
        .seed = o.seed,
        .per_item = o.per_item,
        .threads = o.threads,
        .batch = o.batch,
        .prefix_tokens = do_probe ? pl_probe_prefix_tokens(probes[0]) : 0,
        .prefix_ms = prefix_ms,
        .wall_s = pl_now() - t_start,
    };
    fprintf(stderr, "probelogits: computing metrics (%llu bootstrap resamples) and plots\n", o.bootstrap);
    if (pl_eval_write(&d, o.out, &err)) goto fail;
    printf("wrote %s/results.json, %s/report.md, %s/plots/ (%zu items, %.1f s)\n", o.out, o.out, o.out, n,
           pl_now() - t_start);
    status = 0;
    goto out;
fail:
    fprintf(stderr, "probelogits: %s\n", ebuf[0] ? ebuf : "evaluation failed");
    status = 1;
out:
    for (int p = 0; p < PL_EVAL_MAX_PAIRS; p++) {
        pl_probe_free(probes[p]);
        free(vcopy[p]);
    }
    pl_generator_free(gen);
    pl_session_free(s);
    pl_model_close(m);
    free(res);
    free(probe_ms);
    free(gres);
    free(labels);
    free(cats);
    free(ids);
    free(texts);
    free(lens);
    pl_dataset_free(ds);
    pl_policy_free(pol);
    return status;
}
