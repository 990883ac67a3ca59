/* audit.h — append-only decision log: one JSON line per decision, written
 * with O_APPEND and fdatasync'ed before the call returns (write-ahead: the
 * supervisor acts only after the record is on disk). Thread-safe. */
#ifndef PL_AUDIT_H
#define PL_AUDIT_H

#include <stddef.h>
#include <sys/types.h>

#include "decider.h"
#include "util.h"

typedef struct pl_audit pl_audit;

/* Opens (creating, mode 0600) path for appending. */
int pl_audit_open(const char *path, pl_audit **out, pl_err *err);

/* Appends {"time","pid","tid","class","action"[,"action_b64"],"decision","p",
 * "rule","reason","latency_ms"} and syncs it. Returns 0, or a negative
 * status when the record is not durably written (the caller must deny). */
int pl_audit_log(pl_audit *a, pid_t pid, pid_t tid, const char *cls, const char *text, size_t len,
                 const pl_verdict *v);

/* Number of records written so far. */
unsigned long pl_audit_count(pl_audit *a);

void pl_audit_close(pl_audit *a);

#endif
