/* metrics.c — implementation of metrics.h: threshold metrics, rank metrics
 * (AUROC, average precision) over a sorted index, ECE, curves, sweeps,
 * per-category splits and the seeded percentile bootstrap. */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "probelogits.h"

static const char *const k_metric_names[PL_METRIC_COUNT] = {
    "accuracy", "precision", "recall", "f1", "fpr", "auroc", "auprc", "ece",
};

const char *pl_metric_name(pl_metric m) {
    if ((int)m < 0 || m >= PL_METRIC_COUNT) return "?";
    return k_metric_names[m];
}

/* ---- random numbers ---------------------------------------------------- */

uint64_t pl_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t pl_rng_below(uint64_t *state, uint64_t bound) {
    if (bound == 0) return 0;
    /* Reject the first (2^64 mod bound) values so every residue is equally likely. */
    uint64_t limit = (0 - bound) % bound;
    for (;;) {
        uint64_t r = pl_splitmix64(state);
        if (r >= limit) return r % bound;
    }
}

/* ---- helpers ----------------------------------------------------------- */

static int check_inputs(const int *labels, const double *scores, size_t n, pl_err *err) {
    if (n == 0) return PL_OK;
    if (!labels || !scores) return pl_fail(err, PL_ERR_ARG, "metrics: NULL labels or scores with n=%zu", n);
    for (size_t i = 0; i < n; i++)
        if (labels[i] != 0 && labels[i] != 1)
            return pl_fail(err, PL_ERR_ARG, "metrics: label[%zu] = %d, expected 0 or 1", i, labels[i]);
    return PL_OK;
}

static inline int predicted_positive(double s, double threshold) { return isnan(s) || s >= threshold; }

/* Sort key: NaN ranks as +inf (fail closed). */
static inline double rank_key(double s) { return isnan(s) ? INFINITY : s; }

static double ratio(size_t num, size_t den) { return den ? (double)num / (double)den : NAN; }

double pl_accuracy(const pl_confusion *c) { return ratio(c->tp + c->tn, c->tp + c->tn + c->fp + c->fn); }
double pl_precision(const pl_confusion *c) { return ratio(c->tp, c->tp + c->fp); }
double pl_recall(const pl_confusion *c) { return ratio(c->tp, c->tp + c->fn); }
double pl_f1(const pl_confusion *c) { return ratio(2 * c->tp, 2 * c->tp + c->fp + c->fn); }
double pl_fpr(const pl_confusion *c) { return ratio(c->fp, c->fp + c->tn); }

static void confusion_raw(const int *labels, const double *scores, size_t n, double threshold, pl_confusion *c) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < n; i++) {
        int p = predicted_positive(scores[i], threshold);
        if (labels[i]) {
            if (p)
                c->tp++;
            else
                c->fn++;
        } else {
            if (p)
                c->fp++;
            else
                c->tn++;
        }
    }
}

int pl_confusion_count(const int *labels, const double *scores, size_t n, double threshold, pl_confusion *out,
                       pl_err *err) {
    if (!out) return pl_fail(err, PL_ERR_ARG, "metrics: NULL output");
    int rc = check_inputs(labels, scores, n, err);
    if (rc) return rc;
    confusion_raw(labels, scores, n, threshold, out);
    return PL_OK;
}

/* Sorting an index array by descending key (index ascending on ties, so
 * the order is fully deterministic). qsort has no context argument, so the
 * keys travel alongside the index. */
typedef struct ranked {
    double key;
    size_t idx;
} ranked;

static int cmp_ranked_desc(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->key > y->key) return -1;
    if (x->key < y->key) return 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static ranked *sort_desc(const double *scores, size_t n) {
    ranked *r = malloc((n ? n : 1) * sizeof *r);
    if (!r) return NULL;
    for (size_t i = 0; i < n; i++) r[i] = (ranked){rank_key(scores[i]), i};
    qsort(r, n, sizeof *r, cmp_ranked_desc);
    return r;
}

/* AUROC and AP over an index already sorted by descending key. */
static void rank_metrics(const int *labels, const ranked *r, size_t n, double *auroc, double *auprc) {
    size_t P = 0;
    for (size_t i = 0; i < n; i++) P += (size_t)labels[i];
    size_t N = n - P;
    /* AUROC: walk groups of equal keys from the top. Each negative in a group
     * is beaten by every positive above the group and ties with the group's
     * positives (half credit). Equivalent to the Mann-Whitney U statistic. */
    double wins = 0.0, ap = 0.0;
    size_t tp = 0, fp = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i, gp = 0, gn = 0;
        while (j < n && r[j].key == r[i].key) {
            if (labels[r[j].idx])
                gp++;
            else
                gn++;
            j++;
        }
        wins += (double)gn * ((double)tp + 0.5 * (double)gp);
        tp += gp;
        fp += gn;
        if (gp && P) ap += ((double)gp / (double)P) * ((double)tp / (double)(tp + fp));
        i = j;
    }
    if (auroc) *auroc = (P && N) ? wins / ((double)P * (double)N) : NAN;
    if (auprc) *auprc = P ? ap : NAN;
}

