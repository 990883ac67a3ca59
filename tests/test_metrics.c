/* test_metrics.c — metrics.h against hand-computed values: threshold metrics,
 * AUROC with and without ties, average precision, ECE, ROC/PR curves,
 * sweeps, per-category splits, degenerate inputs (empty, one class, NaN
 * scores, bad labels) and the seeded bootstrap (reproducible, seed-dependent,
 * interval around the point estimate). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "probelogits.h"
#include "testlib.h"

static char ebuf[256];
static pl_err err = {ebuf, sizeof ebuf};

static int near(double a, double b) { return fabs(a - b) < 1e-12; }

/* Example A: labels [1,1,0,0], scores [0.9,0.4,0.6,0.1].
 * Pairs (pos, neg): (.9,.6) win, (.9,.1) win, (.4,.6) loss, (.4,.1) win => AUROC 3/4.
 * Descending: .9(+) .6(-) .4(+) .1(-). AP = 0.5*1 (at .9: R=.5, P=1/1)
 *   + 0.5*(2/3) (at .4: R=1, P=2/3) = 5/6.
 * Threshold 0.5: predicted + = {.9(+), .6(-)} => tp1 fp1 tn1 fn1:
 *   accuracy .5, precision .5, recall .5, F1 .5, FPR .5.
 * ECE: one item per bin: |1-.9| + |0-.6| + |1-.4| + |0-.1| = 1.4, /4 = 0.35. */
static const int A_lab[] = {1, 1, 0, 0};
static const double A_sc[] = {0.9, 0.4, 0.6, 0.1};

