/* audit.c — hash-chained, append-only JSON-lines decision log (see audit.h).
 *
 * Durability: every record is one write(2) of the whole line on an
 * O_APPEND fd followed by fdatasync(2), under a mutex; pl_audit_append
 * returns success (the acknowledgement the caller waits for before it
 * releases the action) only after both. A crash can therefore leave at most
 * one partial line at the end — never acknowledged — which the next
 * pl_audit_open truncates away before continuing the chain; every
 * acknowledged record precedes it and is on stable storage. The log may end
 * with a complete record whose action was never released (crash between
 * fdatasync and acknowledgement): it is a superset of released decisions.
 *
 * Integrity: each line holds "seq" and "prev" = SHA-256 (OpenSSL EVP) of
 * the previous line's bytes, so editing, deleting, inserting, duplicating
 * or reordering any line before the last is detected; changes to the tail
 * (truncation, rewriting the last line) are detected only against a head
 * hash kept elsewhere.
 *
 * Exclusion: the writer holds a non-blocking exclusive flock(2) for the
 * handle's lifetime; a second writer fails instead of forking the chain.
 * Verification reads without the lock.
 *
 * Action text is JSON-escaped; when it is not valid UTF-8 the exact bytes
 * are also kept in "action_b64" ("action" then carries U+FFFD for each
 * invalid byte). */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "probelogits.h"

struct pl_audit {
    int fd;              /* O_RDWR|O_APPEND, exclusively flock'ed */
    pthread_mutex_t mu;  /* serialises seq/prev assignment, write and fdatasync */
    unsigned long count; /* records written through this handle */
    uint64_t seq;        /* seq of the next record */
    uint64_t size;       /* file length after the last acknowledged record */
    char head[65];       /* hex SHA-256 of the last record (genesis when empty) */
    int failed;          /* a write or sync failed: refuse further records */
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
        size_t run = i;
        while (run < len && (unsigned char)s[run] >= 0x20 && (unsigned char)s[run] < 0x7f && s[run] != '"' &&
               s[run] != '\\')
            run++;
        if (run > i) { /* plain printable ASCII: copy as is */
            sb_put(b, s + i, run - i);
            i = run;
            continue;
        }
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
        char o[4] = {T[v >> 18 & 63], T[v >> 12 & 63], i + 1 < len ? T[v >> 6 & 63] : '=',
                     i + 2 < len ? T[v & 63] : '='};
        sb_put(b, o, 4);
    }
    sb_put(b, "\"", 1);
}

