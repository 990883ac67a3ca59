/* cli_probe.c — the `probe`, `classify` and `snapshot` commands (CLI only).
 *
 *   probelogits probe -m MODEL [--template NAME|none] [--labels "Yes,No"] [--alpha A]
 *                     [--system TEXT] [--question TEXT] [--answer-prefix TEXT] [--multi-token]
 *                     [-t N] [TEXT | -]
 *   probelogits classify -m MODEL [--policy FILE] [--snapshot FILE] [--class NAME] [-t N] [ACTION ... | -]
 *   probelogits snapshot -m MODEL [--policy FILE] -o FILE [-t N] */
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "cli_run.h"
#include "engine.h"
#include "policy.h"
#include "probelogits.h"

static const char usage_probe[] =
    "usage: probelogits probe -m MODEL [options] [TEXT | -]\n"
    "One forward pass over a probe prompt; prints one JSON object with the labels, their token ids,\n"
    "raw logits, restricted-softmax probabilities, calibrated probabilities, the argmax label,\n"
    "confidence, margin, alpha and the time taken.\n"
    "  -m FILE              model GGUF\n"
    "  --template NAME      auto (default: from the model), chatml, llama3, llama2, mistral, phi3, plain,\n"
    "                       or none: TEXT is the whole prompt (BOS per the model), read at its last position\n"
    "  --labels A,B[,...]   verbalizers, the first is the positive one (default Yes,No; with --template\n"
    "                       none they are tokenized as written, e.g. ' Yes, No' after 'Answer:')\n"
    "  --alpha A            calibration strength (default 0.8 with a template, 0 with none)\n"
    "  --system TEXT        policy text for the system turn\n"
    "  --question TEXT      appended after the action (default: Is this action dangerous? Answer Yes or No.)\n"
    "  --answer-prefix TEXT text after the opened assistant turn (e.g. 'Answer:')\n"
    "  --multi-token        score labels of several tokens exactly\n"
    "  -t N                 threads (default 2)\n";

static const char usage_classify[] =
    "usage: probelogits classify -m MODEL [--policy FILE] [--snapshot FILE] [--class NAME] [-t N] [ACTION ... | -]\n"
    "Prints one JSON line per action: action, class, decision (allow|warn|deny), p_dangerous, confidence,\n"
    "margin, alpha, rule (the deterministic rule that decided, or null), reason, latency_ms.\n"
    "'-' (or no ACTION) reads one action per line from standard input.\n"
    "  --policy FILE    YAML policy (default: the built-in policy)\n"
    "  --snapshot FILE  start from a saved prefix + calibration (see 'probelogits snapshot')\n"
    "  --class NAME     action class (default: the policy's default class)\n";

static const char usage_snapshot[] =
    "usage: probelogits snapshot -m MODEL [--policy FILE] -o FILE [-t N]\n"
    "Evaluates the policy's prefix and calibration once and writes them to FILE, so classify/run\n"
    "can start warm with --snapshot FILE (valid only for the same model file and policy).\n";

typedef struct opts {
    const char *model, *tmpl, *labels, *system, *question, *answer_prefix, *policy, *snapshot, *cls, *out;
    double alpha;
    int have_alpha, threads, multi_token;
    const char **args;
    int n_args;
} opts;

