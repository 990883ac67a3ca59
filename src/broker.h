/* broker.h — broker mode ("host functions"): instead of being intercepted,
 * the agent asks the broker over a Unix socket to act for it. Each request
 * is already a copy (no TOCTOU on agent memory); it is rendered as action
 * text exactly like the supervisor renders the same action, decided,
 * audited (write-ahead), performed on allow/warn, and answered. Files and
 * connected sockets go back as descriptors over SCM_RIGHTS.
 *
 * Wire protocol (SOCK_STREAM Unix socket; stream rather than SEQPACKET
 * because frames may be up to 1 MiB+ — beyond the default socket buffers a
 * single SEQPACKET datagram can carry — and because every language and
 * socat speak it; framing is ours):
 *
 *   frame    = u32 length (big-endian, network order) + length bytes of JSON
 *   request  = {"id": N, "op": OP, ...args}           (one JSON object)
 *   response = {"id": N, "ok": bool, "decision": "allow"|"warn"|"deny",
 *               "error": "...", "errno": N, ...results}
 *
 * Requests on one connection are answered in order, one response per
 * request. "id" is an integer in [0, 2^53] echoed back. "decision" is present
 * exactly when a decision was recorded in the audit log; "error"/"errno" only
 * when ok is false. Unknown keys, wrong types, NUL bytes inside strings and
 * trailing bytes after the object are protocol errors (errno EINVAL). Binary
 * data travels as standard base64 (RFC 4648, with padding) in *_b64 fields.
 *
 *   op "read_file"  {"path", ["max_bytes": N], ["as_fd": bool]}
 *       class file_read, text "read PATH"; -> {"content_b64", "size",
 *       "truncated"} or, with as_fd, {"fd": true} and an O_RDONLY descriptor
 *       attached to the response frame. Regular files only.
 *   op "write_file" {"path", "content_b64", ["append": bool], ["mode": N]}
 *       class file_write, text "write PATH (O_WRONLY|O_CREAT|O_TRUNC)" (or
 *       |O_APPEND); -> {"written": N}. Regular files with one link only.
 *   op "delete"     {"path", ["dir": bool]}
 *       class file_delete, text "delete PATH" / "delete PATH (directory)".
 *   op "list_dir"   {"path"}
 *       class file_read, text "list PATH"; -> {"entries": [{"name", "type":
 *       "file"|"dir"|"symlink"|"other"}], "truncated"}.
 *   op "exec"       {"argv": [...], ["cwd"], ["stdin_b64"], ["timeout_ms"]}
 *       class exec, text "exec /real/prog ARGS (cwd DIR)"; no shell; argv[0]
 *       is an absolute path or a name searched in /usr/local/bin:/usr/bin:/bin;
 *       the child gets a fresh process group, a minimal environment
 *       (PATH, LANG=C.UTF-8) and is killed at the deadline; -> {"exit_code",
 *       "signal", "timed_out", "stdout_b64", "stderr_b64",
 *       "stdout_truncated", "stderr_truncated"}.
 *   op "connect"    {"host", "port", ["timeout_ms"]}
 *       class network, text "connect 1.2.3.4:443" / "connect [::1]:443"
 *       (+ " (HOSTNAME)" when host was a name); TCP; -> {"fd": true} with the
 *       connected socket attached.
 *
 * Paths: every path is resolved beneath the broker root with openat2
 * (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): "..", symlinks and mounts that
 * leave the root fail with EXDEV (or ELOOP). A relative path is relative to
 * the root; an absolute path is accepted only when it starts with the root's
 * canonical path (it is then made relative to it), any other absolute path is
 * refused with EXDEV. For write/delete the last component is never followed
 * (a symlink there is deleted itself / refused with ELOOP for writes).
 * Rendered PATHs are canonical absolute host paths, as the supervisor's.
 * Requests refused for leaving the root are audited as DENY (rule
 * "broker:root"); a failing audit write denies.
 *
 * Connections: SO_PEERCRED is checked on accept; a uid not in the allowed
 * list (empty list = the broker's own effective uid) gets one error response
 * and is closed, and the refusal is audited (class "peer"). An oversized or
 * zero length gets an error response and the connection is closed; a frame
 * cut short (EOF or the request timeout mid-frame) closes the connection.
 * Other connections are unaffected. */
