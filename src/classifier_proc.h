/* classifier_proc.h — runs a decider (e.g. the model-backed probe) in its own
 * process, behind a SOCK_SEQPACKET socketpair, so that the supervisor never
 * shares memory with the model and survives its crashes. A manager process
 * forks the serving child, restarts it (bounded, with backoff) when it dies,
 * and reports each (re)start. The client side is thread-safe and enforces a
 * per-request deadline; timeout, crash or a dead classifier => DENY. */
#ifndef PL_CLASSIFIER_PROC_H
#define PL_CLASSIFIER_PROC_H

#include "decider.h"
#include "util.h"

typedef struct pl_classifier pl_classifier;

/* Called in every freshly forked serving child to build the decider (e.g. load
 * the model); returns 0 and sets *fn and *ctx, or a negative status. */
typedef int (*pl_classifier_init_fn)(void *arg, pl_decide_fn *fn, void **ctx, pl_err *err);

typedef struct pl_classifier_opts {
    pl_classifier_init_fn init; /* optional: overrides fn/ctx in the child */
    void *init_arg;             /* argument of init */
    int timeout_ms;             /* per-request deadline; 0 = 5000 */
    int max_restarts;           /* restarts before giving up for good; 0 = 5 */
    int backoff_ms;             /* first restart delay, doubled each time; 0 = 50 */
} pl_classifier_opts;

/* Forks the manager (call before creating threads that the child must not
 * inherit in a locked state). fn/ctx are used in the child unless opts->init. */
int pl_classifier_start(pl_decide_fn fn, void *ctx, const pl_classifier_opts *opts, pl_classifier **out, pl_err *err);

/* A pl_decide_fn: thread-safe; fills *out with DENY and reason "classifier
 * timeout" / "classifier crashed" / "classifier unavailable" on failure and
 * returns 0, or returns a negative status for bad arguments. */
int pl_classifier_decide(void *cl, const char *cls, const char *text, size_t len, pl_verdict *out);

/* Number of serving-child starts reported so far (1 after a clean start). */
int pl_classifier_starts(pl_classifier *cl);

/* Stops the manager and child, fails pending requests, frees. NULL ok. */
void pl_classifier_stop(pl_classifier *cl);

#endif
