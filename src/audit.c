/* audit.c — append-only JSON-lines decision log (see audit.h). Durability:
 * every record is one write(2) on an O_APPEND fd followed by fdatasync(2),
 * under a mutex, before the decision is acted on; any failure is reported so
 * the caller denies. Action text is JSON-escaped; when it is not valid UTF-8
 * the exact bytes are also kept in "action_b64" ("action" then carries
 * U+FFFD for each invalid byte). */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "probelogits.h"

struct pl_audit {
    int fd;              /* O_WRONLY|O_APPEND */
    pthread_mutex_t mu;  /* serialises write + fdatasync */
    unsigned long count; /* records written */
};

typedef struct sbuf {
    char *p;    /* malloc'ed */
    size_t n;   /* used */
    size_t cap; /* allocated */
    int oom;    /* an allocation failed */
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* JSON string with escapes; invalid UTF-8 bytes become U+FFFD. */
static void sb_json(sbuf *b, const char *s, size_t len) {
    sb_put(b, "\"", 1);
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            char e[8];
            if (c == '"' || c == '\\') {
                e[0] = '\\';
                e[1] = (char)c;
                sb_put(b, e, 2);
            } else if (c < 0x20 || c == 0x7f) {
                snprintf(e, sizeof e, "\\u%04x", c);
                sb_put(b, e, 6);
            } else {
                sb_put(b, (const char *)&c, 1);
            }
            i++;
            continue;
        }
        size_t l = pl_utf8_len(s + i, len - i);
        if (l > 1 && pl_utf8_valid(s + i, l)) {
            sb_put(b, s + i, l);
            i += l;
        } else {
            sb_str(b, "\\ufffd");
            i++;
        }
    }
    sb_put(b, "\"", 1);
}

static void sb_b64(sbuf *b, const unsigned char *s, size_t len) {
    static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    sb_put(b, "\"", 1);
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < len ? (unsigned)s[i + 1] << 8 : 0) | (i + 2 < len ? s[i + 2] : 0);
        char o[4] = {T[v >> 18 & 63], T[v >> 12 & 63], i + 1 < len ? T[v >> 6 & 63] : '=', i + 2 < len ? T[v & 63] : '='};
        sb_put(b, o, 4);
    }
    sb_put(b, "\"", 1);
}

int pl_audit_open(const char *path, pl_audit **out, pl_err *err) {
    *out = NULL;
    pl_audit *a = calloc(1, sizeof *a);
    if (!a) return pl_fail(err, PL_ERR_NOMEM, "audit: out of memory");
    a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (a->fd < 0) {
        int e = errno;
        free(a);
        return pl_fail(err, PL_ERR_IO, "audit: cannot open %s: %s", path, strerror(e));
    }
    pthread_mutex_init(&a->mu, NULL);
    *out = a;
    return 0;
}

int pl_audit_log(pl_audit *a, pid_t pid, pid_t tid, const char *cls, const char *text, size_t len,
                 const pl_verdict *v) {
    if (!a) return PL_ERR_ARG;
    sbuf b = {0};
    char tmp[160];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(tmp, sizeof tmp, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ\",\"pid\":%d,\"tid\":%d,\"class\":",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000,
             (int)pid, (int)tid);
    sb_str(&b, tmp);
    sb_json(&b, cls ? cls : "", cls ? strlen(cls) : 0);
    sb_str(&b, ",\"action\":");
    sb_json(&b, text, len);
    if (!pl_utf8_valid(text, len)) {
        sb_str(&b, ",\"action_b64\":");
        sb_b64(&b, (const unsigned char *)text, len);
    }
    sb_str(&b, ",\"decision\":");
    const char *d = v->decision == PL_DECISION_ALLOW ? "allow" : v->decision == PL_DECISION_WARN ? "warn" : "deny";
    sb_json(&b, d, strlen(d));
    if (isfinite(v->p_dangerous))
        snprintf(tmp, sizeof tmp, ",\"p\":%.6g", v->p_dangerous);
    else
        snprintf(tmp, sizeof tmp, ",\"p\":null");
    sb_str(&b, tmp);
    sb_str(&b, ",\"rule\":");
    sb_json(&b, v->rule, strnlen(v->rule, sizeof v->rule));
    sb_str(&b, ",\"reason\":");
    sb_json(&b, v->reason, strnlen(v->reason, sizeof v->reason));
    snprintf(tmp, sizeof tmp, ",\"latency_ms\":%.3f}\n", isfinite(v->latency_ms) ? v->latency_ms : -1.0);
    sb_str(&b, tmp);
    if (b.oom) {
        free(b.p);
        return PL_ERR_NOMEM;
    }
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    size_t off = 0;
    while (off < b.n) {
        ssize_t w = write(a->fd, b.p + off, b.n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            rc = PL_ERR_IO;
            break;
        }
        off += (size_t)w;
    }
    if (rc == 0 && fdatasync(a->fd) < 0) rc = PL_ERR_IO;
    if (rc == 0) a->count++;
    pthread_mutex_unlock(&a->mu);
    free(b.p);
    return rc;
}

unsigned long pl_audit_count(pl_audit *a) {
    pthread_mutex_lock(&a->mu);
    unsigned long n = a->count;
    pthread_mutex_unlock(&a->mu);
    return n;
}

void pl_audit_close(pl_audit *a) {
    if (!a) return;
    close(a->fd);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