/* Lowercase hex SHA-256 of s[0..n) into hex (65 bytes). Returns 0 or -1. */
static int sha256_hex(const char *s, size_t n, char hex[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(s, n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) return -1;
    static const char X[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        hex[2 * i] = X[md[i] >> 4];
        hex[2 * i + 1] = X[md[i] & 15];
    }
    hex[64] = 0;
    return 0;
}

/* Shortest "%.Ng" that reads back as exactly v (v finite). */
static void fmt_double(char *out, size_t cap, double v) {
    snprintf(out, cap, "%.15g", v);
    if (strtod(out, NULL) != v) snprintf(out, cap, "%.17g", v);
}

/* ---- scanning (shared by open and verify) ---------------------------------- */

/* State of a walk over a log. */
typedef struct scan {
    uint64_t records;         /* valid records so far */
    uint64_t good_end;        /* offset just past the last valid record's newline */
    char head[65];            /* hash of the last valid record (genesis at start) */
    pl_audit_problem problem; /* first problem, PL_AUDIT_INTACT while none */
    uint64_t line;            /* 1-based line of the problem */
    char reason[200];         /* description of the problem */
} scan;

static void scan_problem(scan *s, pl_audit_problem p, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void scan_problem(scan *s, pl_audit_problem p, const char *fmt, ...) {
    s->problem = p;
    s->line = s->records + 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->reason, sizeof s->reason, fmt, ap);
    va_end(ap);
}

static int is_hex64(const char *h, size_t n) {
    if (n != 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f'))) return 0;
    return 1;
}

/* Checks one complete line (without its newline) against the chain so far;
 * on success advances the chain. Returns 0, or -1 with s->problem set. */
static int scan_line(scan *s, const char *line, size_t len) {
    if (len > PL_AUDIT_MAX_LINE) {
        scan_problem(s, PL_AUDIT_BAD_JSON, "line longer than %zu bytes", PL_AUDIT_MAX_LINE);
        return -1;
    }
    if (memchr(line, 0, len)) {
        scan_problem(s, PL_AUDIT_BAD_JSON, "NUL byte in the line");
        return -1;
    }
    json_tokener *tok = json_tokener_new_ex(16);
    if (!tok) {
        scan_problem(s, PL_AUDIT_BAD_JSON, "out of memory");
        return -1;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, line, (int)len);
    int ok = o && json_tokener_get_error(tok) == json_tokener_success && json_tokener_get_parse_end(tok) == len &&
             json_object_is_type(o, json_type_object);
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(o);
        scan_problem(s, PL_AUDIT_BAD_JSON, "not a single JSON object");
        return -1;
    }
    json_object *jseq, *jprev;
    int rc = -1;
    if (!json_object_object_get_ex(o, "seq", &jseq) || !json_object_is_type(jseq, json_type_int) ||
        json_object_get_int64(jseq) < 0) {
        scan_problem(s, PL_AUDIT_BAD_FIELD, "\"seq\" missing or not a non-negative integer");
    } else if ((uint64_t)json_object_get_int64(jseq) != s->records) {
        scan_problem(s, PL_AUDIT_SEQ,
                     "seq %" PRId64 " where %" PRIu64 " was expected (record missing, duplicated or out of order)",
                     json_object_get_int64(jseq), s->records);
    } else if (!json_object_object_get_ex(o, "prev", &jprev) || !json_object_is_type(jprev, json_type_string) ||
               !is_hex64(json_object_get_string(jprev), (size_t)json_object_get_string_len(jprev))) {
        scan_problem(s, PL_AUDIT_BAD_FIELD, "\"prev\" missing or not 64 lowercase hex digits");
    } else if (memcmp(json_object_get_string(jprev), s->head, 64) != 0) {
        scan_problem(s, PL_AUDIT_PREV, "prev %.16s... is not the hash of the previous record (%.16s...)",
                     json_object_get_string(jprev), s->head);
    } else if (sha256_hex(line, len, s->head) < 0) {
        scan_problem(s, PL_AUDIT_BAD_JSON, "SHA-256 failed");
    } else {
        s->records++;
        rc = 0;
    }
    json_object_put(o);
    return rc;
}

/* Walks fd from offset 0 to its end (pread: the fd's offset is untouched).
 * Returns 0 (s says what was found) or PL_ERR_IO/PL_ERR_NOMEM. */
static int scan_fd(int fd, scan *s, pl_err *err, const char *path) {
    memset(s, 0, sizeof *s);
    memcpy(s->head, PL_AUDIT_GENESIS, 65);
    enum { CHUNK = 1 << 16 };
    char *chunk = malloc(CHUNK);
    sbuf ln = {0}; /* the current, incomplete line */
    if (!chunk) return pl_fail(err, PL_ERR_NOMEM, "audit: out of memory");
    uint64_t off = 0;
    int rc = 0;
    for (;;) {
        ssize_t r = pread(fd, chunk, CHUNK, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = pl_fail(err, PL_ERR_IO, "audit: cannot read %s: %s", path, strerror(errno));
            break;
        }
        if (r == 0) break;
        size_t i = 0;
        while (i < (size_t)r && s->problem == PL_AUDIT_INTACT) {
            char *nl = memchr(chunk + i, '\n', (size_t)r - i);
            size_t take = nl ? (size_t)(nl - (chunk + i)) : (size_t)r - i;
            if (ln.n + take > PL_AUDIT_MAX_LINE) {
                if (!nl) {
                    /* keep counting but stop buffering: the line is already bad */
                    ln.n = PL_AUDIT_MAX_LINE + 1;
                    i += take;
                    continue;
                }
                scan_problem(s, PL_AUDIT_BAD_JSON, "line longer than %zu bytes", PL_AUDIT_MAX_LINE);
                break;
            }
            sb_put(&ln, chunk + i, take);
            if (ln.oom) {
                rc = pl_fail(err, PL_ERR_NOMEM, "audit: out of memory");
                break;
            }
            i += take;
            if (!nl) break;
            i++; /* the newline */
            if (scan_line(s, ln.p ? ln.p : "", ln.n) == 0) s->good_end += ln.n + 1;
            ln.n = 0;
        }
        if (rc < 0 || s->problem != PL_AUDIT_INTACT) break;
        off += (uint64_t)r;
    }
    if (rc == 0 && s->problem == PL_AUDIT_INTACT && ln.n > 0)
        scan_problem(s, PL_AUDIT_TORN, "torn record: %zu bytes without a newline at the end of the file",
                     ln.n > PL_AUDIT_MAX_LINE ? PL_AUDIT_MAX_LINE : ln.n);
    free(ln.p);
    free(chunk);
    return rc;
}

const char *pl_audit_problem_str(pl_audit_problem p) {
    switch (p) {
    case PL_AUDIT_INTACT: return "intact";
    case PL_AUDIT_BAD_JSON: return "bad JSON";
    case PL_AUDIT_BAD_FIELD: return "bad seq/prev field";
    case PL_AUDIT_SEQ: return "seq gap";
    case PL_AUDIT_PREV: return "prev mismatch";
    case PL_AUDIT_TORN: return "torn tail";
    }
    return "unknown";
}

int pl_audit_verify(const char *path, pl_audit_report *out, pl_err *err) {
    memset(out, 0, sizeof *out);
    memcpy(out->head, PL_AUDIT_GENESIS, 65);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return pl_fail(err, PL_ERR_IO, "audit: cannot open %s: %s", path, strerror(errno));
    scan s;
    int rc = scan_fd(fd, &s, err, path);
    close(fd);
    if (rc < 0) return rc;
    out->records = s.records;
    out->problem = s.problem;
    out->line = s.problem ? s.line : 0;
    out->offset = s.problem ? s.good_end : 0;
    memcpy(out->head, s.head, 65);
    snprintf(out->reason, sizeof out->reason, "%s", s.problem ? s.reason : "");
    if (s.problem)
        return pl_fail(err, PL_ERR_FORMAT, "audit: %s: line %" PRIu64 ": %s: %s", path, s.line,
                       pl_audit_problem_str(s.problem), s.reason);
    return 0;
}

/* ---- writing ---------------------------------------------------------------- */

/* fsyncs the directory holding path so a newly created log's entry is durable. */
static int sync_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy) return -ENOMEM;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (dfd < 0) return -errno;
    int rc = fsync(dfd) < 0 && errno != EINVAL ? -errno : 0;
    close(dfd);
    return rc;
}