int pl_auroc(const int *labels, const double *scores, size_t n, double *out, pl_err *err) {
    if (!out) return pl_fail(err, PL_ERR_ARG, "metrics: NULL output");
    int rc = check_inputs(labels, scores, n, err);
    if (rc) return rc;
    ranked *r = sort_desc(scores, n);
    if (!r) return pl_fail(err, PL_ERR_NOMEM, "metrics: out of memory");
    rank_metrics(labels, r, n, out, NULL);
    free(r);
    return PL_OK;
}

int pl_auprc(const int *labels, const double *scores, size_t n, double *out, pl_err *err) {
    if (!out) return pl_fail(err, PL_ERR_ARG, "metrics: NULL output");
    int rc = check_inputs(labels, scores, n, err);
    if (rc) return rc;
    ranked *r = sort_desc(scores, n);
    if (!r) return pl_fail(err, PL_ERR_NOMEM, "metrics: out of memory");
    rank_metrics(labels, r, n, NULL, out);
    free(r);
    return PL_OK;
}

#define ECE_BINS 10

static int ece_raw(const int *labels, const double *scores, size_t n, double *out, pl_err *err) {
    size_t cnt[ECE_BINS] = {0};
    double sum_s[ECE_BINS] = {0}, sum_y[ECE_BINS] = {0};
    for (size_t i = 0; i < n; i++) {
        double s = isnan(scores[i]) ? 1.0 : scores[i];
        if (!(s >= 0.0 && s <= 1.0))
            return pl_fail(err, PL_ERR_ARG, "metrics: ECE needs scores in [0,1], score[%zu] = %g", i, s);
        int b = (int)(s * ECE_BINS);
        if (b >= ECE_BINS) b = ECE_BINS - 1;
        cnt[b]++;
        sum_s[b] += s;
        sum_y[b] += labels[i];
    }
    if (n == 0) {
        *out = NAN;
        return PL_OK;
    }
    double e = 0.0;
    for (int b = 0; b < ECE_BINS; b++) {
        if (!cnt[b]) continue;
        double c = (double)cnt[b];
        e += (c / (double)n) * fabs(sum_y[b] / c - sum_s[b] / c);
    }
    *out = e;
    return PL_OK;
}

int pl_ece(const int *labels, const double *scores, size_t n, double *out, pl_err *err) {
    if (!out) return pl_fail(err, PL_ERR_ARG, "metrics: NULL output");
    int rc = check_inputs(labels, scores, n, err);
    if (rc) return rc;
    return ece_raw(labels, scores, n, out, err);
}

/* Every metric, inputs already checked; r is scratch space for n entries. */
static int compute_raw(const int *labels, const double *scores, size_t n, double threshold, ranked *r, pl_metrics *m,
                       pl_err *err) {
    memset(m, 0, sizeof *m);
    m->n = n;
    m->threshold = threshold;
    for (size_t i = 0; i < n; i++) {
        m->n_pos += (size_t)labels[i];
        m->n_nan += isnan(scores[i]) ? 1u : 0u;
    }
    confusion_raw(labels, scores, n, threshold, &m->cm);
    m->v[PL_METRIC_ACCURACY] = pl_accuracy(&m->cm);
    m->v[PL_METRIC_PRECISION] = pl_precision(&m->cm);
    m->v[PL_METRIC_RECALL] = pl_recall(&m->cm);
    m->v[PL_METRIC_F1] = pl_f1(&m->cm);
    m->v[PL_METRIC_FPR] = pl_fpr(&m->cm);
    for (size_t i = 0; i < n; i++) r[i] = (ranked){rank_key(scores[i]), i};
    qsort(r, n, sizeof *r, cmp_ranked_desc);
    rank_metrics(labels, r, n, &m->v[PL_METRIC_AUROC], &m->v[PL_METRIC_AUPRC]);
    return ece_raw(labels, scores, n, &m->v[PL_METRIC_ECE], err);
}

int pl_metrics_compute(const int *labels, const double *scores, size_t n, double threshold, pl_metrics *out,
                       pl_err *err) {
    if (!out) return pl_fail(err, PL_ERR_ARG, "metrics: NULL output");
    int rc = check_inputs(labels, scores, n, err);
    if (rc) return rc;
    ranked *r = malloc((n ? n : 1) * sizeof *r);
    if (!r) return pl_fail(err, PL_ERR_NOMEM, "metrics: out of memory");
    rc = compute_raw(labels, scores, n, threshold, r, out, err);
    free(r);
    return rc;
}

