/* classifier_proc.c — decider in a separate process (see classifier_proc.h).
 *
 * Wire protocol (one SOCK_SEQPACKET message each, host byte order):
 *   request : u64 id, u32 cls_len, u32 text_len, cls bytes, text bytes
 *   response: u64 id (0 = control), i32 status, i32 decision, f64 p,
 *             f64 latency_ms, char rule[128], char reason[256]
 *   control : id 0; status 1 = child started (decision = its pid),
 *             status 2 = child died (pending requests fail), status 3 =
 *             manager gave up (every later request is denied). */
#include "classifier_proc.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "probelogits.h"

#define MAX_TEXT (256 * 1024)
#define MAX_PENDING 256

typedef struct wire_req {
    uint64_t id;
    uint32_t cls_len;
    uint32_t text_len;
} wire_req;

typedef struct wire_resp {
    uint64_t id;
    int32_t status;
    int32_t decision;
    double p;
    double alpha;
    double latency_ms;
    char rule[128];
    char reason[256];
} wire_resp;

typedef struct slot {
    uint64_t id;  /* 0 = free */
    int done;     /* response (or failure) filled */
    int gen;      /* serving-child generation (starts) when sent */
    pl_verdict v; /* the answer */
} slot;

struct pl_classifier {
    int fd;               /* parent end of the socketpair */
    pid_t manager;        /* manager process */
    volatile pid_t child; /* current serving child (for kill on timeout) */
    int timeout_ms;       /* per-request deadline */
    int starts;           /* child starts reported */
    int dead;             /* manager gave up or closed: deny everything */
    int restarting;       /* child killed or dead, no new child reported yet: new requests wait */
    uint64_t next_id;     /* last id handed out */
    pthread_mutex_t mu;   /* guards everything below and above */
    pthread_cond_t cv;    /* broadcast on every state change */
    slot slots[MAX_PENDING];
    pthread_t reader; /* receives responses */
};

static void fail_verdict(pl_verdict *v, const char *why) {
    memset(v, 0, sizeof *v);
    v->decision = PL_DECISION_DENY;
    v->p_dangerous = NAN;
    snprintf(v->reason, sizeof v->reason, "%s", why);
}

/* ---- serving child and manager ------------------------------------------ */

static __attribute__((noreturn)) void serve(int fd, pl_decide_fn fn, void *ctx, const pl_classifier_opts *o) {
    char errbuf[256] = "";
    pl_err err = {errbuf, sizeof errbuf};
    if (o->init && o->init(o->init_arg, &fn, &ctx, &err) < 0) _exit(3);
    char *buf = malloc(sizeof(wire_req) + 256 + MAX_TEXT + 1);
    if (!buf) _exit(3);
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(wire_req) + 256 + MAX_TEXT, 0);
        if (n == 0) _exit(0);
        if (n < 0) {
            if (errno == EINTR) continue;
            _exit(0);
        }
        wire_req rq;
        if ((size_t)n < sizeof rq) continue;
        memcpy(&rq, buf, sizeof rq);
        if (rq.cls_len > 255 || rq.text_len > MAX_TEXT || sizeof rq + rq.cls_len + rq.text_len != (size_t)n) continue;
        char cls[256];
        memcpy(cls, buf + sizeof rq, rq.cls_len);
        cls[rq.cls_len] = 0;
        char *text = buf + sizeof rq + rq.cls_len;
        text[rq.text_len] = 0;
        pl_verdict v;
        memset(&v, 0, sizeof v);
        double t0 = pl_now();
        int st = fn(ctx, cls, text, rq.text_len, &v);
        wire_resp rs = {.id = rq.id,
                        .status = st,
                        .decision = (int32_t)v.decision,
                        .p = v.p_dangerous,
                        .alpha = v.alpha,
                        .latency_ms = v.latency_ms > 0 ? v.latency_ms : (pl_now() - t0) * 1e3};
        memcpy(rs.rule, v.rule, sizeof rs.rule);
        memcpy(rs.reason, v.reason, sizeof rs.reason);
        rs.rule[sizeof rs.rule - 1] = rs.reason[sizeof rs.reason - 1] = 0;
        if (send(fd, &rs, sizeof rs, MSG_NOSIGNAL) < 0 && errno != EINTR) _exit(0);
    }
}

static void control(int fd, int32_t status, int32_t arg) {
    wire_resp rs = {.id = 0, .status = status, .decision = arg};
    (void)!send(fd, &rs, sizeof rs, MSG_NOSIGNAL);
}