int pl_audit_open(const char *path, pl_audit **out, pl_err *err) {
    *out = NULL;
    if (!path) return pl_fail(err, PL_ERR_ARG, "audit: no path");
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return pl_fail(err, PL_ERR_IO, "audit: cannot open %s: %s", path, strerror(errno));
    struct stat st;
    int rc;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = pl_fail(err, PL_ERR_IO, "audit: %s is not a regular file", path);
        goto fail;
    }
    while ((rc = flock(fd, LOCK_EX | LOCK_NB)) < 0 && errno == EINTR) {
    }
    if (rc < 0) {
        rc = errno == EWOULDBLOCK ? pl_fail(err, PL_ERR_STATE, "audit: %s is open for writing by another handle", path)
                                  : pl_fail(err, PL_ERR_IO, "audit: cannot lock %s: %s", path, strerror(errno));
        goto fail;
    }
    scan s;
    if ((rc = scan_fd(fd, &s, err, path)) < 0) goto fail;
    if (s.problem == PL_AUDIT_TORN) {
        /* Never acknowledged (acknowledgement follows fdatasync of the whole
         * line), so nothing acknowledged is removed. */
        if (ftruncate(fd, (off_t)s.good_end) < 0 || fsync(fd) < 0) {
            rc = pl_fail(err, PL_ERR_IO, "audit: cannot truncate the torn tail of %s: %s", path, strerror(errno));
            goto fail;
        }
    } else if (s.problem != PL_AUDIT_INTACT) {
        rc = pl_fail(err, PL_ERR_FORMAT,
                     "audit: %s: chain broken at line %" PRIu64 " (%s: %s); refusing to append (see 'probelogits "
                     "audit verify')",
                     path, s.line, pl_audit_problem_str(s.problem), s.reason);
        goto fail;
    }
    int e = sync_dir(path);
    if (e < 0) {
        rc = pl_fail(err, PL_ERR_IO, "audit: cannot sync the directory of %s: %s", path, strerror(-e));
        goto fail;
    }
    pl_audit *a = calloc(1, sizeof *a);
    if (!a) {
        rc = pl_fail(err, PL_ERR_NOMEM, "audit: out of memory");
        goto fail;
    }
    a->fd = fd;
    a->seq = s.records;
    a->size = s.good_end;
    memcpy(a->head, s.head, 65);
    pthread_mutex_init(&a->mu, NULL);
    *out = a;
    return 0;
fail:
    close(fd); /* releases the lock */
    return rc;
}