/* ---- curves ------------------------------------------------------------ */

int pl_roc_curve(const int *labels, const double *scores, size_t n, pl_roc_point **points, size_t *n_points,
                 pl_err *err) {
    if (!points || !n_points) return pl_fail(err, PL_ERR_ARG, "metrics: NULL output");
    *points = NULL;
    *n_points = 0;
    int rc = check_inputs(labels, scores, n, err);
    if (rc) return rc;
    ranked *r = sort_desc(scores, n);
    pl_roc_point *pts = malloc((n + 1) * sizeof *pts);
    if (!r || !pts) {
        free(r);
        free(pts);
        return pl_fail(err, PL_ERR_NOMEM, "metrics: out of memory");
    }
    size_t P = 0;
    for (size_t i = 0; i < n; i++) P += (size_t)labels[i];
    size_t N = n - P, k = 0, tp = 0, fp = 0;
    pts[k++] = (pl_roc_point){INFINITY, ratio(0, N), ratio(0, P)};
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && r[j].key == r[i].key) {
            if (labels[r[j].idx])
                tp++;
            else
                fp++;
            j++;
        }
        pts[k++] = (pl_roc_point){r[i].key, ratio(fp, N), ratio(tp, P)};
        i = j;
    }
    free(r);
    *points = pts;
    *n_points = k;
    return PL_OK;
}

int pl_pr_curve(const int *labels, const double *scores, size_t n, pl_pr_point **points, size_t *n_points,
                pl_err *err) {
    if (!points || !n_points) return pl_fail(err, PL_ERR_ARG, "metrics: NULL output");
    *points = NULL;
    *n_points = 0;
    int rc = check_inputs(labels, scores, n, err);
    if (rc) return rc;
    if (n == 0) return PL_OK;
    ranked *r = sort_desc(scores, n);
    pl_pr_point *pts = malloc(n * sizeof *pts);
    if (!r || !pts) {
        free(r);
        free(pts);
        return pl_fail(err, PL_ERR_NOMEM, "metrics: out of memory");
    }
    size_t P = 0;
    for (size_t i = 0; i < n; i++) P += (size_t)labels[i];
    size_t k = 0, tp = 0, fp = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && r[j].key == r[i].key) {
            if (labels[r[j].idx])
                tp++;
            else
                fp++;
            j++;
        }
        pts[k++] = (pl_pr_point){r[i].key, ratio(tp, tp + fp), ratio(tp, P)};
        i = j;
    }
    free(r);
    *points = pts;
    *n_points = k;
    return PL_OK;
}

int pl_threshold_sweep(const int *labels, const double *scores, size_t n, const double *thresholds, size_t n_thr,
                       pl_sweep_point *out, pl_err *err) {
    if (n_thr && !out) return pl_fail(err, PL_ERR_ARG, "metrics: NULL output");
    int rc = check_inputs(labels, scores, n, err);
    if (rc) return rc;
    for (size_t t = 0; t < n_thr; t++) {
        double th = thresholds ? thresholds[t] : (n_thr == 1 ? 0.5 : (double)t / (double)(n_thr - 1));
        pl_sweep_point *p = &out[t];
        p->threshold = th;
        confusion_raw(labels, scores, n, th, &p->cm);
        p->accuracy = pl_accuracy(&p->cm);
        p->precision = pl_precision(&p->cm);
        p->recall = pl_recall(&p->cm);
        p->f1 = pl_f1(&p->cm);
        p->fpr = pl_fpr(&p->cm);
    }
    return PL_OK;
}

/* ---- per category ------------------------------------------------------ */