static __attribute__((noreturn)) void manager(int fd, pl_decide_fn fn, void *ctx, const pl_classifier_opts *o) {
    int max = o->max_restarts > 0 ? o->max_restarts : 5;
    int backoff = o->backoff_ms > 0 ? o->backoff_ms : 50;
    for (int attempt = 0; attempt <= max; attempt++) {
        if (attempt) {
            struct timespec ts = {backoff / 1000, (long)(backoff % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            if (backoff < 4000) backoff *= 2;
        }
        pid_t c = fork();
        if (c < 0) continue;
        if (c == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            serve(fd, fn, ctx, o);
        }
        control(fd, 1, c);
        int st;
        while (waitpid(c, &st, 0) < 0 && errno == EINTR) {
        }
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) _exit(0); /* the supervisor closed the socket */
        control(fd, 2, c);
    }
    control(fd, 3, 0);
    _exit(1);
}

/* ---- client ------------------------------------------------------------- */

/* Fails pending requests of generation gen (all when gen < 0). */
static void fail_gen(pl_classifier *cl, int gen, const char *why) {
    for (int i = 0; i < MAX_PENDING; i++)
        if (cl->slots[i].id && !cl->slots[i].done && (gen < 0 || cl->slots[i].gen == gen)) {
            fail_verdict(&cl->slots[i].v, why);
            cl->slots[i].done = 1;
        }
    pthread_cond_broadcast(&cl->cv);
}

static void *reader_main(void *arg) {
    pl_classifier *cl = arg;
    for (;;) {
        wire_resp rs;
        ssize_t n = recv(cl->fd, &rs, sizeof rs, 0);
        if (n < 0 && errno == EINTR) continue;
        pthread_mutex_lock(&cl->mu);
        if (n <= 0) {
            cl->dead = 1;
            fail_gen(cl, -1, "classifier unavailable");
            pthread_mutex_unlock(&cl->mu);
            return NULL;
        }
        if ((size_t)n == sizeof rs) {
            if (rs.id == 0) {
                if (rs.status == 1) {
                    cl->child = rs.decision;
                    cl->starts++;
                    cl->restarting = 0;
                } else if (rs.status == 2) {
                    cl->child = 0;
                    cl->restarting = 1;
                    fail_gen(cl, cl->starts, "classifier crashed");
                } else if (rs.status == 3) {
                    cl->dead = 1;
                    fail_gen(cl, -1, "classifier unavailable (restarts exhausted)");
                }
                pthread_cond_broadcast(&cl->cv);
            } else {
                for (int i = 0; i < MAX_PENDING; i++) {
                    slot *s = &cl->slots[i];
                    if (s->id != rs.id || s->done) continue;
                    rs.rule[sizeof rs.rule - 1] = rs.reason[sizeof rs.reason - 1] = 0;
                    if (rs.status < 0 || rs.decision < PL_DECISION_ALLOW || rs.decision > PL_DECISION_DENY) {
                        fail_verdict(&s->v, "classifier error");
                    } else {
                        s->v.decision = (pl_decision)rs.decision;
                        s->v.p_dangerous = rs.p;
                        s->v.alpha = rs.alpha;
                        s->v.latency_ms = rs.latency_ms;
                        memcpy(s->v.rule, rs.rule, sizeof s->v.rule);
                        memcpy(s->v.reason, rs.reason, sizeof s->v.reason);
                    }
                    s->done = 1;
                    pthread_cond_broadcast(&cl->cv);
                    break;
                }
            }
        }
        pthread_mutex_unlock(&cl->mu);
    }
}

int pl_classifier_start(pl_decide_fn fn, void *ctx, const pl_classifier_opts *opts, pl_classifier **out, pl_err *err) {
    *out = NULL;
    pl_classifier_opts o = opts ? *opts : (pl_classifier_opts){0};
    if (!fn && !o.init) return pl_fail(err, PL_ERR_ARG, "classifier: no decider");
    pl_classifier *cl = calloc(1, sizeof *cl);
    if (!cl) return pl_fail(err, PL_ERR_NOMEM, "classifier: out of memory");
    cl->timeout_ms = o.timeout_ms > 0 ? o.timeout_ms : 5000;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        free(cl);
        return pl_fail(err, PL_ERR_IO, "classifier: socketpair: %s", strerror(errno));
    }
    int big = MAX_TEXT * 4;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    pid_t parent = getpid();
    pid_t m = fork();
    if (m < 0) {
        close(sv[0]);
        close(sv[1]);
        free(cl);
        return pl_fail(err, PL_ERR_IO, "classifier: fork: %s", strerror(errno));
    }
    if (m == 0) {
        close(sv[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        manager(sv[1], fn, ctx, &o);
    }
    close(sv[1]);
    cl->fd = sv[0];
    cl->manager = m;
    pthread_mutex_init(&cl->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cl->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&cl->reader, NULL, reader_main, cl) != 0) {
        close(cl->fd);
        kill(m, SIGKILL);
        waitpid(m, NULL, 0);
        free(cl);
        return pl_fail(err, PL_ERR_IO, "classifier: cannot start the reader thread");
    }
    *out = cl;
    return 0;
}

int pl_classifier_decide(void *ctx, const char *cls, const char *text, size_t len, pl_verdict *out) {
    pl_classifier *cl = ctx;
    if (!cl || !cls || !out || (!text && len)) return PL_ERR_ARG;
    size_t cl_len = strlen(cls);
    if (cl_len > 255) return PL_ERR_ARG;
    if (len > MAX_TEXT) {
        fail_verdict(out, "action text too long");
        return 0;
    }
    double t0 = pl_now();
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += cl->timeout_ms / 1000;
    dl.tv_nsec += (long)(cl->timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&cl->mu);
    slot *s = NULL;
    while (!cl->dead) {
        for (int i = 0; i < MAX_PENDING && !s && !cl->restarting && cl->starts > 0; i++)
            if (!cl->slots[i].id) s = &cl->slots[i];
        if (s || pthread_cond_timedwait(&cl->cv, &cl->mu, &dl) == ETIMEDOUT) break;
    }
    if (cl->dead || !s) {
        pthread_mutex_unlock(&cl->mu);
        fail_verdict(out, cl->dead ? "classifier unavailable" : "classifier timeout (restarting or queue full)");
        out->latency_ms = (pl_now() - t0) * 1e3;
        return 0;
    }
    s->id = ++cl->next_id;
    s->done = 0;
    s->gen = cl->starts;
    uint64_t id = s->id;
    pthread_mutex_unlock(&cl->mu);

    size_t n = sizeof(wire_req) + cl_len + len;
    char *msg = malloc(n);
    int sent = 0;
    if (msg) {
        wire_req rq = {.id = id, .cls_len = (uint32_t)cl_len, .text_len = (uint32_t)len};
        memcpy(msg, &rq, sizeof rq);
        memcpy(msg + sizeof rq, cls, cl_len);
        if (len) memcpy(msg + sizeof rq + cl_len, text, len);
        ssize_t w;
        do w = send(cl->fd, msg, n, MSG_NOSIGNAL);
        while (w < 0 && errno == EINTR);
        sent = w == (ssize_t)n;
        free(msg);
    }
    pthread_mutex_lock(&cl->mu);
    if (!sent && !s->done) {
        fail_verdict(&s->v, "classifier unavailable (send failed)");
        s->done = 1;
    }
    int timed_out = 0;
    while (!s->done) {
        if (pthread_cond_timedwait(&cl->cv, &cl->mu, &dl) == ETIMEDOUT && !s->done) {
            timed_out = 1;
            fail_verdict(&s->v, "classifier timeout");
            s->done = 1;
        }
    }
    *out = s->v;
    s->id = 0;
    pid_t child = cl->child;
    if (timed_out && child > 0 && s->gen == cl->starts)
        cl->restarting = 1;
    else
        child = 0;
    pthread_cond_broadcast(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
    /* A stuck classifier would make every later request time out too:
     * kill it; the manager restarts it and pending requests are denied. */
    if (timed_out && child > 0) kill(child, SIGKILL);
    out->latency_ms = (pl_now() - t0) * 1e3;
    return 0;
}

int pl_classifier_starts(pl_classifier *cl) {
    pthread_mutex_lock(&cl->mu);
    int n = cl->starts;
    pthread_mutex_unlock(&cl->mu);
    return n;
}

void pl_classifier_stop(pl_classifier *cl) {
    if (!cl) return;
    shutdown(cl->fd, SHUT_RDWR);
    pthread_join(cl->reader, NULL);
    close(cl->fd);
    int st;
    for (int i = 0; i < 100; i++) {
        if (waitpid(cl->manager, &st, WNOHANG) == cl->manager) goto reaped;
        usleep(2000);
    }
    kill(cl->manager, SIGKILL);
    waitpid(cl->manager, &st, 0);
reaped:
    pthread_cond_destroy(&cl->cv);
    pthread_mutex_destroy(&cl->mu);
    free(cl);
}