static void test_example_a(void) {
    pl_metrics m;
    CHECK(pl_metrics_compute(A_lab, A_sc, 4, 0.5, &m, &err) == PL_OK, "%s", ebuf);
    CHECK(m.cm.tp == 1 && m.cm.fp == 1 && m.cm.tn == 1 && m.cm.fn == 1, "cm %zu %zu %zu %zu", m.cm.tp, m.cm.fp, m.cm.tn,
          m.cm.fn);
    CHECK(near(m.v[PL_METRIC_ACCURACY], 0.5), "acc %g", m.v[PL_METRIC_ACCURACY]);
    CHECK(near(m.v[PL_METRIC_PRECISION], 0.5), "prec %g", m.v[PL_METRIC_PRECISION]);
    CHECK(near(m.v[PL_METRIC_RECALL], 0.5), "rec %g", m.v[PL_METRIC_RECALL]);
    CHECK(near(m.v[PL_METRIC_F1], 0.5), "f1 %g", m.v[PL_METRIC_F1]);
    CHECK(near(m.v[PL_METRIC_FPR], 0.5), "fpr %g", m.v[PL_METRIC_FPR]);
    CHECK(near(m.v[PL_METRIC_AUROC], 0.75), "auroc %g", m.v[PL_METRIC_AUROC]);
    CHECK(near(m.v[PL_METRIC_AUPRC], 5.0 / 6.0), "auprc %g", m.v[PL_METRIC_AUPRC]);
    CHECK(near(m.v[PL_METRIC_ECE], 0.35), "ece %g", m.v[PL_METRIC_ECE]);
    CHECK(m.n == 4 && m.n_pos == 2 && m.n_nan == 0, "n %zu pos %zu", m.n, m.n_pos);

    double v;
    CHECK(pl_auroc(A_lab, A_sc, 4, &v, &err) == PL_OK && near(v, 0.75), "auroc %g", v);
    CHECK(pl_auprc(A_lab, A_sc, 4, &v, &err) == PL_OK && near(v, 5.0 / 6.0), "auprc %g", v);
    CHECK(pl_ece(A_lab, A_sc, 4, &v, &err) == PL_OK && near(v, 0.35), "ece %g", v);

    /* Threshold 0.6 includes 0.6 (>=): same counts as 0.5. Threshold 0.61: tp1 fp0 tn2 fn1. */
    pl_confusion c;
    CHECK(pl_confusion_count(A_lab, A_sc, 4, 0.61, &c, &err) == PL_OK, "%s", ebuf);
    CHECK(c.tp == 1 && c.fp == 0 && c.tn == 2 && c.fn == 1, "cm@.61");
    CHECK(near(pl_precision(&c), 1.0) && near(pl_recall(&c), 0.5) && near(pl_f1(&c), 2.0 / 3.0), "ratios@.61");

    /* ROC: (+inf:0,0) (.9: 0,.5) (.6: .5,.5) (.4: .5,1) (.1: 1,1); trapezoid area = .25 + .5 = .75. */
    pl_roc_point *roc;
    size_t nr;
    CHECK(pl_roc_curve(A_lab, A_sc, 4, &roc, &nr, &err) == PL_OK && nr == 5, "roc n %zu", nr);
    if (nr == 5) {
        CHECK(isinf(roc[0].threshold) && roc[0].fpr == 0 && roc[0].tpr == 0, "roc[0]");
        CHECK(roc[1].threshold == 0.9 && roc[1].fpr == 0 && roc[1].tpr == 0.5, "roc[1]");
        CHECK(roc[2].threshold == 0.6 && roc[2].fpr == 0.5 && roc[2].tpr == 0.5, "roc[2]");
        CHECK(roc[3].threshold == 0.4 && roc[3].fpr == 0.5 && roc[3].tpr == 1, "roc[3]");
        CHECK(roc[4].threshold == 0.1 && roc[4].fpr == 1 && roc[4].tpr == 1, "roc[4]");
        double area = 0;
        for (size_t i = 1; i < nr; i++) area += (roc[i].fpr - roc[i - 1].fpr) * (roc[i].tpr + roc[i - 1].tpr) / 2;
        CHECK(near(area, 0.75), "trapezoid %g", area);
    }
    free(roc);

    /* PR: (.9: P1 R.5) (.6: P.5 R.5) (.4: P2/3 R1) (.1: P.5 R1). */
    pl_pr_point *pr;
    size_t np;
    CHECK(pl_pr_curve(A_lab, A_sc, 4, &pr, &np, &err) == PL_OK && np == 4, "pr n %zu", np);
    if (np == 4) {
        CHECK(near(pr[0].precision, 1) && near(pr[0].recall, .5), "pr[0]");
        CHECK(near(pr[1].precision, .5) && near(pr[1].recall, .5), "pr[1]");
        CHECK(near(pr[2].precision, 2.0 / 3) && near(pr[2].recall, 1), "pr[2]");
        CHECK(near(pr[3].precision, .5) && near(pr[3].recall, 1), "pr[3]");
    }
    free(pr);

    /* Sweep at 0, .5, 1: threshold 0 => all positive (recall 1, FPR 1);
     * threshold 1 => none positive (precision NaN, recall 0, FPR 0). */
    pl_sweep_point sw[3];
    CHECK(pl_threshold_sweep(A_lab, A_sc, 4, NULL, 3, sw, &err) == PL_OK, "%s", ebuf);
    CHECK(sw[0].threshold == 0 && sw[1].threshold == 0.5 && sw[2].threshold == 1, "sweep thresholds");
    CHECK(near(sw[0].recall, 1) && near(sw[0].fpr, 1) && near(sw[0].precision, .5), "sweep@0");
    CHECK(near(sw[1].f1, .5), "sweep@.5");
    CHECK(isnan(sw[2].precision) && sw[2].recall == 0 && sw[2].fpr == 0 && isnan(sw[2].f1) == 0, "sweep@1");
    /* F1 at threshold 1: 2tp/(2tp+fp+fn) = 0/(0+0+2) = 0, defined. */
    CHECK(sw[2].f1 == 0, "f1@1 %g", sw[2].f1);
    double ths[2] = {0.4, 0.95};
    CHECK(pl_threshold_sweep(A_lab, A_sc, 4, ths, 2, sw, &err) == PL_OK, "%s", ebuf);
    CHECK(sw[0].cm.tp == 2 && sw[0].cm.fp == 1 && sw[1].cm.tp == 0, "explicit thresholds");
}

/* Ties: labels [1,0,1,0], scores [.5,.5,.8,.2].
 * Pairs: (.5,.5) tie = 1/2, (.5,.2) win, (.8,.5) win, (.8,.2) win => 3.5/4 = 0.875.
 * AP: group .8 {+}: R=.5 P=1 -> .5; group .5 {+,-}: R=1 P=2/3 -> +1/3; total 5/6.
 * All scores equal: AUROC 1/2 and AP = prevalence. */