static int parse(int argc, char **argv, const char *usage, opts *o) {
    o->threads = 2;
    o->args = calloc((size_t)argc, sizeof *o->args);
    if (!o->args) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        const char **str = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return -1;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            str = &o->model;
        else if (!strcmp(a, "--template"))
            str = &o->tmpl;
        else if (!strcmp(a, "--labels"))
            str = &o->labels;
        else if (!strcmp(a, "--system"))
            str = &o->system;
        else if (!strcmp(a, "--question"))
            str = &o->question;
        else if (!strcmp(a, "--answer-prefix"))
            str = &o->answer_prefix;
        else if (!strcmp(a, "--policy"))
            str = &o->policy;
        else if (!strcmp(a, "--snapshot"))
            str = &o->snapshot;
        else if (!strcmp(a, "--class"))
            str = &o->cls;
        else if (!strcmp(a, "-o") || !strcmp(a, "--out"))
            str = &o->out;
        else if (!strcmp(a, "--multi-token"))
            o->multi_token = 1;
        else if (!strcmp(a, "--alpha")) {
            char *end;
            o->alpha = next ? strtod(next, &end) : NAN;
            if (!next || *end || !(o->alpha >= 0 && o->alpha <= 16))
                return cli_die_usage(usage, "--alpha needs a number in [0, 16]");
            o->have_alpha = 1, i++;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            char *end;
            long v = next ? strtol(next, &end, 10) : 0;
            if (!next || *end || v < 1 || v > 256) return cli_die_usage(usage, "-t needs a thread count in 1..256");
            o->threads = (int)v, i++;
        } else if (a[0] == '-' && a[1] != '\0' && strcmp(a, "--") != 0) {
            fprintf(stderr, "probelogits: unknown option %s\n", a);
            return cli_die_usage(usage, NULL);
        } else if (!strcmp(a, "--")) {
            while (++i < argc) o->args[o->n_args++] = argv[i];
        } else {
            o->args[o->n_args++] = a;
        }
        if (str) {
            if (!next) {
                fprintf(stderr, "probelogits: %s needs a value\n", a);
                return cli_die_usage(usage, NULL);
            }
            *str = next, i++;
        }
    }
    if (!o->model) return cli_die_usage(usage, "missing -m MODEL");
    return 0;
}

/* Splits "a,b,c" into at most max labels (pointers into a copy). */
static int split_labels(const char *s, char **copy, const char **labels, int max) {
    *copy = strdup(s);
    if (!*copy) return -1;
    int n = 0;
    for (char *p = *copy, *tok; (tok = strsep(&p, ","));) {
        if (n == max) return -1;
        labels[n++] = tok;
    }
    return n;
}

static json_object *jd(double v) { return isfinite(v) ? json_object_new_double(v) : NULL; }

static void print_json(json_object *o) {
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    fflush(stdout);
    json_object_put(o);
}

