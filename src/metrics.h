/* metrics.h — evaluation metrics for binary classifiers: confusion counts,
 * accuracy/precision/recall/F1/FPR at a threshold, AUROC, AUPRC (average
 * precision), expected calibration error, ROC and precision-recall curves,
 * threshold sweeps, per-category breakdowns and seeded percentile-bootstrap
 * confidence intervals. Pure functions over arrays; nothing prints or exits.
 *
 * Conventions shared by every function:
 *   labels[i]  0 (benign / negative) or 1 (dangerous / positive); any other
 *              value is PL_ERR_ARG.
 *   scores[i]  P(positive) as a double. A NaN score means "the classifier
 *              gave no usable answer" and is treated as maximally dangerous
 *              (fail closed): it is predicted positive at every threshold,
 *              ranks above every finite score (tied with +inf and other NaNs)
 *              in AUROC/AUPRC/curves, and counts as confidence 1.0 in ECE.
 *   threshold  an item is predicted positive when score >= threshold (or NaN).
 *   undefined  a ratio whose denominator is 0 is NaN (precision with no
 *              predicted positives, recall with no positives, FPR with no
 *              negatives, accuracy on empty input). AUROC is NaN unless both
 *              classes are present; AUPRC is NaN when there are no positives
 *              (and 1.0 when there are only positives); ECE is NaN on empty
 *              input. Empty input (n == 0) is not an error: every metric is NaN.
 * Functions return PL_OK (0) or a negative PL_ERR_* code with a message in err. */
#ifndef PL_METRICS_H
#define PL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Confusion counts at one threshold. */
typedef struct pl_confusion {
    size_t tp; /* label 1, predicted positive */
    size_t fp; /* label 0, predicted positive */
    size_t tn; /* label 0, predicted negative */
    size_t fn; /* label 1, predicted negative */
} pl_confusion;

/* Metric identifiers, indexes into pl_metrics.v and bootstrap results. */
typedef enum pl_metric {
    PL_METRIC_ACCURACY = 0, /* (tp+tn)/n */
    PL_METRIC_PRECISION,    /* tp/(tp+fp) */
    PL_METRIC_RECALL,       /* tp/(tp+fn), the true-positive rate */
    PL_METRIC_F1,           /* 2tp/(2tp+fp+fn) */
    PL_METRIC_FPR,          /* fp/(fp+tn) */
    PL_METRIC_AUROC,        /* area under the ROC curve, ties count 1/2 */
    PL_METRIC_AUPRC,        /* average precision (see pl_auprc) */
    PL_METRIC_ECE,          /* expected calibration error, 10 equal-width bins */
    PL_METRIC_COUNT
} pl_metric;

/* Lower-case name of a metric ("accuracy", "auroc", ...); "?" when out of range. */
const char *pl_metric_name(pl_metric m);

/* Every metric of one evaluation. */
typedef struct pl_metrics {
    double v[PL_METRIC_COUNT]; /* values indexed by pl_metric; NaN when undefined */
    pl_confusion cm;           /* counts at the threshold used */
    size_t n;                  /* items */
    size_t n_pos;              /* items with label 1 */
    size_t n_nan;              /* items whose score was NaN (predicted positive) */
    double threshold;          /* the threshold used */
} pl_metrics;

/* Counts tp/fp/tn/fn of scores >= threshold (NaN counts as positive). */
int pl_confusion_count(const int *labels, const double *scores, size_t n, double threshold, pl_confusion *out,
                       pl_err *err);

/* Ratios from confusion counts; NaN when the denominator is 0. */
double pl_accuracy(const pl_confusion *c);
double pl_precision(const pl_confusion *c);
double pl_recall(const pl_confusion *c);
double pl_f1(const pl_confusion *c);
double pl_fpr(const pl_confusion *c);

/* AUROC = P(score of a random positive > score of a random negative) +
 * 1/2 P(equal), computed from average ranks (Mann-Whitney U); identical to the
 * trapezoidal area under the ROC curve over distinct thresholds. NaN unless
 * both classes are present. */
int pl_auroc(const int *labels, const double *scores, size_t n, double *out, pl_err *err);

/* AUPRC as average precision, step-wise, no interpolation:
 *   AP = sum_k (R_k - R_{k-1}) * P_k
 * over the distinct score values t_1 > t_2 > ... (tied items enter together),
 * where P_k and R_k are precision and recall of "score >= t_k" and R_0 = 0
 * (the scikit-learn average_precision_score definition). NaN without positives. */
int pl_auprc(const int *labels, const double *scores, size_t n, double *out, pl_err *err);

