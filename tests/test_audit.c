/* test_audit.c — the hash-chained audit log: chain round trip, verify's
 * detection of flipped bytes, deleted, reordered and duplicated lines and
 * torn tails, torn-tail repair on open, invalid UTF-8 actions, concurrent
 * writers, writer exclusion, and a crash test that SIGKILLs a writing child
 * at random moments and then checks that every acknowledged record is in an
 * intact log (PL_STRESS=1 for many more rounds). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "probelogits.h"
#include "testlib.h"

static char dir[96]; /* scratch directory (tmpfs when available) */
static char errbuf[512];
static pl_err err = {errbuf, sizeof errbuf};

static void path_of(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", dir, name); }

static pl_verdict verdict(pl_decision d, double p) {
    pl_verdict v;
    memset(&v, 0, sizeof v);
    v.decision = d;
    v.p_dangerous = p;
    v.latency_ms = 1.5;
    snprintf(v.rule, sizeof v.rule, "%s", isfinite(p) ? "" : "policy.yaml:12");
    snprintf(v.reason, sizeof v.reason, "%s", isfinite(p) ? "probe" : "rule \"quoted\"");
    return v;
}

/* Appends n records "action i" through a fresh handle. Returns 0 or -1. */
static int write_log(const char *path, int n) {
    pl_audit *a;
    if (pl_audit_open(path, &a, &err) < 0) return -1;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char text[64];
        snprintf(text, sizeof text, "action %d", i);
        pl_verdict v = verdict(i % 3 ? PL_DECISION_ALLOW : PL_DECISION_DENY, i % 2 ? 0.25 : NAN);
        pl_audit_rec r = {.pid = 100,
                          .tid = 101,
                          .has_uid = 1,
                          .uid = 65534,
                          .cls = "exec",
                          .text = text,
                          .len = strlen(text),
                          .has_alpha = 1,
                          .alpha = 0.8,
                          .v = &v};
        rc = pl_audit_append(a, &r, NULL);
    }
    pl_audit_close(a);
    return rc;
}

/* ---- whole-file line editing --------------------------------------------- */

typedef struct lines {
    char *data;   /* file bytes */
    size_t len;   /* bytes */
    size_t n;     /* lines (a last line without newline counts) */
    size_t *off;  /* start of line i */
    size_t *llen; /* length of line i without newline */
} lines;

static int lines_read(const char *path, lines *L) {
    memset(L, 0, sizeof *L);
    if (pl_read_file(path, &L->data, &L->len, &err) < 0) return -1;
    L->off = calloc(L->len + 1, sizeof *L->off);
    L->llen = calloc(L->len + 1, sizeof *L->llen);
    for (size_t i = 0; i < L->len;) {
        char *nl = memchr(L->data + i, '\n', L->len - i);
        size_t e = nl ? (size_t)(nl - L->data) : L->len;
        L->off[L->n] = i;
        L->llen[L->n] = e - i;
        L->n++;
        i = e + 1;
    }
    return 0;
}

static void lines_free(lines *L) {
    free(L->data);
    free(L->off);
    free(L->llen);
}

/* Writes the lines in order idx[0..n) (each with its newline). */
static void lines_write(const char *path, const lines *L, const int *idx, int n) {
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < n; i++) {
        fwrite(L->data + L->off[idx[i]], 1, L->llen[idx[i]], f);
        fputc('\n', f);
    }
    fclose(f);
}

