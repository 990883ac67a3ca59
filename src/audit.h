/* audit.h — tamper-evident, crash-safe decision log: one JSON line per
 * decision, each line carrying its sequence number and the SHA-256 of the
 * previous line, written with one write(2) on an O_APPEND fd and
 * fdatasync'ed before the call returns (write-ahead: enforcement acts only
 * after the record is on disk). Thread-safe; one writer process per file.
 *
 * Record (one line, keys in this order; "action_b64" only when the action is
 * not valid UTF-8, "uid"/"alpha"/"p_dangerous" null when unknown):
 *   {"seq":N,"prev":"<64 hex>","time":"...Z","pid":P,"tid":T,"uid":U,
 *    "class":"exec","action":"...","decision":"deny","p_dangerous":0.93,
 *    "alpha":0.8,"rule":"policy.yaml:12","reason":"...","latency_ms":1.234}
 * "seq" counts from 0; "prev" is the lowercase hex SHA-256 of the previous
 * line's exact bytes without its newline, 64 zeros (PL_AUDIT_GENESIS) for
 * seq 0. The head hash (SHA-256 of the last line) anchors the whole chain:
 * keep it elsewhere to also detect truncation of the tail. */
#ifndef PL_AUDIT_H
#define PL_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "decider.h"
#include "util.h"

/* "prev" of the record with seq 0. */
#define PL_AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

/* Longest record line accepted by the writer and the verifier (bytes). */
#define PL_AUDIT_MAX_LINE ((size_t)64 << 20)

typedef struct pl_audit pl_audit;

/* One decision to record. Zero-initialised optional fields mean "unknown"
 * and are written as null. */
typedef struct pl_audit_rec {
    pid_t pid;           /* agent process (thread-group) id */
    pid_t tid;           /* agent thread id */
    int has_uid;         /* nonzero when uid is known */
    uid_t uid;           /* agent uid (used only when has_uid) */
    const char *cls;     /* policy class ("exec", ...); NULL = "" */
    const char *text;    /* rendered action, any bytes (NULL only with len 0) */
    size_t len;          /* bytes of text */
    int has_alpha;       /* nonzero when alpha is known */
    double alpha;        /* calibration strength the probe used (when has_alpha) */
    const pl_verdict *v; /* decision, p_dangerous, rule, reason, latency (required) */
} pl_audit_rec;

/* Opens (creating, mode 0600) path as its only writer: takes a
 * non-blocking exclusive flock (a second opener, in this process or
 * another, fails with PL_ERR_STATE instead of interleaving chains),
 * verifies the whole chain, truncates a torn tail (a last line without its
 * newline: never acknowledged, since acknowledgement follows fdatasync) and
 * continues the chain after the last good record. A chain broken before the
 * tail (tampering, or not a log) fails with PL_ERR_FORMAT naming the line. */
int pl_audit_open(const char *path, pl_audit **out, pl_err *err);

/* Appends one record and syncs it; *seq_out (may be NULL) gets its seq.
 * Returns 0 only when the whole line was written and fdatasync succeeded,
 * else a negative status, and the caller must deny. After a write or sync
 * error the handle refuses every later record (PL_ERR_STATE); reopening the
 * file repairs it. */
int pl_audit_append(pl_audit *a, const pl_audit_rec *r, uint64_t *seq_out);

/* Compatibility form of pl_audit_append with uid and alpha unknown. */
int pl_audit_log(pl_audit *a, pid_t pid, pid_t tid, const char *cls, const char *text, size_t len, const pl_verdict *v);

/* Number of records written through this handle. */
unsigned long pl_audit_count(pl_audit *a);

/* Seq the next record will get (the number of records in the file). */
uint64_t pl_audit_next_seq(pl_audit *a);

/* Copies the current head hash (64 hex + NUL; the genesis value for an
 * empty log) into hex. */
void pl_audit_head(pl_audit *a, char hex[65]);

/* Releases the lock and the handle; accepts NULL. */
void pl_audit_close(pl_audit *a);

/* ---- verification --------------------------------------------------------- */

/* What is wrong with the first bad line. */
typedef enum pl_audit_problem {
    PL_AUDIT_INTACT = 0, /* every line is a valid, chained record */
    PL_AUDIT_BAD_JSON,   /* not one strict JSON object (or invalid UTF-8, or too long) */
    PL_AUDIT_BAD_FIELD,  /* "seq" or "prev" missing or of the wrong type/form */
    PL_AUDIT_SEQ,        /* "seq" is not the previous seq + 1 (gap, duplicate, reorder) */
    PL_AUDIT_PREV,       /* "prev" is not the hash of the previous line */
    PL_AUDIT_TORN,       /* the file ends with a partial record (no newline) */
} pl_audit_problem;

/* Result of pl_audit_verify. */
typedef struct pl_audit_report {
    uint64_t records;         /* valid chained records before the first problem */
    pl_audit_problem problem; /* PL_AUDIT_INTACT or the first problem */
    uint64_t line;            /* 1-based line of the first problem, 0 when intact */
    uint64_t offset;          /* byte offset where that line starts (= end of the good prefix) */
    char reason[200];         /* human-readable description of the problem, "" when intact */
    char head[65];            /* hex SHA-256 of the last valid record (genesis when none) */
} pl_audit_report;

/* Walks the file at path (without locking it) and fills *out. Returns 0
 * when the chain is intact, PL_ERR_FORMAT when out->problem names a
 * problem (also described in err), PL_ERR_IO when the file cannot be read. */
int pl_audit_verify(const char *path, pl_audit_report *out, pl_err *err);

/* Short constant name of a problem ("torn tail", "prev mismatch", ...). */
const char *pl_audit_problem_str(pl_audit_problem p);

#endif