static void test_ties(void) {
    const int lab[] = {1, 0, 1, 0};
    const double sc[] = {0.5, 0.5, 0.8, 0.2};
    double v;
    CHECK(pl_auroc(lab, sc, 4, &v, &err) == PL_OK && near(v, 0.875), "tie auroc %g", v);
    CHECK(pl_auprc(lab, sc, 4, &v, &err) == PL_OK && near(v, 5.0 / 6.0), "tie auprc %g", v);
    pl_roc_point *roc;
    size_t nr;
    CHECK(pl_roc_curve(lab, sc, 4, &roc, &nr, &err) == PL_OK && nr == 4, "tie roc n %zu", nr);
    double area = 0;
    for (size_t i = 1; i < nr; i++) area += (roc[i].fpr - roc[i - 1].fpr) * (roc[i].tpr + roc[i - 1].tpr) / 2;
    CHECK(near(area, 0.875), "tie trapezoid %g", area);
    free(roc);

    const double flat[] = {0.5, 0.5, 0.5, 0.5};
    CHECK(pl_auroc(lab, flat, 4, &v, &err) == PL_OK && near(v, 0.5), "flat auroc %g", v);
    CHECK(pl_auprc(lab, flat, 4, &v, &err) == PL_OK && near(v, 0.5), "flat auprc %g", v);

    /* Perfect and inverted rankings. */
    const double good[] = {0.9, 0.1, 0.8, 0.2}, bad[] = {0.1, 0.9, 0.2, 0.8};
    CHECK(pl_auroc(lab, good, 4, &v, &err) == PL_OK && near(v, 1.0), "perfect %g", v);
    CHECK(pl_auprc(lab, good, 4, &v, &err) == PL_OK && near(v, 1.0), "perfect ap %g", v);
    CHECK(pl_auroc(lab, bad, 4, &v, &err) == PL_OK && near(v, 0.0), "inverted %g", v);
    /* Inverted AP: desc .9(-) .8(-) .2(+) .1(+): .5*(1/3) + .5*(2/4) = 5/12. */
    CHECK(pl_auprc(lab, bad, 4, &v, &err) == PL_OK && near(v, 5.0 / 12.0), "inverted ap %g", v);
}