static void write_bytes(const char *path, const char *p, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

static void sha_hex(const char *s, size_t n, char hex[65]) {
    unsigned char md[32];
    unsigned int ml = 0;
    EVP_Digest(s, n, md, &ml, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static json_object *parse_line(const lines *L, size_t i) {
    char *s = strndup(L->data + L->off[i], L->llen[i]);
    json_object *o = json_tokener_parse(s);
    free(s);
    return o;
}

static const char *jstr(json_object *o, const char *k) {
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                                                           : NULL;
}

static int jnull(json_object *o, const char *k) {
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && v == NULL;
}

static int64_t jint(json_object *o, const char *k) {
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
}

static double jnum(json_object *o, const char *k) {
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && v ? json_object_get_double(v) : NAN;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_round_trip(void) {
    char p[160];
    path_of(p, sizeof p, "rt.jsonl");
    unlink(p);
    pl_audit *a;
    CHECK(pl_audit_open(p, &a, &err) == 0, "open: %s", errbuf);
    if (!a) return;
    CHECK(pl_audit_next_seq(a) == 0, "empty log starts at seq 0");
    for (int i = 0; i < 10; i++) {
        char text[32];
        snprintf(text, sizeof text, "ls -l %d", i);
        pl_verdict v = verdict(i == 3 ? PL_DECISION_DENY : PL_DECISION_ALLOW, i == 3 ? NAN : 0.1 * i);
        uint64_t seq = 99;
        if (i % 2) {
            CHECK(pl_audit_log(a, 10 + i, 20 + i, "exec", text, strlen(text), &v) == 0, "log %d", i);
        } else {
            pl_audit_rec r = {.pid = 10 + i,
                              .tid = 20 + i,
                              .has_uid = 1,
                              .uid = (uid_t)(i ? 65534 : 0),
                              .cls = "exec",
                              .text = text,
                              .len = strlen(text),
                              .has_alpha = 1,
                              .alpha = 0.8,
                              .v = &v};
            CHECK(pl_audit_append(a, &r, &seq) == 0 && seq == (uint64_t)i, "append %d -> seq %" PRIu64, i, seq);
        }
    }
    char head[65];
    pl_audit_head(a, head);
    CHECK(pl_audit_count(a) == 10 && pl_audit_next_seq(a) == 10, "count");
    pl_audit_close(a);

    pl_audit_report rep;
    CHECK(pl_audit_verify(p, &rep, &err) == 0, "verify: %s", errbuf);
    CHECK(rep.problem == PL_AUDIT_INTACT && rep.records == 10 && rep.line == 0, "report %d %" PRIu64, rep.problem,
          rep.records);
    CHECK(!strcmp(rep.head, head), "head %s vs %s", rep.head, head);

    /* Independent recomputation of the chain and the fields. */
    lines L;
    CHECK(lines_read(p, &L) == 0 && L.n == 10, "lines");
    char prev[65] = PL_AUDIT_GENESIS;
    for (size_t i = 0; i < L.n; i++) {
        json_object *o = parse_line(&L, i);
        CHECK(o != NULL, "line %zu parses", i);
        if (!o) continue;
        CHECK(!strncmp(L.data + L.off[i], "{\"seq\":", 7), "seq first");
        CHECK(jint(o, "seq") == (int64_t)i, "seq %zu", i);
        CHECK(jstr(o, "prev") && !strcmp(jstr(o, "prev"), prev), "prev of %zu", i);
        CHECK(jint(o, "pid") == (int64_t)(10 + i) && jint(o, "tid") == (int64_t)(20 + i), "pid/tid");
        if (i % 2) {
            CHECK(jnull(o, "uid") && jnull(o, "alpha"), "unknown uid/alpha are null (line %zu)", i);
        } else {
            CHECK(jint(o, "uid") == (i ? 65534 : 0) && jnum(o, "alpha") == 0.8, "uid/alpha (line %zu)", i);
        }
        if (i == 3)
            CHECK(jnull(o, "p_dangerous") && !strcmp(jstr(o, "decision"), "deny"), "NaN p is null");
        else
            CHECK(jnum(o, "p_dangerous") == 0.1 * (double)i, "p_dangerous exact (line %zu)", i);
        CHECK(jstr(o, "time") && jstr(o, "class") && !strcmp(jstr(o, "class"), "exec") && jstr(o, "rule") &&
                  jstr(o, "reason") && jnum(o, "latency_ms") == 1.5,
              "fields of line %zu", i);
        json_object_put(o);
        sha_hex(L.data + L.off[i], L.llen[i], prev);
    }
    CHECK(!strcmp(prev, head), "head is the hash of the last line");
    lines_free(&L);

    /* Reopening continues the chain. */
    CHECK(write_log(p, 5) == 0, "continue: %s", errbuf);
    CHECK(pl_audit_verify(p, &rep, &err) == 0 && rep.records == 15, "15 records: %s", errbuf);
    CHECK(lines_read(p, &L) == 0 && L.n == 15, "15 lines");
    json_object *o = parse_line(&L, 10);
    CHECK(o && jint(o, "seq") == 10 && !strcmp(jstr(o, "prev"), head), "seq 10 chains onto the old head");
    json_object_put(o);
    lines_free(&L);

    /* An empty file is an intact, empty log. */
    path_of(p, sizeof p, "empty.jsonl");
    write_bytes(p, "", 0);
    CHECK(pl_audit_verify(p, &rep, &err) == 0 && rep.records == 0 && !strcmp(rep.head, PL_AUDIT_GENESIS), "empty");
    path_of(p, sizeof p, "missing.jsonl");
    unlink(p);
    CHECK(pl_audit_verify(p, &rep, &err) == PL_ERR_IO, "missing file is an I/O error");
}

/* Verifies a tampered copy; expects problem at line. */
static void expect_problem(const char *what, const char *p, pl_audit_problem prob, uint64_t line, uint64_t records) {
    pl_audit_report rep;
    errbuf[0] = 0;
    int rc = pl_audit_verify(p, &rep, &err);
    CHECK(rc == PL_ERR_FORMAT && rep.problem == prob && rep.line == line && rep.records == records,
          "%s: rc %d problem %s line %" PRIu64 " records %" PRIu64 " (%s)", what, rc, pl_audit_problem_str(rep.problem),
          rep.line, rep.records, errbuf);
    if (prob != PL_AUDIT_TORN) {
        /* A writer refuses to extend a broken chain, naming the line, and leaves the file alone. */
        struct stat s0, s1;
        stat(p, &s0);
        pl_audit *a = NULL;
        char want[32];
        snprintf(want, sizeof want, "line %" PRIu64, line);
        rc = pl_audit_open(p, &a, &err);
        CHECK(rc == PL_ERR_FORMAT && !a && strstr(errbuf, want), "%s: open must fail closed: %d %s", what, rc, errbuf);
        pl_audit_close(a);
        stat(p, &s1);
        CHECK(s0.st_size == s1.st_size, "%s: refused open changed the file", what);
    }
}

static void test_tamper(void) {
    char base[160], p[160];
    path_of(base, sizeof base, "base.jsonl");
    path_of(p, sizeof p, "tampered.jsonl");
    unlink(base);
    CHECK(write_log(base, 8) == 0, "write: %s", errbuf);
    lines L;
    CHECK(lines_read(base, &L) == 0 && L.n == 8, "8 lines");
    int idx[16];
    for (int i = 0; i < 8; i++) idx[i] = i;

    /* flipped byte inside the action of line 3 (index 2): still JSON, so line 4's prev breaks */
    char *copy = malloc(L.len);
    memcpy(copy, L.data, L.len);
    char *act = memmem(copy + L.off[2], L.llen[2], "action 2", 8);
    CHECK(act != NULL, "action text");
    if (act) act[7] ^= 1;
    write_bytes(p, copy, L.len);
    expect_problem("flipped action byte", p, PL_AUDIT_PREV, 4, 3);
    /* flipped byte in the structure of line 3: bad JSON */
    memcpy(copy, L.data, L.len);
    copy[L.off[2]] = '[';
    write_bytes(p, copy, L.len);
    expect_problem("flipped brace", p, PL_AUDIT_BAD_JSON, 3, 2);
    /* flipped hex digit of line 3's prev */
    memcpy(copy, L.data, L.len);
    char *pv = memmem(copy + L.off[2], L.llen[2], "\"prev\":\"", 8);
    if (pv) pv[8 + 10] = pv[8 + 10] == 'a' ? 'b' : 'a';
    write_bytes(p, copy, L.len);
    expect_problem("flipped prev digit", p, PL_AUDIT_PREV, 3, 2);
    /* flipped byte in the last line: the chain cannot see it, the head hash can */
    memcpy(copy, L.data, L.len);
    act = memmem(copy + L.off[7], L.llen[7], "action 7", 8);
    if (act) act[7] ^= 1;
    write_bytes(p, copy, L.len);
    pl_audit_report good, rep;
    pl_audit_verify(base, &good, &err);
    CHECK(pl_audit_verify(p, &rep, &err) == 0 && strcmp(rep.head, good.head) != 0, "last-line edit changes the head");
    free(copy);

    /* deleted line 3 */
    int del[] = {0, 1, 3, 4, 5, 6, 7};
    lines_write(p, &L, del, 7);
    expect_problem("deleted line", p, PL_AUDIT_SEQ, 3, 2);
    /* reordered lines 3 and 4 */
    int swp[] = {0, 1, 3, 2, 4, 5, 6, 7};
    lines_write(p, &L, swp, 8);
    expect_problem("reordered pair", p, PL_AUDIT_SEQ, 3, 2);
    /* duplicated line 3 */
    int dup[] = {0, 1, 2, 2, 3, 4, 5, 6, 7};
    lines_write(p, &L, dup, 9);
    expect_problem("duplicated line", p, PL_AUDIT_SEQ, 4, 3);
    /* first line deleted */
    lines_write(p, &L, idx + 1, 7);
    expect_problem("deleted first line", p, PL_AUDIT_SEQ, 1, 0);
    /* an empty line in the middle */
    memcpy(errbuf, "", 1);
    {
        FILE *f = fopen(p, "wb");
        fwrite(L.data, 1, L.off[3], f);
        fputc('\n', f);
        fwrite(L.data + L.off[3], 1, L.len - L.off[3], f);
        fclose(f);
    }
    expect_problem("blank line", p, PL_AUDIT_BAD_JSON, 4, 3);
    /* trailing garbage after the object */
    {
        FILE *f = fopen(p, "wb");
        fwrite(L.data, 1, L.off[3] - 1, f);
        fputs(" x\n", f);
        fwrite(L.data + L.off[3], 1, L.len - L.off[3], f);
        fclose(f);
    }
    expect_problem("trailing garbage", p, PL_AUDIT_BAD_JSON, 3, 2);

    /* torn tail: the last record cut in the middle (no newline) */
    size_t cut = L.off[7] + L.llen[7] / 2;
    write_bytes(p, L.data, cut);
    expect_problem("torn tail", p, PL_AUDIT_TORN, 8, 7);
    pl_audit_verify(p, &rep, &err);
    CHECK(rep.offset == L.off[7], "torn offset %" PRIu64, rep.offset);
    /* a complete record without its newline is torn too (never acknowledged) */
    write_bytes(p, L.data, L.len - 1);
    expect_problem("missing final newline", p, PL_AUDIT_TORN, 8, 7);
    /* open repairs the torn tail and continues with seq 7, prev = hash of line 7 */
    write_bytes(p, L.data, cut);
    pl_audit *a = NULL;
    CHECK(pl_audit_open(p, &a, &err) == 0, "open repairs a torn tail: %s", errbuf);
    if (a) {
        char head[65], want[65];
        sha_hex(L.data + L.off[6], L.llen[6], want);
        pl_audit_head(a, head);
        CHECK(pl_audit_next_seq(a) == 7 && !strcmp(head, want), "continues after the last good record");
        struct stat st;
        stat(p, &st);
        CHECK((size_t)st.st_size == L.off[7], "torn bytes truncated (%lld)", (long long)st.st_size);
        pl_verdict v = verdict(PL_DECISION_ALLOW, 0.5);
        uint64_t seq = 0;
        CHECK(pl_audit_log(a, 1, 1, "exec", "after repair", 12, &v) == 0, "append after repair");
        pl_audit_rec r = {.pid = 1, .tid = 1, .text = "x", .len = 1, .v = &v};
        CHECK(pl_audit_append(a, &r, &seq) == 0 && seq == 8, "seq 8");
        pl_audit_close(a);
        lines M;
        CHECK(lines_read(p, &M) == 0 && M.n == 9, "9 lines after repair");
        json_object *o = parse_line(&M, 7);
        CHECK(o && jint(o, "seq") == 7 && !strcmp(jstr(o, "prev"), want) && !strcmp(jstr(o, "action"), "after repair"),
              "repaired record chains onto line 7");
        json_object_put(o);
        lines_free(&M);
        CHECK(pl_audit_verify(p, &rep, &err) == 0 && rep.records == 9, "verify after repair: %s", errbuf);
    }
    /* torn tail that is only NUL bytes (a crash that extended the size but not the data) */
    {
        char *z = calloc(1, L.len + 100);
        memcpy(z, L.data, L.len);
        write_bytes(p, z, L.len + 100);
        free(z);
    }
    expect_problem("NUL tail", p, PL_AUDIT_TORN, 9, 8);
    CHECK(write_log(p, 1) == 0, "open repairs a NUL tail: %s", errbuf);
    CHECK(pl_audit_verify(p, &rep, &err) == 0 && rep.records == 9, "9 records after NUL repair: %s", errbuf);
    lines_free(&L);
}

static void test_utf8(void) {
    char p[160];
    path_of(p, sizeof p, "utf8.jsonl");
    unlink(p);
    pl_audit *a;
    CHECK(pl_audit_open(p, &a, &err) == 0, "open: %s", errbuf);
    if (!a) return;
    static const char bad[] = "rm -rf /tmp/\xff\xfe\x80 \"q\"\\ \x01\t\xc3\xa9 \xed\xa0\x80";
    static const char nul[] = "a\0b";
    pl_verdict v = verdict(PL_DECISION_DENY, 0.99);
    CHECK(pl_audit_log(a, 1, 2, "file_delete", bad, sizeof bad - 1, &v) == 0, "invalid utf-8");
    CHECK(pl_audit_log(a, 1, 2, "exec", nul, 3, &v) == 0, "NUL byte");
    CHECK(pl_audit_log(a, 1, 2, NULL, NULL, 0, &v) == 0, "empty");
    pl_audit_close(a);
    pl_audit_report rep;
    CHECK(pl_audit_verify(p, &rep, &err) == 0 && rep.records == 3, "verify: %s", errbuf);
    lines L;
    CHECK(lines_read(p, &L) == 0 && L.n == 3, "lines");
    json_object *o = parse_line(&L, 0);
    const char *b64 = o ? jstr(o, "action_b64") : NULL;
    CHECK(b64 != NULL, "action_b64 present");
    if (b64) {
        unsigned char dec[256];
        int n = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)strlen(b64));
        size_t pad = strlen(b64) >= 2 ? (b64[strlen(b64) - 1] == '=') + (b64[strlen(b64) - 2] == '=') : 0;
        CHECK(n >= 0 && (size_t)n - pad == sizeof bad - 1 && !memcmp(dec, bad, sizeof bad - 1), "exact bytes kept");
    }
    CHECK(o && strstr(jstr(o, "action"), "\xef\xbf\xbd") && strstr(jstr(o, "action"), "\"q\"\\ \x01\t\xc3\xa9"),
          "escaped text with U+FFFD");
    json_object_put(o);
    o = parse_line(&L, 1);
    json_object *act;
    CHECK(o && json_object_object_get_ex(o, "action", &act) && json_object_get_string_len(act) == 3 &&
              !memcmp(json_object_get_string(act), nul, 3) && !jstr(o, "action_b64"),
          "NUL escaped as \\u0000");
    json_object_put(o);
    o = parse_line(&L, 2);
    CHECK(o && !strcmp(jstr(o, "action"), "") && !strcmp(jstr(o, "class"), ""), "empty action and class");
    json_object_put(o);
    lines_free(&L);
}

typedef struct thr_arg {
    pl_audit *a; /* shared handle */
    int id;      /* thread number */
    int n;       /* records to write */
    int fails;   /* appends that failed */
} thr_arg;

static void *writer(void *p) {
    thr_arg *t = p;
    for (int i = 0; i < t->n; i++) {
        char text[64];
        snprintf(text, sizeof text, "thread %d record %d", t->id, i);
        pl_verdict v = verdict(PL_DECISION_ALLOW, 0.01);
        pl_audit_rec r = {.pid = 1, .tid = t->id, .text = text, .len = strlen(text), .v = &v};
        if (pl_audit_append(t->a, &r, NULL) != 0) t->fails++;
    }
    return NULL;
}

static void test_concurrent(void) {
    char p[160];
    path_of(p, sizeof p, "conc.jsonl");
    unlink(p);
    pl_audit *a;
    CHECK(pl_audit_open(p, &a, &err) == 0, "open: %s", errbuf);
    if (!a) return;
    /* A second writer, in this process or another, is refused. */
    pl_audit *b = NULL;
    CHECK(pl_audit_open(p, &b, &err) == PL_ERR_STATE && !b, "second open in-process refused: %s", errbuf);
    pid_t c = fork();
    if (c == 0) {
        pl_audit *x = NULL;
        _exit(pl_audit_open(p, &x, &err) == PL_ERR_STATE ? 0 : 1);
    }
    int st = 0;
    waitpid(c, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "second open in another process refused");

    thr_arg t[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (thr_arg){.a = a, .id = i, .n = 500};
        pthread_create(&th[i], NULL, writer, &t[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(t[i].fails == 0, "thread %d: %d failures", i, t[i].fails);
    }
    CHECK(pl_audit_count(a) == 2000, "count %lu", pl_audit_count(a));
    pl_audit_close(a);
    pl_audit_report rep;
    CHECK(pl_audit_verify(p, &rep, &err) == 0 && rep.records == 2000, "verify: %s", errbuf);
    /* After close another writer may open it. */
    CHECK(write_log(p, 1) == 0, "reopen after close: %s", errbuf);
}

/* ---- crash test ------------------------------------------------------------- */

/* What the child reports over the pipe after each acknowledged append. */
typedef struct ack {
    uint64_t seq;   /* seq pl_audit_append returned */
    uint32_t round; /* crash round */
    uint32_t i;     /* record index within the round (names the action) */
} ack;

#define CRASH_TEXT (256 << 10) /* longest crash-test action */

static size_t action_text(char *buf, uint32_t round, uint32_t i) {
    int n = snprintf(buf, 64, "crash r=%u i=%u pad=", round, i);
    /* Mostly short records, sometimes long ones so kills land inside write(). */
    size_t pad = (i * 2654435761u >> 7) % 8 == 0 ? (i * 40503u + round * 7919u) % (CRASH_TEXT - 64) : i % 50;
    memset(buf + n, 'x', pad);
    return (size_t)n + pad;
}

static void crash_child(const char *p, int wfd, uint32_t round) {
    pl_audit *a;
    if (pl_audit_open(p, &a, &err) < 0) _exit(3);
    static char text[CRASH_TEXT];
    for (uint32_t i = 0;; i++) {
        size_t n = action_text(text, round, i);
        pl_verdict v = verdict(i % 4 ? PL_DECISION_ALLOW : PL_DECISION_DENY, 0.5);
        pl_audit_rec r = {.pid = getpid(),
                          .tid = getpid(),
                          .has_uid = 1,
                          .uid = 65534,
                          .cls = "exec",
                          .text = text,
                          .len = n,
                          .v = &v};
        uint64_t seq;
        if (pl_audit_append(a, &r, &seq) != 0) _exit(4);
        ack k = {seq, round, i}; /* acknowledged: the agent would now observe the decision */
        if (write(wfd, &k, sizeof k) != (ssize_t)sizeof k) _exit(5);
    }
}

/* Totals over the crash test. */
typedef struct crash_stats {
    size_t acks;   /* acknowledged appends */
    uint64_t recs; /* records in the logs */
    int torn;      /* torn tails found after a kill */
    int reopens;   /* continuity checks by the parent */
    int open_fail; /* children that exited instead of being killed */
} crash_stats;

static void add_ack(ack **acks, size_t *n, size_t *cap, ack k) {
    if (*n == *cap) *acks = realloc(*acks, (*cap *= 2) * sizeof **acks);
    (*acks)[(*n)++] = k;
}

/* Rounds [r0, r1) against one fresh log, then the full check. */
static void crash_epoch(const char *p, int r0, int r1, crash_stats *cs, unsigned seed) {
    unlink(p);
    size_t cap = 1024, n_acks = 0;
    ack *acks = malloc(cap * sizeof *acks);
    for (int r = r0; r < r1; r++) {
        int pfd[2];
        if (pipe(pfd) < 0) break;
        pid_t c = fork();
        if (c == 0) {
            close(pfd[0]);
            crash_child(p, pfd[1], (uint32_t)r);
        }
        close(pfd[1]);
        /* Drain acknowledgements while waiting a random time, then kill. */
        fcntl(pfd[0], F_SETFL, O_NONBLOCK);
        double until = pl_now() + (rand() % 5000) * 1e-6;
        ack k;
        for (;;) {
            if (read(pfd[0], &k, sizeof k) == (ssize_t)sizeof k) {
                add_ack(&acks, &n_acks, &cap, k);
                continue;
            }
            if (pl_now() >= until) break;
        }
        kill(c, SIGKILL);
        int st;
        waitpid(c, &st, 0);
        if (WIFEXITED(st)) cs->open_fail++;
        fcntl(pfd[0], F_SETFL, 0);
        while (read(pfd[0], &k, sizeof k) == (ssize_t)sizeof k) add_ack(&acks, &n_acks, &cap, k);
        close(pfd[0]);
        pl_audit_report rep;
        if (pl_audit_verify(p, &rep, &err) != 0 && access(p, F_OK) == 0) { /* (killed before creating it) */
            cs->torn += rep.problem == PL_AUDIT_TORN;
            CHECK(rep.problem == PL_AUDIT_TORN, "round %d: only a torn tail may follow a crash: %s", r, errbuf);
        }
        if (r % 4 == 3) { /* the parent, as a restarted supervisor, reopens and checks continuity */
            pl_audit *a;
            CHECK(pl_audit_open(p, &a, &err) == 0, "round %d reopen: %s", r, errbuf);
            if (a) {
                uint64_t max = 0;
                for (size_t j = 0; j < n_acks; j++) max = acks[j].seq + 1 > max ? acks[j].seq + 1 : max;
                CHECK(pl_audit_next_seq(a) >= max, "round %d: next seq %" PRIu64 " < acknowledged %" PRIu64, r,
                      pl_audit_next_seq(a), max);
                pl_audit_close(a);
                cs->reopens++;
            }
        }
    }
    /* Final repair, then every acknowledged record must be there, with its action. */
    pl_audit *a;
    CHECK(pl_audit_open(p, &a, &err) == 0, "final open: %s", errbuf);
    pl_audit_close(a);
    pl_audit_report rep;
    CHECK(pl_audit_verify(p, &rep, &err) == 0, "final verify: %s", errbuf);
    lines L;
    CHECK(lines_read(p, &L) == 0 && L.n == rep.records, "line count %zu vs %" PRIu64, L.n, rep.records);
    size_t missing = 0, wrong = 0;
    static char want[CRASH_TEXT];
    for (size_t j = 0; j < n_acks; j++) {
        if (acks[j].seq >= L.n) {
            missing++;
            continue;
        }
        json_object *o = parse_line(&L, acks[j].seq);
        json_object *act;
        size_t wn = action_text(want, acks[j].round, acks[j].i);
        if (!o || jint(o, "seq") != (int64_t)acks[j].seq || !json_object_object_get_ex(o, "action", &act) ||
            (size_t)json_object_get_string_len(act) != wn || memcmp(json_object_get_string(act), want, wn) != 0)
            wrong++;
        json_object_put(o);
    }
    CHECK(missing == 0 && wrong == 0, "rounds %d..%d: %zu acknowledged records missing, %zu different (PL_SEED=%u)", r0,
          r1 - 1, missing, wrong, seed);
    cs->acks += n_acks;
    cs->recs += rep.records;
    lines_free(&L);
    free(acks);
}

static void test_crash(void) {
    int stress = getenv("PL_STRESS") && atoi(getenv("PL_STRESS")) > 0;
    int rounds = stress ? 2000 : 200, per_epoch = 25;
    char p[160];
    path_of(p, sizeof p, "crash.jsonl");
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    if (getenv("PL_SEED")) seed = (unsigned)atoi(getenv("PL_SEED"));
    srand(seed);
    crash_stats cs = {0};
    double t0 = pl_now();
    for (int r = 0; r < rounds; r += per_epoch) crash_epoch(p, r, r + per_epoch, &cs, seed);
    CHECK(cs.open_fail == 0, "%d children failed to open or append", cs.open_fail);
    CHECK(cs.acks > 0, "no acknowledgements at all");
    printf("crash test: %d rounds, %zu acknowledged, %" PRIu64 " records, %d torn tails repaired, %d reopen checks, "
           "%.1f s (PL_SEED=%u)\n",
           rounds, cs.acks, cs.recs, cs.torn, cs.reopens, pl_now() - t0, seed);
}

static void rm_dir(void) {
    static const char *names[] = {"rt.jsonl",   "empty.jsonl", "base.jsonl", "tampered.jsonl",
                                  "utf8.jsonl", "conc.jsonl",  "crash.jsonl"};
    char p[160];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        path_of(p, sizeof p, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    struct stat st;
    snprintf(dir, sizeof dir, "%s/pl_audit_XXXXXX", stat("/dev/shm", &st) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp %s: %s", dir, strerror(errno));
        return testlib_finish("test_audit");
    }
    test_round_trip();
    test_tamper();
    test_utf8();
    test_concurrent();
    test_crash();
    if (!getenv("PL_KEEP_AUDIT")) rm_dir();
    return testlib_finish("test_audit");
}
