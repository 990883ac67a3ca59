/* threadpool.c — the fixed worker pool of threadpool.h.
 *
 * Protocol (all shared counters are C11 seq_cst atomics):
 *   run:    caller stores (fn, arg), sets pending = nth - 1, increments gen;
 *           if any worker is asleep, broadcasts `wake` under the mutex.
 *           It runs share 0, then waits for pending == 0 (spin, then sleep
 *           on `done`).
 *   worker: waits for gen to change (spin with PAUSE for ~SPIN_NS, then
 *           sleep on `wake`), reads (fn, arg), runs its share, decrements
 *           pending; the one that reaches 0 wakes a sleeping caller.
 * The lost-wakeup race is closed Dekker-style: a sleeper publishes
 * n_sleeping / caller_sleeping and re-checks the condition under the mutex,
 * while the waker changes the condition before reading the sleeper flag and
 * signals under the same mutex. fn/arg are plain fields: written before the
 * gen increment, read after observing it, and never rewritten before every
 * worker has finished (pending == 0), so there is no data race.
 * One caller at a time; runs may not nest. */
#define _POSIX_C_SOURCE 200809L
#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* How long a waiting thread spins before sleeping. */
#define SPIN_NS 50000

struct pl_threadpool {
    int n;              /* threads including the caller (>= 1) */
    pthread_t *threads; /* n - 1 workers, owned */
    struct worker_arg { /* per-worker start argument, owned (array of n - 1) */
        struct pl_threadpool *pool;
        int ith;
    } * wargs;
    pl_task_fn fn; /* current task; valid while a run is in flight */
    void *arg;
    atomic_uint gen;            /* run generation; bumped once per run (and at stop) */
    atomic_int pending;         /* workers that have not finished the current run */
    atomic_int n_sleeping;      /* workers blocked (or about to block) on wake */
    atomic_int caller_sleeping; /* 1 while the caller blocks on done */
    atomic_bool stop;           /* set by free before the final gen bump */
    pthread_mutex_t mu;         /* guards the condition-variable waits */
    pthread_cond_t wake;        /* workers sleep here waiting for gen */
    pthread_cond_t done;        /* the caller sleeps here waiting for pending == 0 */
};

/* Monotonic nanoseconds. */
static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One spin-wait step: a PAUSE hint where the CPU has one. */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Waits until gen differs from seen; returns the new generation. */
static unsigned wait_for_gen(pl_threadpool *p, unsigned seen) {
    unsigned g;
    uint64_t t0 = 0;
    for (int i = 0;; i++) {
        if ((g = atomic_load(&p->gen)) != seen) return g;
        cpu_relax();
        if ((i & 63) == 63) {
            uint64_t t = now_ns();
            if (!t0)
                t0 = t;
            else if (t - t0 > SPIN_NS)
                break;
        }
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->n_sleeping, 1);
    while ((g = atomic_load(&p->gen)) == seen) pthread_cond_wait(&p->wake, &p->mu);
    atomic_fetch_sub(&p->n_sleeping, 1);
    pthread_mutex_unlock(&p->mu);
    return g;
}

/* Worker main loop: one share per generation until stop. */
static void *worker_main(void *v) {
    struct worker_arg *wa = v;
    pl_threadpool *p = wa->pool;
    unsigned seen = 0; /* gen at creation: a run may be published before this thread starts */
    for (;;) {
        seen = wait_for_gen(p, seen);
        if (atomic_load(&p->stop)) break;
        p->fn(p->arg, wa->ith, p->n);
        if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_sleeping)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

/* Bumps gen and wakes sleeping workers (caller side of the Dekker pair). */
static void publish(pl_threadpool *p) {
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Joins workers [0, count) after asking them to stop, then frees everything. */
static void destroy(pl_threadpool *p, int count) {
    if (count > 0) {
        atomic_store(&p->stop, true);
        publish(p);
        for (int i = 0; i < count; i++) pthread_join(p->threads[i], NULL);
    }
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->wargs);
    free(p->threads);
    free(p);
}

pl_threadpool *pl_threadpool_create(int n_threads) {
    if (n_threads < 1) return NULL;
    pl_threadpool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n_threads;
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->caller_sleeping, 0);
    atomic_init(&p->stop, false);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (n_threads == 1) return p;
    p->threads = calloc((size_t)n_threads - 1, sizeof *p->threads);
    p->wargs = calloc((size_t)n_threads - 1, sizeof *p->wargs);
    if (!p->threads || !p->wargs) {
        destroy(p, 0);
        return NULL;
    }
    for (int i = 0; i < n_threads - 1; i++) {
        p->wargs[i].pool = p;
        p->wargs[i].ith = i + 1;
        if (pthread_create(&p->threads[i], NULL, worker_main, &p->wargs[i]) != 0) {
            destroy(p, i);
            return NULL;
        }
    }
    return p;
}

void pl_threadpool_free(pl_threadpool *pool) {
    if (pool) destroy(pool, pool->n - 1);
}

int pl_threadpool_size(const pl_threadpool *pool) { return pool->n; }

void pl_threadpool_run(pl_threadpool *pool, pl_task_fn fn, void *arg) {
    pl_threadpool *p = pool;
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->pending, p->n - 1);
    publish(p);
    fn(arg, 0, p->n);
    /* wait for the workers: spin, then sleep on done */
    uint64_t t0 = 0;
    for (int i = 0; atomic_load(&p->pending) != 0; i++) {
        cpu_relax();
        if ((i & 63) == 63) {
            uint64_t t = now_ns();
            if (!t0)
                t0 = t;
            else if (t - t0 > SPIN_NS) {
                pthread_mutex_lock(&p->mu);
                atomic_store(&p->caller_sleeping, 1);
                while (atomic_load(&p->pending) != 0) pthread_cond_wait(&p->done, &p->mu);
                atomic_store(&p->caller_sleeping, 0);
                pthread_mutex_unlock(&p->mu);
                break;
            }
        }
    }
}
