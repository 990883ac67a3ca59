/* threadpool.h — a fixed pool of worker threads for the forward pass.
 * Workers are created once; a parallel section wakes them (spin briefly,
 * then sleep on a condition variable) and the caller's thread does share 0.
 * No allocation or thread creation per call. */
#ifndef PL_THREADPOOL_H
#define PL_THREADPOOL_H

typedef struct pl_threadpool pl_threadpool;

/* fn(arg, ith, nth) runs on every thread ith in [0, nth). */
typedef void (*pl_task_fn)(void *arg, int ith, int nth);

/* n_threads >= 1 (1 = no worker threads). Returns NULL on failure. */
pl_threadpool *pl_threadpool_create(int n_threads);
void pl_threadpool_free(pl_threadpool *pool);
int pl_threadpool_size(const pl_threadpool *pool);
/* Runs fn on all threads and returns when every share has finished. */
void pl_threadpool_run(pl_threadpool *pool, pl_task_fn fn, void *arg);

#endif
