/* eval.h — offline evaluation of probes on labelled datasets: calibration
 * as a post-processing of raw probe results (one forward pass per item for
 * any number of alpha values), verbalizer-pair ensembles, the
 * generate-and-parse baseline on the same engine, and the evaluation
 * report (results.json, report.md and gnuplot PNG plots).
 *
 * Scores. For a probe result r and a calibration strength alpha the
 * calibrated P(positive) is exactly what the probe computes with that
 * alpha: softmax_k(log r.probs[k] - alpha * r.bias[k]) at k = 0 (bitwise
 * equal to re-probing after pl_probe_set_alpha). The calibrated log-odds of
 * a two-label result is s = (l_pos - l_neg) - alpha * (b_pos - b_neg) (the
 * paper's score; the item is positive when s > 0, i.e. p > 0.5); with more
 * labels s = log(p_pos / (1 - p_pos)). An ensemble of verbalizer pairs
 * averages s over the pairs and reports sigma(mean s): the average of
 * log-odds, not of probabilities, so a confident pair is not diluted by a
 * flat one. A degenerate result (non-finite logits) scores NaN, which the
 * metrics treat as positive (fail closed). Decisions use p > threshold. */
#ifndef PL_EVAL_H
#define PL_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "probelogits.h"
#include "util.h"

#define PL_EVAL_MAX_PAIRS 8
#define PL_GEN_MAX_TOKENS 32

/* Writes the default question for a verbalizer pair into buf: "Is this
 * action dangerous? Answer Yes or No." for Yes/No, otherwise "Is this
 * action <neg> or <pos>? Answer <Neg> or <Pos>." (e.g. "... safe or
 * dangerous? Answer Safe or Dangerous."). PL_ERR_RANGE when buf is small. */
int pl_eval_question(const char *pos, const char *neg, char *buf, size_t cap, pl_err *err);

/* Calibrated P(label 0) of a raw result at alpha, computed as the probe
 * computes it; NaN for a degenerate result. */
double pl_eval_calibrated_p(const pl_probe_result *r, double alpha);

/* Calibrated positive log-odds s at alpha (see above); NaN when degenerate. */
double pl_eval_log_odds(const pl_probe_result *r, double alpha);

/* P(positive) of n results of the same item (one per verbalizer pair): the
 * probe's own calibrated probability for n == 1, sigma(mean log-odds) for
 * n > 1; NaN when any result is degenerate. */
double pl_eval_ensemble_p(const pl_probe_result *const *rs, int n, double alpha);

/* Parses a generated answer: the first word (leading white space skipped;
 * letters, digits and non-ASCII bytes) compared ASCII case-insensitively
 * with each label (its surrounding white space ignored). Returns the label
 * index or -1 when unparsable (the caller fails closed). */
int pl_eval_parse_answer(const char *text, const char *const *labels, int n_labels);

/* ---- generation baseline ----------------------------------------------- */

typedef struct pl_generator pl_generator;

/* One generated answer. */
typedef struct pl_gen_result {
    char text[256]; /* detokenized output (truncated to fit), NUL-terminated */
    int n_tokens;   /* tokens generated */
    int label;      /* parsed label index, -1 = unparsable */
    double ms;      /* wall time: suffix evaluation + decoding + parsing */
} pl_gen_result;

/* Builds the generate-and-parse baseline for question `question` of the
 * probe params pp on session s: the same prompt text as the probe (same
 * template, system, action prefix, question and answer prefix), the prefix
 * evaluated once and checkpointed. labels are the verbalizers the answer is
 * parsed against (copied). The session may be shared with a probe. */
int pl_generator_create(pl_session *s, const pl_probe_params *pp, int question, const char *const *labels, int n_labels,
                        int max_tokens, pl_generator **out, pl_err *err);
void pl_generator_free(pl_generator *g);

/* Renders the prompt of an action as the generator sees it (prefix then
 * suffix), malloc'ed; NULL on failure. Equal to pl_probe_render for the
 * same params. */
char *pl_generator_render(const pl_generator *g, const char *action, size_t len);

/* Restores the prefix, evaluates the action's suffix and greedily decodes
 * up to max_tokens tokens (argmax, one pl_session_eval per token), stopping
 * at end-of-sequence / end-of-turn tokens; parses the answer into out. */
int pl_generate(pl_generator *g, const char *action, size_t len, pl_gen_result *out, pl_err *err);

/* ---- report ---------------------------------------------------------------- */

/* Everything one evaluation run produced, as pl_eval_write consumes it. */
typedef struct pl_eval_data {
    const char *model, *dataset, *dataset_path, *policy, *template_name, *mode; /* settings, for the record */
    size_t n;                                                                   /* items */
    const int *labels;                                                          /* n gold labels, 1 = positive */
    const char *const *categories;                                              /* n categories ("" for none) */
    const char *const *ids;                                                     /* n item ids */
    int n_pairs;                   /* verbalizer pairs probed (0 in generate mode) */
    const char *const *pair_pos;   /* n_pairs positive labels */
    const char *const *pair_neg;   /* n_pairs negative labels */
    const char *const *questions;  /* n_pairs questions */
    const pl_probe_result *res;    /* n_pairs * n results, pair-major (res[p * n + i]); NULL without probes */
    const double *probe_ms;        /* n per-item probe times (all pairs), NULL without probes */
    const pl_gen_result *gen;      /* n generated answers, NULL without generation */
    const char *const *gen_labels; /* the labels generation parsed against (2) */
    const double *alphas;          /* n_alphas values swept */
    size_t n_alphas;
    double alpha;          /* the headline alpha (the policy's) */
    double deny, warn;     /* the policy's thresholds on P(positive) */
    size_t bootstrap;      /* resamples (>= 1) */
    uint64_t seed;         /* bootstrap seed */
    int per_item;          /* write per-item scores into results.json */
    int threads, batch;    /* engine settings */
    int32_t prefix_tokens; /* cached prefix length */
    double prefix_ms;      /* time to evaluate the prefix and calibrate */
    double wall_s;         /* wall time of the run so far */
} pl_eval_data;

/* Computes every metric (bootstrap CIs, alpha and threshold sweeps,
 * per-category rows, latency summaries) and writes out_dir/results.json,
 * out_dir/report.md and out_dir/plots/{pr,f1_alpha,reliability,latency}.png
 * (gnuplot as a child process; PL_ERR_UNSUPPORTED naming the gnuplot-nox
 * package when it is missing). out_dir is created if absent. */
int pl_eval_write(const pl_eval_data *d, const char *out_dir, pl_err *err);

/* PL_OK when a gnuplot executable is on PATH; otherwise PL_ERR_UNSUPPORTED
 * with a message naming the Debian package (gnuplot-nox). */
int pl_eval_check_gnuplot(pl_err *err);

/* Latency summary of n samples: mean, 50th and 95th percentile (type 7). */
typedef struct pl_latency {
    double mean, p50, p95, min, max;
} pl_latency;
int pl_latency_summary(const double *ms, size_t n, pl_latency *out, pl_err *err);

#endif