static void test_degenerate(void) {
    pl_metrics m;
    /* Empty input: not an error, everything NaN. */
    CHECK(pl_metrics_compute(NULL, NULL, 0, 0.5, &m, &err) == PL_OK, "%s", ebuf);
    for (int k = 0; k < PL_METRIC_COUNT; k++) CHECK(isnan(m.v[k]), "empty %s = %g", pl_metric_name(k), m.v[k]);
    pl_roc_point *roc;
    size_t nr;
    CHECK(pl_roc_curve(NULL, NULL, 0, &roc, &nr, &err) == PL_OK && nr == 1, "empty roc %zu", nr);
    free(roc);
    pl_pr_point *pr;
    size_t np;
    CHECK(pl_pr_curve(NULL, NULL, 0, &pr, &np, &err) == PL_OK && np == 0 && pr == NULL, "empty pr");

    /* All positive [1,1,1], scores [.2,.7,.9] @.5: tp2 fn1. Precision 1, recall 2/3,
     * FPR NaN (no negatives), AUROC NaN, AP 1 (precision is 1 at every recall). */
    const int pos[] = {1, 1, 1};
    const double psc[] = {0.2, 0.7, 0.9};
    CHECK(pl_metrics_compute(pos, psc, 3, 0.5, &m, &err) == PL_OK, "%s", ebuf);
    CHECK(near(m.v[PL_METRIC_PRECISION], 1) && near(m.v[PL_METRIC_RECALL], 2.0 / 3), "all-pos prec/rec");
    CHECK(isnan(m.v[PL_METRIC_FPR]) && isnan(m.v[PL_METRIC_AUROC]), "all-pos fpr/auroc NaN");
    CHECK(near(m.v[PL_METRIC_AUPRC], 1.0), "all-pos ap %g", m.v[PL_METRIC_AUPRC]);
    CHECK(near(m.v[PL_METRIC_ACCURACY], 2.0 / 3), "all-pos acc");

    /* All negative [0,0], scores [.7,.1] @.5: fp1 tn1. Precision 0, recall NaN,
     * F1 = 0/(0+1+0) = 0, FPR .5, AUROC NaN, AP NaN. */
    const int neg[] = {0, 0};
    const double nsc[] = {0.7, 0.1};
    CHECK(pl_metrics_compute(neg, nsc, 2, 0.5, &m, &err) == PL_OK, "%s", ebuf);
    CHECK(m.v[PL_METRIC_PRECISION] == 0 && isnan(m.v[PL_METRIC_RECALL]), "all-neg prec/rec");
    CHECK(m.v[PL_METRIC_F1] == 0 && near(m.v[PL_METRIC_FPR], .5), "all-neg f1/fpr");
    CHECK(isnan(m.v[PL_METRIC_AUROC]) && isnan(m.v[PL_METRIC_AUPRC]), "all-neg auroc/ap NaN");
    /* Nothing predicted positive and no positives: precision and F1 NaN. */
    const double low[] = {0.1, 0.2};
    CHECK(pl_metrics_compute(neg, low, 2, 0.5, &m, &err) == PL_OK, "%s", ebuf);
    CHECK(isnan(m.v[PL_METRIC_PRECISION]) && isnan(m.v[PL_METRIC_F1]) && m.v[PL_METRIC_FPR] == 0, "none predicted");

    /* NaN score fails closed: labels [0,1], scores [NaN,.3] @.5 => fp1 fn1;
     * NaN ranks above .3, so AUROC 0; ECE counts NaN as 1.0: (|0-1| + |1-.3|)/2 = .85. */
    const int nl[] = {0, 1};
    const double ns[] = {NAN, 0.3};
    CHECK(pl_metrics_compute(nl, ns, 2, 0.5, &m, &err) == PL_OK, "%s", ebuf);
    CHECK(m.cm.fp == 1 && m.cm.fn == 1 && m.n_nan == 1, "nan cm");
    CHECK(near(m.v[PL_METRIC_AUROC], 0.0), "nan auroc %g", m.v[PL_METRIC_AUROC]);
    CHECK(near(m.v[PL_METRIC_ECE], 0.85), "nan ece %g", m.v[PL_METRIC_ECE]);
    pl_confusion c;
    CHECK(pl_confusion_count(nl, ns, 2, 2.0, &c, &err) == PL_OK && c.fp == 1, "nan positive at any threshold");

    /* Errors. */
    const int badl[] = {0, 2};
    const double sc2[] = {0.1, 0.2};
    CHECK(pl_metrics_compute(badl, sc2, 2, 0.5, &m, &err) == PL_ERR_ARG, "bad label");
    CHECK(strstr(ebuf, "label[1]") != NULL, "msg %s", ebuf);
    const double oob[] = {0.1, 1.5};
    double v;
    CHECK(pl_ece(nl, oob, 2, &v, &err) == PL_ERR_ARG, "ece out of range");
    CHECK(pl_metrics_compute(NULL, sc2, 2, 0.5, &m, &err) == PL_ERR_ARG, "NULL labels");
    pl_ci ci[PL_METRIC_COUNT];
    CHECK(pl_metrics_bootstrap(A_lab, A_sc, 4, .5, 0, 1, .95, ci, &err) == PL_ERR_ARG, "B=0");
    CHECK(pl_metrics_bootstrap(A_lab, A_sc, 4, .5, 10, 1, 1.0, ci, &err) == PL_ERR_ARG, "level 1");
    CHECK(pl_metrics_bootstrap(NULL, NULL, 0, .5, 10, 1, .95, ci, &err) == PL_OK, "empty bootstrap");
    CHECK(isnan(ci[PL_METRIC_AUROC].lo) && ci[PL_METRIC_AUROC].n_valid == 0, "empty bootstrap NaN");
    /* ECE bin edges: 1.0 falls in the last bin, 0.0 in the first. [1,0] scores [1,0] => ECE 0. */
    const int e_l[] = {1, 0};
    const double e_s[] = {1.0, 0.0};
    CHECK(pl_ece(e_l, e_s, 2, &v, &err) == PL_OK && v == 0, "ece edges %g", v);
    CHECK(strcmp(pl_metric_name(PL_METRIC_AUPRC), "auprc") == 0 && strcmp(pl_metric_name(PL_METRIC_COUNT), "?") == 0,
          "names");
}

/* Categories a,b,a,b,"",c over labels [1,1,0,0,0,1], scores [.9,.4,.6,.1,.3,.8]:
 * a: [1,0]/[.9,.6] AUROC 1; b: [1,0]/[.4,.1] AUROC 1, recall@.5 0;
 * "" (NULL): one negative, AUROC NaN, FPR 0; c: one positive, AUROC NaN, recall 1. */
static void test_categories(void) {
    const int lab[] = {1, 1, 0, 0, 0, 1};
    const double sc[] = {0.9, 0.4, 0.6, 0.1, 0.3, 0.8};
    const char *cats[] = {"a", "b", "a", "b", NULL, "c"};
    pl_category_metrics *cm;
    size_t nc;
    CHECK(pl_metrics_by_category(lab, sc, cats, 6, 0.5, &cm, &nc, &err) == PL_OK && nc == 4, "ncat %zu", nc);
    if (nc == 4) {
        CHECK(!strcmp(cm[0].category, "a") && !strcmp(cm[1].category, "b") && !strcmp(cm[2].category, "") &&
                  !strcmp(cm[3].category, "c"),
              "order");
        CHECK(cm[0].m.n == 2 && near(cm[0].m.v[PL_METRIC_AUROC], 1), "a");
        CHECK(near(cm[1].m.v[PL_METRIC_AUROC], 1) && cm[1].m.v[PL_METRIC_RECALL] == 0, "b");
        CHECK(cm[2].m.n == 1 && isnan(cm[2].m.v[PL_METRIC_AUROC]) && cm[2].m.v[PL_METRIC_FPR] == 0, "empty-name cat");
        CHECK(isnan(cm[3].m.v[PL_METRIC_AUROC]) && cm[3].m.v[PL_METRIC_RECALL] == 1 && cm[3].m.n_pos == 1, "c");
    }
    free(cm);
    CHECK(pl_metrics_by_category(NULL, NULL, NULL, 0, 0.5, &cm, &nc, &err) == PL_OK && nc == 0 && !cm, "empty");
}

