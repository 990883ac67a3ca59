/* probmath.c — numerically safe softmax for probes: log-sum-exp in double,
 * a uniform fallback for degenerate rows, probabilities renormalised so
 * they sum to 1 within 1e-12. Never compiled with -ffast-math. */
#include <math.h>

#include "probelogits.h"

int32_t pl_argmax(const float *v, int32_t n) {
    int32_t best = -1;
    float bv = 0.0f; /* the running maximum stays in a register (no reload through v[best]) */
    for (int32_t i = 0; i < n; i++)
        if (v[i] > bv || (best < 0 && !isnan(v[i]))) best = i, bv = v[i];
    return best;
}

int pl_softmax(const double *logits, int n, double *probs, double *lse) {
    if (n <= 0) return 1;
    double mx = -INFINITY;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        if (isnan(logits[i]) || logits[i] == INFINITY)
            bad = 1;
        else if (logits[i] > mx)
            mx = logits[i];
    }
    if (bad || mx == -INFINITY) { /* NaN, +inf, or every value -inf */
        for (int i = 0; i < n; i++) probs[i] = 1.0 / n;
        if (lse) *lse = NAN;
        return 1;
    }
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += exp(logits[i] - mx); /* the max term is exp(0) = 1, so sum >= 1 */
    for (int i = 0; i < n; i++) probs[i] = exp(logits[i] - mx) / sum;
    /* Renormalise so the rounding of n divisions cannot leave the total off
     * by more than an ulp or two. */
    double total = 0.0;
    for (int i = 0; i < n; i++) total += probs[i];
    for (int i = 0; i < n; i++) probs[i] /= total;
    if (lse) *lse = mx + log(sum);
    return 0;
}