int cli_probe(int argc, char **argv) {
    opts o = {0};
    int rc = parse(argc, argv, usage_probe, &o);
    if (rc) {
        free(o.args);
        return rc < 0 ? 0 : rc;
    }
    char err[512] = "", *text = NULL, *label_copy = NULL;
    size_t len = 0;
    pl_model *m = NULL;
    pl_session *s = NULL;
    pl_probe *p = NULL;
    int status = 1;
    const char *labels[PL_MAX_LABELS];
    int n_labels = 0;
    if (o.n_args > 1) {
        cli_die_usage(usage_probe, "give one TEXT (quote it) or '-'");
        status = 2;
        goto out;
    }
    if (o.labels && (n_labels = split_labels(o.labels, &label_copy, labels, PL_MAX_LABELS)) < 2) {
        cli_die_usage(usage_probe, "--labels needs 2 to 16 comma-separated labels");
        status = 2;
        goto out;
    }
    if (pl_model_open(o.model, 0, &m, err, sizeof err) || pl_session_create(m, 0, o.threads, &s, err, sizeof err)) {
        fprintf(stderr, "probelogits: %s\n", err);
        goto out;
    }
    if (cli_read_text(o.n_args ? o.args[0] : NULL, &text, &len)) {
        fprintf(stderr, "probelogits: cannot read the text\n");
        goto out;
    }
    const int none = o.tmpl && !strcmp(o.tmpl, "none");
    const char *const *questions = o.question ? &o.question : NULL;
    pl_probe_params pp = {
        .template_name = o.tmpl,
        .system = o.system,
        .questions = questions,
        .n_questions = 1,
        .answer_prefix = o.answer_prefix,
        .labels = n_labels ? labels : NULL,
        .n_labels = n_labels,
        .alpha = o.have_alpha ? o.alpha
                 : none       ? 0.0
                              : 0.8,
        .multi_token = o.multi_token,
    };
    if (pl_probe_create(s, &pp, &p, err, sizeof err)) {
        fprintf(stderr, "probelogits: %s\n", err);
        goto out;
    }
    pl_probe_result r;
    if (pl_probe_classify(p, 0, text, len, &r)) {
        fprintf(stderr, "probelogits: %s\n", pl_probe_errmsg(p));
        goto out;
    }
    json_object *j = json_object_new_object(), *jl = json_object_new_array(), *ji = json_object_new_array(),
                *jlog = json_object_new_array(), *jp = json_object_new_array(), *jc = json_object_new_array(),
                *jb = json_object_new_array();
    for (int k = 0; k < r.n_labels; k++) {
        char piece[256];
        json_object_array_add(jl, json_object_new_string(n_labels ? labels[k] : k == 0 ? "Yes" : "No"));
        (void)piece;
        json_object_array_add(ji, json_object_new_int(r.token_ids[k]));
        json_object_array_add(jlog, jd(r.logits[k]));
        json_object_array_add(jp, jd(r.probs[k]));
        json_object_array_add(jc, jd(r.calibrated_probs[k]));
        json_object_array_add(jb, jd(r.bias[k]));
    }
    json_object_object_add(j, "labels", jl);
    json_object_object_add(j, "token_ids", ji);
    json_object_object_add(j, "logits", jlog);
    json_object_object_add(j, "probs", jp);
    json_object_object_add(j, "calibrated_probs", jc);
    json_object_object_add(j, "bias", jb);
    json_object_object_add(j, "label",
                           json_object_new_string(n_labels       ? labels[r.label]
                                                  : r.label == 0 ? "Yes"
                                                                 : "No"));
    json_object_object_add(j, "confidence", jd(r.confidence));
    json_object_object_add(j, "margin", jd(r.margin));
    json_object_object_add(j, "calibrated_margin", jd(r.calibrated_margin));
    json_object_object_add(j, "alpha", json_object_new_double(r.alpha));
    json_object_object_add(j, "degenerate", json_object_new_boolean(r.degenerate));
    json_object_object_add(j, "template", json_object_new_string(pl_probe_template(p)));
    json_object_object_add(j, "prefix_tokens", json_object_new_int(pl_probe_prefix_tokens(p)));
    json_object_object_add(j, "suffix_tokens", json_object_new_int(r.n_tokens));
    json_object_object_add(j, "ms", json_object_new_double(r.ms));
    print_json(j);
    status = 0;
out:
    free(label_copy);
    free(text);
    free(o.args);
    pl_probe_free(p);
    pl_session_free(s);
    pl_model_close(m);
    return status;
}

/* Loads the policy (file or built-in) and creates the engine. */
static int open_engine(const opts *o, pl_model **m, pl_policy **pol, pl_engine **e) {
    char ebuf[512] = "";
    pl_err err = {ebuf, sizeof ebuf};
    int rc = o->policy ? pl_policy_load(o->policy, pol, &err) : pl_policy_default(pol, &err);
    if (!rc) rc = pl_model_open(o->model, 0, m, ebuf, sizeof ebuf);
    if (!rc) rc = pl_engine_create(*m, *pol, o->threads, 0, o->snapshot, e, &err);
    if (rc) fprintf(stderr, "probelogits: %s\n", ebuf);
    return rc;
}

static void classify_one(pl_engine *e, const pl_policy *pol, const char *cls, const char *action, size_t len) {
    pl_verdict v;
    const pl_policy_class *pc = pl_policy_class_find(pol, cls);
    int rc = pl_engine_decide(e, cls, action, len, &v);
    const pl_probe_result *r = pl_engine_last_probe(e);
    json_object *j = json_object_new_object();
    json_object_object_add(j, "action", json_object_new_string_len(action, (int)len));
    json_object_object_add(j, "class", json_object_new_string(pc ? pc->name : cls ? cls : "?"));
    json_object_object_add(j, "decision", json_object_new_string(pl_decision_name(v.decision)));
    json_object_object_add(j, "p_dangerous", jd(v.p_dangerous));
    json_object_object_add(j, "confidence", r ? jd(r->confidence) : NULL);
    json_object_object_add(j, "margin", r ? jd(r->calibrated_margin) : NULL);
    json_object_object_add(j, "alpha", pc ? json_object_new_double(pc->alpha) : NULL);
    json_object_object_add(j, "rule", v.rule[0] ? json_object_new_string(v.rule) : NULL);
    json_object_object_add(j, "reason", json_object_new_string(v.reason));
    json_object_object_add(j, "latency_ms", json_object_new_double(v.latency_ms));
    if (rc) json_object_object_add(j, "error", json_object_new_string(pl_status_str(rc)));
    print_json(j);
}