/* The record's fields after "prev", from "time" to the closing "}\n". */
static void build_body(sbuf *b, const pl_audit_rec *r) {
    const pl_verdict *v = r->v;
    char tmp[160], num[40];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(tmp, sizeof tmp,
             "\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ\",\"pid\":%d,\"tid\":%d,\"uid\":", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000, (int)r->pid, (int)r->tid);
    sb_str(b, tmp);
    if (r->has_uid) {
        snprintf(tmp, sizeof tmp, "%u", (unsigned)r->uid);
        sb_str(b, tmp);
    } else {
        sb_str(b, "null");
    }
    sb_str(b, ",\"class\":");
    sb_json(b, r->cls ? r->cls : "", r->cls ? strlen(r->cls) : 0);
    const char *text = r->text ? r->text : "";
    size_t len = r->text ? r->len : 0;
    sb_str(b, ",\"action\":");
    sb_json(b, text, len);
    if (!pl_utf8_valid(text, len)) {
        sb_str(b, ",\"action_b64\":");
        sb_b64(b, (const unsigned char *)text, len);
    }
    sb_str(b, ",\"decision\":");
    const char *d = v->decision == PL_DECISION_ALLOW ? "allow" : v->decision == PL_DECISION_WARN ? "warn" : "deny";
    sb_json(b, d, strlen(d));
    sb_str(b, ",\"p_dangerous\":");
    if (isfinite(v->p_dangerous)) {
        fmt_double(num, sizeof num, v->p_dangerous);
        sb_str(b, num);
    } else {
        sb_str(b, "null");
    }
    sb_str(b, ",\"alpha\":");
    if (r->has_alpha && isfinite(r->alpha)) {
        fmt_double(num, sizeof num, r->alpha);
        sb_str(b, num);
    } else {
        sb_str(b, "null");
    }
    sb_str(b, ",\"rule\":");
    sb_json(b, v->rule, strnlen(v->rule, sizeof v->rule));
    sb_str(b, ",\"reason\":");
    sb_json(b, v->reason, strnlen(v->reason, sizeof v->reason));
    snprintf(tmp, sizeof tmp, ",\"latency_ms\":%.3f}\n", isfinite(v->latency_ms) ? v->latency_ms : -1.0);
    sb_str(b, tmp);
}

int pl_audit_append(pl_audit *a, const pl_audit_rec *r, uint64_t *seq_out) {
    if (!a || !r || !r->v || (!r->text && r->len)) return PL_ERR_ARG;
    sbuf body = {0};
    build_body(&body, r);
    if (body.oom) {
        free(body.p);
        return PL_ERR_NOMEM;
    }
    int rc = 0;
    sbuf line = {0};
    pthread_mutex_lock(&a->mu);
    if (a->failed) {
        rc = PL_ERR_STATE;
        goto out;
    }
    char pre[128];
    snprintf(pre, sizeof pre, "{\"seq\":%" PRIu64 ",\"prev\":\"%s\",", a->seq, a->head);
    sb_str(&line, pre);
    sb_put(&line, body.p, body.n);
    if (line.oom) {
        rc = PL_ERR_NOMEM;
        goto out;
    }
    if (line.n - 1 > PL_AUDIT_MAX_LINE) {
        rc = PL_ERR_RANGE;
        goto out;
    }
    char head[65];
    if (sha256_hex(line.p, line.n - 1, head) < 0) {
        rc = PL_ERR_INTERNAL;
        goto out;
    }
    /* One write of the whole line: a crash leaves all of it, or a prefix
     * without the newline (a torn tail), never a line followed by more. */
    ssize_t w;
    do w = write(a->fd, line.p, line.n);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)line.n || fdatasync(a->fd) < 0) {
        /* Not acknowledged: best-effort removal, then refuse further records
         * (after a failed fdatasync later ones cannot be trusted). */
        if (ftruncate(a->fd, (off_t)a->size) == 0) (void)fdatasync(a->fd);
        a->failed = 1;
        rc = PL_ERR_IO;
        goto out;
    }
    if (seq_out) *seq_out = a->seq;
    a->seq++;
    a->size += line.n;
    memcpy(a->head, head, 65);
    a->count++;
out:
    pthread_mutex_unlock(&a->mu);
    free(line.p);
    free(body.p);
    return rc;
}

int pl_audit_log(pl_audit *a, pid_t pid, pid_t tid, const char *cls, const char *text, size_t len,
                 const pl_verdict *v) {
    pl_audit_rec r = {.pid = pid, .tid = tid, .cls = cls, .text = text, .len = len, .v = v};
    return pl_audit_append(a, &r, NULL);
}

unsigned long pl_audit_count(pl_audit *a) {
    pthread_mutex_lock(&a->mu);
    unsigned long n = a->count;
    pthread_mutex_unlock(&a->mu);
    return n;
}

uint64_t pl_audit_next_seq(pl_audit *a) {
    pthread_mutex_lock(&a->mu);
    uint64_t n = a->seq;
    pthread_mutex_unlock(&a->mu);
    return n;
}

void pl_audit_head(pl_audit *a, char hex[65]) {
    pthread_mutex_lock(&a->mu);
    memcpy(hex, a->head, 65);
    pthread_mutex_unlock(&a->mu);
}

void pl_audit_close(pl_audit *a) {
    if (!a) return;
    close(a->fd);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