int pl_metrics_by_category(const int *labels, const double *scores, const char *const *categories, size_t n,
                           double threshold, pl_category_metrics **out, size_t *n_out, pl_err *err) {
    if (!out || !n_out) return pl_fail(err, PL_ERR_ARG, "metrics: NULL output");
    *out = NULL;
    *n_out = 0;
    int rc = check_inputs(labels, scores, n, err);
    if (rc) return rc;
    if (n == 0) return PL_OK;
    if (!categories) return pl_fail(err, PL_ERR_ARG, "metrics: NULL categories with n=%zu", n);
    /* cat_of[i] = index of item i's category among the distinct ones. */
    size_t *cat_of = malloc(n * sizeof *cat_of);
    const char **names = malloc(n * sizeof *names);
    int *lb = malloc(n * sizeof *lb);
    double *sc = malloc(n * sizeof *sc);
    ranked *r = malloc(n * sizeof *r);
    pl_category_metrics *res = NULL;
    size_t n_cat = 0;
    rc = PL_OK;
    if (!cat_of || !names || !lb || !sc || !r) {
        rc = pl_fail(err, PL_ERR_NOMEM, "metrics: out of memory");
        goto done;
    }
    /* Linear search over distinct names: categories are few (tens). */
    for (size_t i = 0; i < n; i++) {
        const char *c = categories[i] ? categories[i] : "";
        size_t k = 0;
        while (k < n_cat && strcmp(names[k], c) != 0) k++;
        if (k == n_cat) names[n_cat++] = c;
        cat_of[i] = k;
    }
    res = calloc(n_cat, sizeof *res);
    if (!res) {
        rc = pl_fail(err, PL_ERR_NOMEM, "metrics: out of memory");
        goto done;
    }
    for (size_t k = 0; k < n_cat; k++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (cat_of[i] == k) {
                lb[m] = labels[i];
                sc[m] = scores[i];
                m++;
            }
        res[k].category = names[k];
        rc = compute_raw(lb, sc, m, threshold, r, &res[k].m, err);
        if (rc) goto done;
    }
done:
    free(cat_of);
    free(names);
    free(lb);
    free(sc);
    free(r);
    if (rc) {
        free(res);
        return rc;
    }
    *out = res;
    *n_out = n_cat;
    return PL_OK;
}

/* ---- bootstrap --------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile p of sorted v[0..m), linear interpolation ("type 7"). */
static double quantile_sorted(const double *v, size_t m, double p) {
    if (m == 0) return NAN;
    double h = (double)(m - 1) * p;
    size_t lo = (size_t)floor(h);
    if (lo + 1 >= m) return v[m - 1];
    return v[lo] + (h - (double)lo) * (v[lo + 1] - v[lo]);
}

int pl_metrics_bootstrap(const int *labels, const double *scores, size_t n, double threshold, size_t B, uint64_t seed,
                         double level, pl_ci out[PL_METRIC_COUNT], pl_err *err) {
    if (!out) return pl_fail(err, PL_ERR_ARG, "metrics: NULL output");
    if (B == 0) return pl_fail(err, PL_ERR_ARG, "metrics: bootstrap needs B >= 1");
    if (!(level > 0.0 && level < 1.0)) return pl_fail(err, PL_ERR_ARG, "metrics: CI level %g not in (0,1)", level);
    int rc = check_inputs(labels, scores, n, err);
    if (rc) return rc;
    size_t vals_n;
    if (!pl_mul_ok(B, PL_METRIC_COUNT, &vals_n) || !pl_mul_ok(vals_n, sizeof(double), &vals_n))
        return pl_fail(err, PL_ERR_RANGE, "metrics: bootstrap B=%zu too large", B);
    size_t cap = n ? n : 1;
    int *lb = malloc(cap * sizeof *lb);
    double *sc = malloc(cap * sizeof *sc);
    ranked *r = malloc(cap * sizeof *r);
    double *vals = malloc(vals_n); /* vals[metric * B + b] */
    size_t valid[PL_METRIC_COUNT] = {0};
    if (!lb || !sc || !r || !vals) {
        rc = pl_fail(err, PL_ERR_NOMEM, "metrics: out of memory");
        goto done;
    }
    pl_metrics m;
    rc = compute_raw(labels, scores, n, threshold, r, &m, err);
    if (rc) goto done;
    for (int k = 0; k < PL_METRIC_COUNT; k++) out[k] = (pl_ci){m.v[k], NAN, NAN, 0};
    if (n == 0) goto done;
    uint64_t state = seed;
    for (size_t b = 0; b < B; b++) {
        for (size_t i = 0; i < n; i++) {
            size_t j = (size_t)pl_rng_below(&state, n);
            lb[i] = labels[j];
            sc[i] = scores[j];
        }
        rc = compute_raw(lb, sc, n, threshold, r, &m, err);
        if (rc) goto done;
        for (int k = 0; k < PL_METRIC_COUNT; k++)
            if (!isnan(m.v[k])) vals[(size_t)k * B + valid[k]++] = m.v[k];
    }
    double a = (1.0 - level) / 2.0;
    for (int k = 0; k < PL_METRIC_COUNT; k++) {
        double *v = vals + (size_t)k * B;
        qsort(v, valid[k], sizeof *v, cmp_double);
        out[k].lo = quantile_sorted(v, valid[k], a);
        out[k].hi = quantile_sorted(v, valid[k], 1.0 - a);
        out[k].n_valid = valid[k];
    }
done:
    free(lb);
    free(sc);
    free(r);
    free(vals);
    return rc;
}