/* Expected calibration error with 10 equal-width bins over [0, 1]:
 *   ECE = sum_b (n_b / n) * |mean(labels in b) - mean(scores in b)|
 * bin b = floor(10 * score) for score in [0, 1), score 1.0 goes to bin 9.
 * NaN scores count as 1.0; finite scores outside [0, 1] are PL_ERR_ARG. */
int pl_ece(const int *labels, const double *scores, size_t n, double *out, pl_err *err);

/* Every metric at once (threshold metrics at `threshold`). */
int pl_metrics_compute(const int *labels, const double *scores, size_t n, double threshold, pl_metrics *out,
                       pl_err *err);

/* One ROC point: the classifier "score >= threshold". */
typedef struct pl_roc_point {
    double threshold; /* +inf for the first point (nothing predicted positive) */
    double fpr;       /* false-positive rate; NaN when there are no negatives */
    double tpr;       /* true-positive rate; NaN when there are no positives */
} pl_roc_point;

/* ROC curve: (0,0) at threshold +inf ("nothing predicted positive"), then
 * one point per distinct score in descending order, ending at (1,1). NaN
 * scores are grouped with +inf and reported at threshold +inf.
 * *points is malloc'ed (caller frees), *n_points = distinct scores + 1. */
int pl_roc_curve(const int *labels, const double *scores, size_t n, pl_roc_point **points, size_t *n_points,
                 pl_err *err);

/* One precision-recall point: the classifier "score >= threshold". */
typedef struct pl_pr_point {
    double threshold; /* a distinct score value (+inf for the NaN/+inf group) */
    double precision; /* tp/(tp+fp); never NaN here (at least one item is predicted positive) */
    double recall;    /* tp/(tp+fn); NaN when there are no positives */
} pl_pr_point;

/* Precision-recall curve: one point per distinct score, descending (recall
 * non-decreasing). *points is malloc'ed (caller frees); empty input gives
 * *points = NULL, *n_points = 0. */
int pl_pr_curve(const int *labels, const double *scores, size_t n, pl_pr_point **points, size_t *n_points, pl_err *err);

/* One row of a threshold sweep. */
typedef struct pl_sweep_point {
    double threshold;                            /* the threshold */
    pl_confusion cm;                             /* counts at the threshold */
    double accuracy, precision, recall, f1, fpr; /* NaN when undefined */
} pl_sweep_point;

/* Evaluates the threshold metrics at n_thr thresholds into out[0..n_thr).
 * thresholds == NULL means n_thr evenly spaced values 0, 1/(n_thr-1), ..., 1
 * (n_thr == 1 gives 0.5). */
int pl_threshold_sweep(const int *labels, const double *scores, size_t n, const double *thresholds, size_t n_thr,
                       pl_sweep_point *out, pl_err *err);

/* Metrics of one category. */
typedef struct pl_category_metrics {
    const char *category; /* borrowed from the caller's categories array ("" for NULL) */
    pl_metrics m;         /* metrics over the items of this category */
} pl_category_metrics;

/* Splits items by category (string equality; NULL is ""), in order of first
 * appearance, and computes pl_metrics for each. One-class categories get NaN
 * where undefined. *out is malloc'ed (caller frees; the strings stay the
 * caller's); empty input gives *out = NULL, *n_out = 0. */
int pl_metrics_by_category(const int *labels, const double *scores, const char *const *categories, size_t n,
                           double threshold, pl_category_metrics **out, size_t *n_out, pl_err *err);

/* A bootstrap confidence interval. */
typedef struct pl_ci {
    double point;   /* the metric on the full sample */
    double lo, hi;  /* percentile interval; NaN when no resample gave a defined value */
    size_t n_valid; /* resamples where the metric was defined (the interval uses only these) */
} pl_ci;

/* Percentile bootstrap: B resamples of n items drawn with replacement by a
 * splitmix64 stream seeded with `seed` (same seed, same inputs => identical
 * result on every run and machine). For each metric, lo/hi are the
 * (1-level)/2 and (1+level)/2 quantiles (linear interpolation between order
 * statistics, "type 7") of its defined resample values. level in (0, 1),
 * e.g. 0.95; B >= 1. out has PL_METRIC_COUNT entries. */
int pl_metrics_bootstrap(const int *labels, const double *scores, size_t n, double threshold, size_t B, uint64_t seed,
                         double level, pl_ci out[PL_METRIC_COUNT], pl_err *err);

/* splitmix64: advances *state and returns the next 64-bit output. */
uint64_t pl_splitmix64(uint64_t *state);

/* Uniform integer in [0, bound) from the splitmix64 stream (rejection
 * sampling, no modulo bias); bound must be > 0. */
uint64_t pl_rng_below(uint64_t *state, uint64_t bound);

#endif