static void test_bootstrap(void) {
    /* splitmix64 known answer (seed 0), pinning the stream across machines. */
    uint64_t st = 0;
    CHECK(pl_splitmix64(&st) == 0xE220A8397B1DCDAFull, "splitmix64 known answer");
    st = 7;
    for (int i = 0; i < 1000; i++) {
        uint64_t r = pl_rng_below(&st, 3);
        if (r >= 3) {
            CHECK(0, "rng_below out of range");
            break;
        }
    }

    /* A reasonable sample: 400 items, noisy but informative scores. */
    enum { N = 400 };
    int lab[N];
    double sc[N];
    st = 42;
    for (int i = 0; i < N; i++) {
        lab[i] = (int)(pl_splitmix64(&st) & 1);
        double u = (double)(pl_splitmix64(&st) >> 11) / 9007199254740992.0;
        sc[i] = 0.35 * lab[i] + 0.65 * u;
    }
    pl_ci a[PL_METRIC_COUNT], b[PL_METRIC_COUNT], c[PL_METRIC_COUNT];
    CHECK(pl_metrics_bootstrap(lab, sc, N, 0.5, 300, 1234, 0.95, a, &err) == PL_OK, "%s", ebuf);
    CHECK(pl_metrics_bootstrap(lab, sc, N, 0.5, 300, 1234, 0.95, b, &err) == PL_OK, "%s", ebuf);
    CHECK(pl_metrics_bootstrap(lab, sc, N, 0.5, 300, 99, 0.95, c, &err) == PL_OK, "%s", ebuf);
    CHECK(memcmp(a, b, sizeof a) == 0, "same seed, same result");
    int differ = 0;
    for (int k = 0; k < PL_METRIC_COUNT; k++) differ += a[k].lo != c[k].lo || a[k].hi != c[k].hi;
    CHECK(differ > 0, "another seed gives other intervals");
    pl_metrics m;
    CHECK(pl_metrics_compute(lab, sc, N, 0.5, &m, &err) == PL_OK, "%s", ebuf);
    for (int k = 0; k < PL_METRIC_COUNT; k++) {
        CHECK(a[k].point == m.v[k], "%s point", pl_metric_name(k));
        CHECK(a[k].n_valid == 300, "%s n_valid %zu", pl_metric_name(k), a[k].n_valid);
        CHECK(a[k].lo <= a[k].hi, "%s lo<=hi", pl_metric_name(k));
        CHECK(a[k].hi - a[k].lo < 0.25, "%s width %g", pl_metric_name(k), a[k].hi - a[k].lo);
        /* ECE is biased upward under resampling, so its point can sit below
         * the bootstrap interval; the others must contain the point. */
        if (k != PL_METRIC_ECE)
            CHECK(a[k].lo <= a[k].point && a[k].point <= a[k].hi, "%s: %g not in [%g, %g]", pl_metric_name(k),
                  a[k].point, a[k].lo, a[k].hi);
    }
    CHECK(a[PL_METRIC_AUROC].point > 0.75, "auroc %g", a[PL_METRIC_AUROC].point);

    /* One-class sample: AUROC undefined in every resample => NaN interval, n_valid 0. */
    const int pos[] = {1, 1, 1, 1};
    const double ps[] = {0.2, 0.4, 0.6, 0.8};
    CHECK(pl_metrics_bootstrap(pos, ps, 4, 0.5, 50, 1, 0.95, a, &err) == PL_OK, "%s", ebuf);
    CHECK(isnan(a[PL_METRIC_AUROC].lo) && a[PL_METRIC_AUROC].n_valid == 0, "one-class auroc CI");
    CHECK(a[PL_METRIC_RECALL].n_valid == 50 && a[PL_METRIC_RECALL].lo >= 0 && a[PL_METRIC_RECALL].hi <= 1,
          "one-class recall CI");
}

int main(void) {
    test_example_a();
    test_ties();
    test_degenerate();
    test_categories();
    test_bootstrap();
    return testlib_finish("test_metrics");
}