#ifndef PL_BROKER_H
#define PL_BROKER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "audit.h"
#include "decider.h"
#include "util.h"

typedef struct pl_broker pl_broker;

typedef struct pl_broker_opts {
    const char *socket_path;   /* Unix socket to create (an existing socket file is replaced) */
    unsigned socket_mode;      /* chmod of the socket file; 0 = 0600 */
    const char *root;          /* directory every path is resolved beneath (required) */
    const uid_t *allowed_uids; /* peer uids allowed to connect */
    size_t n_allowed_uids;     /* 0 = only geteuid() */
    pl_decide_fn decide;       /* the decider (e.g. pl_classifier_decide) */
    void *decide_ctx;          /* its context */
    int decide_threadsafe;     /* 0: calls are serialised with a mutex (decider.h contract) */
    pl_audit *audit;           /* decision log, required (an audit failure denies) */
    size_t max_request;        /* max request frame bytes; 0 = 1 MiB */
    size_t max_response;       /* max response frame bytes; 0 = 4 MiB (bounds read/exec output) */
    int max_conns;             /* concurrent connections; 0 = 64 (more are refused) */
    int request_timeout_ms;    /* frame completion, exec and connect deadline; 0 = 10000 */
    int idle_timeout_ms;       /* idle connection close; 0 = 300000 */
} pl_broker_opts;

/* Opens the root, binds and listens on the socket; returns 0 or a negative
 * status. The decider and audit must outlive the broker. */
int pl_broker_create(const pl_broker_opts *opts, pl_broker **out, pl_err *err);

/* Accepts and serves connections (one thread each) until pl_broker_stop;
 * returns 0 after every connection thread has finished, or a negative status. */
int pl_broker_serve(pl_broker *b);

/* Asks pl_broker_serve to return; async-signal-safe (one write to an eventfd). */
void pl_broker_stop(pl_broker *b);

/* Closes and unlinks the socket and frees. Call after serve returned. NULL ok. */
void pl_broker_free(pl_broker *b);

/* ---- request parsing (pure; exposed for the fuzzer and tests) ---------- */

typedef enum {
    PL_BROKER_OP_READ_FILE = 1,
    PL_BROKER_OP_WRITE_FILE,
    PL_BROKER_OP_DELETE,
    PL_BROKER_OP_LIST_DIR,
    PL_BROKER_OP_EXEC,
    PL_BROKER_OP_CONNECT,
} pl_broker_op;

/* One parsed request; every pointer is owned (pl_broker_request_free). */
typedef struct pl_broker_request {
    int64_t id;          /* echoed back; -1 when the frame had no usable id */
    pl_broker_op op;     /* the operation */
    char *path;          /* read/write/delete/list: as given (NUL-free) */
    unsigned char *data; /* write content / exec stdin, decoded base64 (may be NULL) */
    size_t data_len;     /* bytes in data */
    int has_data;        /* 1 when content_b64 / stdin_b64 was present */
    int append;          /* write_file: append instead of truncate */
    int mode;            /* write_file: creation mode (0..07777), default 0644 */
    int dir;             /* delete: rmdir instead of unlink */
    int as_fd;           /* read_file: answer with a descriptor */
    int64_t max_bytes;   /* read_file: content bound, -1 = the broker's */
    char **argv;         /* exec: NULL-terminated */
    size_t argc;         /* exec: entries in argv (>= 1) */
    char *cwd;           /* exec: working directory beneath the root, or NULL */
    int timeout_ms;      /* exec/connect: 0 = the broker's */
    char *host;          /* connect: address or name */
    int port;            /* connect: 1..65535 */
} pl_broker_request;

/* Parses one request frame body (JSON). Returns 0 with *out filled, or a
 * negative status with a message in err; out->id is set whenever the id was
 * readable, even on error. Always call pl_broker_request_free afterwards. */
int pl_broker_parse_request(const char *json, size_t len, pl_broker_request *out, pl_err *err);
void pl_broker_request_free(pl_broker_request *r);

/* Standard base64 of src (malloc'ed, NUL-terminated) or NULL on overflow/OOM. */
char *pl_broker_b64_encode(const unsigned char *src, size_t len, size_t *out_len);
/* Decodes padded standard base64; returns 0 and a malloc'ed buffer, or a
 * negative status for invalid input. */
int pl_broker_b64_decode(const char *src, size_t len, unsigned char **out, size_t *out_len);

#endif