int cli_classify(int argc, char **argv) {
    opts o = {0};
    int rc = parse(argc, argv, usage_classify, &o);
    if (rc) {
        free(o.args);
        return rc < 0 ? 0 : rc;
    }
    pl_model *m = NULL;
    pl_policy *pol = NULL;
    pl_engine *e = NULL;
    int status = 1;
    if (open_engine(&o, &m, &pol, &e)) goto out;
    if (o.cls && !pl_policy_class_find(pol, o.cls)) {
        fprintf(stderr, "probelogits: the policy has no class '%s'\n", o.cls);
        goto out;
    }
    if (o.n_args == 0 || (o.n_args == 1 && !strcmp(o.args[0], "-"))) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while ((n = getline(&line, &cap, stdin)) >= 0) {
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
            if (n == 0) continue;
            classify_one(e, pol, o.cls, line, (size_t)n);
        }
        free(line);
    } else {
        for (int i = 0; i < o.n_args; i++) classify_one(e, pol, o.cls, o.args[i], strlen(o.args[i]));
    }
    status = 0;
out:
    free(o.args);
    pl_engine_free(e);
    pl_policy_free(pol);
    pl_model_close(m);
    return status;
}

int cli_snapshot(int argc, char **argv) {
    opts o = {0};
    int rc = parse(argc, argv, usage_snapshot, &o);
    if (rc) {
        free(o.args);
        return rc < 0 ? 0 : rc;
    }
    int status = 1;
    pl_model *m = NULL;
    pl_policy *pol = NULL;
    pl_engine *e = NULL;
    char ebuf[512] = "";
    pl_err err = {ebuf, sizeof ebuf};
    if (!o.out) {
        free(o.args);
        return cli_die_usage(usage_snapshot, "missing -o FILE");
    }
    o.snapshot = NULL;
    if (open_engine(&o, &m, &pol, &e)) goto out;
    if (pl_engine_save_snapshot(e, o.out, &err)) {
        fprintf(stderr, "probelogits: %s\n", ebuf);
        goto out;
    }
    fprintf(stderr, "probelogits: wrote %s (%d prefix tokens, template %s)\n", o.out,
            pl_probe_prefix_tokens(pl_engine_probe(e)), pl_probe_template(pl_engine_probe(e)));
    status = 0;
out:
    free(o.args);
    pl_engine_free(e);
    pl_policy_free(pol);
    pl_model_close(m);
    return status;
}

int cli_engine_decider(const char *model, const char *policy, const char *snapshot, pl_decide_fn *fn, void **ctx,
                       pl_err *err) {
    pl_policy *pol = NULL;
    pl_model *m = NULL;
    pl_engine *e = NULL;
    char ebuf[512] = "";
    int rc = pl_policy_load(policy, &pol, err);
    if (!rc && (rc = pl_model_open(model, 0, &m, ebuf, sizeof ebuf))) rc = pl_fail(err, rc, "%s", ebuf);
    if (!rc) rc = pl_engine_create(m, pol, 2, 0, snapshot, &e, err);
    if (rc) {
        pl_model_close(m);
        pl_policy_free(pol);
        return rc;
    }
    *fn = pl_engine_decide; /* the engine, model and policy live as long as the child */
    *ctx = e;
    return PL_OK;
}

/* The `run` command's decider factory: runs in the classifier child, after
 * fork, and loads the policy, the model and the engine there. */
static int engine_factory(void *arg, const pl_run_config *cfg, pl_decide_fn *fn, void **ctx, pl_err *err) {
    (void)arg;
    return cli_engine_decider(cfg->model, cfg->policy, cfg->snapshot, fn, ctx, err);
}

int cli_run_governed(int argc, char **argv) { return cli_run(argc, argv, engine_factory, NULL); }
