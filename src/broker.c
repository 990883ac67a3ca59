/* broker.c — broker mode ("host functions"; see broker.h for the protocol):
 * a Unix-socket server that performs file, exec and connect requests for an
 * agent after rendering, deciding and auditing each one. One thread per
 * connection; paths resolved beneath the root with openat2; descriptors
 * returned with SCM_RIGHTS. Library code: never prints, never exits. */
#include "broker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <linux/openat2.h>
#include <math.h>
#include <sys/prctl.h>
#include <grp.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probelogits.h"

#define MAX_ARGV 4096
#define MAX_TIMEOUT_MS 3600000
#define ID_MAX ((int64_t)1 << 53)

struct pl_broker {
    pl_broker_opts o;          /* copy of the options (pointers borrowed, see below) */
    char *sock_path;           /* owned copy of o.socket_path */
    uid_t *uids;               /* owned copy of the allowed uids */
    size_t n_uids;             /* entries in uids (>= 1) */
    int rootfd;                /* O_PATH directory fd of the root */
    char root[PATH_MAX];       /* canonical root path */
    size_t root_len;           /* strlen(root) */
    int lfd;                   /* listening socket */
    int stopfd;                /* eventfd: readable once stop was asked */
    pthread_mutex_t mu;        /* guards active */
    pthread_cond_t cv;         /* signalled when a connection thread ends */
    int active;                /* live connection threads */
    pthread_mutex_t decide_mu; /* serialises a non-thread-safe decider */
};

/* One accepted connection, owned by its thread. */
typedef struct conn {
    pl_broker *b; /* the broker */
    int fd;       /* the client socket */
    pid_t pid;    /* peer pid (SO_PEERCRED) */
    uid_t uid;    /* peer uid */
    gid_t gid;    /* peer gid */
} conn;

/* ---- base64 ------------------------------------------------------------------ */

static const char k_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *pl_broker_b64_encode(const unsigned char *src, size_t len, size_t *out_len) {
    size_t groups = len / 3 + (len % 3 != 0), n, cap;
    if (!pl_mul_ok(groups, 4, &n) || !pl_add_ok(n, 1, &cap)) return NULL;
    char *o = malloc(cap);
    if (!o) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)src[i] << 16;
        if (i + 1 < len) v |= (unsigned)src[i + 1] << 8;
        if (i + 2 < len) v |= src[i + 2];
        o[j++] = k_b64[(v >> 18) & 63];
        o[j++] = k_b64[(v >> 12) & 63];
        o[j++] = i + 1 < len ? k_b64[(v >> 6) & 63] : '=';
        o[j++] = i + 2 < len ? k_b64[v & 63] : '=';
    }
    o[j] = 0;
    if (out_len) *out_len = j;
    return o;
}

static int b64_val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int pl_broker_b64_decode(const char *src, size_t len, unsigned char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (len % 4) return PL_ERR_FORMAT;
    unsigned char *o = malloc(len / 4 * 3 + 1);
    if (!o) return PL_ERR_NOMEM;
    size_t j = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)src[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = b64_val(c)) < 0) {
                free(o);
                return PL_ERR_FORMAT;
            }
        }
        unsigned w = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
        o[j++] = (unsigned char)(w >> 16);
        if (pad < 2) o[j++] = (unsigned char)(w >> 8);
        if (pad < 1) o[j++] = (unsigned char)w;
    }
    *out = o;
    *out_len = j;
    return PL_OK;
}

/* ---- request parsing ---------------------------------------------------------- */

void pl_broker_request_free(pl_broker_request *r) {
    if (!r) return;
    free(r->path);
    free(r->data);
    if (r->argv)
        for (size_t i = 0; r->argv[i]; i++) free(r->argv[i]);
    free(r->argv);
    free(r->cwd);
    free(r->host);
    memset(r, 0, sizeof *r);
    r->id = -1;
}

/* A NUL-free string field copied into *dst (max bytes, 0 = no bound); 0 or a status. */
static int get_str(json_object *v, const char *key, size_t max, char **dst, pl_err *err) {
    if (!json_object_is_type(v, json_type_string)) return pl_fail(err, PL_ERR_FORMAT, "\"%s\" must be a string", key);
    size_t n = (size_t)json_object_get_string_len(v);
    const char *s = json_object_get_string(v);
    if (memchr(s, 0, n)) return pl_fail(err, PL_ERR_FORMAT, "\"%s\" contains a NUL byte", key);
    if (max && n > max) return pl_fail(err, PL_ERR_FORMAT, "\"%s\" is too long", key);
    if (!(*dst = strndup(s, n))) return pl_fail(err, PL_ERR_NOMEM, "out of memory");
    return 0;
}

/* An integer field in [lo, hi]; 0 or a status. */
static int get_int(json_object *v, const char *key, int64_t lo, int64_t hi, int64_t *dst, pl_err *err) {
    if (!json_object_is_type(v, json_type_int)) return pl_fail(err, PL_ERR_FORMAT, "\"%s\" must be an integer", key);
    errno = 0;
    int64_t x = json_object_get_int64(v);
    if (errno || x < lo || x > hi)
        return pl_fail(err, PL_ERR_FORMAT, "\"%s\" out of range [%lld, %lld]", key, (long long)lo, (long long)hi);
    *dst = x;
    return 0;
}

static int get_bool(json_object *v, const char *key, int *dst, pl_err *err) {
    if (!json_object_is_type(v, json_type_boolean)) return pl_fail(err, PL_ERR_FORMAT, "\"%s\" must be a boolean", key);
    *dst = json_object_get_boolean(v) ? 1 : 0;
    return 0;
}

static int get_b64(json_object *v, const char *key, pl_broker_request *r, pl_err *err) {
    if (!json_object_is_type(v, json_type_string)) return pl_fail(err, PL_ERR_FORMAT, "\"%s\" must be a string", key);
    int rc =
        pl_broker_b64_decode(json_object_get_string(v), (size_t)json_object_get_string_len(v), &r->data, &r->data_len);
    if (rc == PL_ERR_NOMEM) return pl_fail(err, rc, "out of memory");
    if (rc) return pl_fail(err, rc, "\"%s\" is not valid base64", key);
    r->has_data = 1;
    return 0;
}

static const struct {
    const char *name;   /* wire name */
    pl_broker_op op;    /* enum value */
    const char *keys;   /* allowed argument keys, space-separated, space-enclosed */
    const char *needed; /* required keys */
} k_ops[] = {
    {"read_file", PL_BROKER_OP_READ_FILE, " path max_bytes as_fd ", " path "},
    {"write_file", PL_BROKER_OP_WRITE_FILE, " path content_b64 append mode ", " path content_b64 "},
    {"delete", PL_BROKER_OP_DELETE, " path dir ", " path "},
    {"list_dir", PL_BROKER_OP_LIST_DIR, " path ", " path "},
    {"exec", PL_BROKER_OP_EXEC, " argv cwd stdin_b64 timeout_ms ", " argv "},
    {"connect", PL_BROKER_OP_CONNECT, " host port timeout_ms ", " host port "},
};

/* True when key is one word of the space-enclosed list. */
static int key_in(const char *list, const char *key) {
    size_t n = strlen(key);
    if (n == 0 || strchr(key, ' ')) return 0;
    for (const char *p = list + 1; (p = strstr(p, key)); p++)
        if (p[-1] == ' ' && p[n] == ' ') return 1;
    return 0;
}

/* Fills r from the parsed object o; 0 or a status. */
static int parse_obj(json_object *o, pl_broker_request *r, pl_err *err) {
    json_object *v;
    if (json_object_object_get_ex(o, "id", &v)) {
        int64_t id;
        if (get_int(v, "id", 0, ID_MAX, &id, err)) return PL_ERR_FORMAT;
        r->id = id;
    } else {
        return pl_fail(err, PL_ERR_FORMAT, "missing \"id\"");
    }
    if (!json_object_object_get_ex(o, "op", &v) || !json_object_is_type(v, json_type_string))
        return pl_fail(err, PL_ERR_FORMAT, "missing or non-string \"op\"");
    const char *opname = json_object_get_string(v);
    size_t k = 0, nops = sizeof k_ops / sizeof k_ops[0];
    while (k < nops && strcmp(k_ops[k].name, opname)) k++;
    if (k == nops || strlen(opname) != (size_t)json_object_get_string_len(v))
        return pl_fail(err, PL_ERR_FORMAT, "unknown op");
    r->op = k_ops[k].op;
    r->mode = 0644;
    r->max_bytes = -1;
    json_object_object_foreach(o, key, val) {
        if (!strcmp(key, "id") || !strcmp(key, "op")) continue;
        if (strchr(key, ' ') || !key_in(k_ops[k].keys, key))
            return pl_fail(err, PL_ERR_FORMAT, "unknown key for %s", k_ops[k].name);
        int64_t x;
        int rc = 0;
        if (!strcmp(key, "path")) {
            rc = get_str(val, key, PATH_MAX - 1, &r->path, err);
            if (!rc && !r->path[0]) rc = pl_fail(err, PL_ERR_FORMAT, "empty \"path\"");
        } else if (!strcmp(key, "cwd")) {
            rc = get_str(val, key, PATH_MAX - 1, &r->cwd, err);
            if (!rc && !r->cwd[0]) rc = pl_fail(err, PL_ERR_FORMAT, "empty \"cwd\"");
        } else if (!strcmp(key, "host")) {
            rc = get_str(val, key, 255, &r->host, err);
            if (!rc && !r->host[0]) rc = pl_fail(err, PL_ERR_FORMAT, "empty \"host\"");
        } else if (!strcmp(key, "content_b64") || !strcmp(key, "stdin_b64")) {
            rc = get_b64(val, key, r, err);
        } else if (!strcmp(key, "max_bytes")) {
            if (!(rc = get_int(val, key, 0, INT64_MAX, &x, err))) r->max_bytes = x;
        } else if (!strcmp(key, "mode")) {
            if (!(rc = get_int(val, key, 0, 07777, &x, err))) r->mode = (int)x;
        } else if (!strcmp(key, "timeout_ms")) {
            if (!(rc = get_int(val, key, 1, MAX_TIMEOUT_MS, &x, err))) r->timeout_ms = (int)x;
        } else if (!strcmp(key, "port")) {
            if (!(rc = get_int(val, key, 1, 65535, &x, err))) r->port = (int)x;
        } else if (!strcmp(key, "as_fd")) {
            rc = get_bool(val, key, &r->as_fd, err);
        } else if (!strcmp(key, "append")) {
            rc = get_bool(val, key, &r->append, err);
        } else if (!strcmp(key, "dir")) {
            rc = get_bool(val, key, &r->dir, err);
        } else if (!strcmp(key, "argv")) {
            if (!json_object_is_type(val, json_type_array))
                return pl_fail(err, PL_ERR_FORMAT, "\"argv\" must be an array");
            size_t n = json_object_array_length(val);
            if (n < 1 || n > MAX_ARGV) return pl_fail(err, PL_ERR_FORMAT, "\"argv\" needs 1..%d strings", MAX_ARGV);
            if (!(r->argv = calloc(n + 1, sizeof *r->argv))) return pl_fail(err, PL_ERR_NOMEM, "out of memory");
            for (size_t i = 0; i < n && !rc; i++) {
                rc = get_str(json_object_array_get_idx(val, i), "argv[]", 0, &r->argv[i], err);
                if (!rc) r->argc = i + 1;
            }
            if (!rc && !r->argv[0][0]) rc = pl_fail(err, PL_ERR_FORMAT, "empty argv[0]");
        }
        if (rc) return rc;
    }
    /* required keys */
    static const char *const req[] = {"path", "content_b64", "argv", "host", "port"};
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++)
        if (key_in(k_ops[k].needed, req[i]) && !json_object_object_get_ex(o, req[i], NULL))
            return pl_fail(err, PL_ERR_FORMAT, "%s needs \"%s\"", k_ops[k].name, req[i]);
    return 0;
}

int pl_broker_parse_request(const char *json, size_t len, pl_broker_request *out, pl_err *err) {
    memset(out, 0, sizeof *out);
    out->id = -1;
    if (!json && len) return pl_fail(err, PL_ERR_ARG, "NULL request");
    if (len == 0) return pl_fail(err, PL_ERR_FORMAT, "empty request");
    if (len > INT_MAX) return pl_fail(err, PL_ERR_FORMAT, "request too large");
    if (memchr(json, 0, len)) return pl_fail(err, PL_ERR_FORMAT, "NUL byte in request");
    json_tokener *tok = json_tokener_new_ex(16);
    if (!tok) return pl_fail(err, PL_ERR_NOMEM, "out of memory");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *o = json_tokener_parse_ex(tok, json, (int)len);
    enum json_tokener_error je = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    int rc;
    if (!o || je != json_tokener_success) {
        rc = pl_fail(err, PL_ERR_FORMAT, "malformed JSON: %s",
                     je == json_tokener_continue ? "truncated" : json_tokener_error_desc(je));
    } else {
        while (end < len && strchr(" \t\r\n", json[end])) end++;
        if (end != len)
            rc = pl_fail(err, PL_ERR_FORMAT, "trailing bytes after the JSON object");
        else if (!json_object_is_type(o, json_type_object))
            rc = pl_fail(err, PL_ERR_FORMAT, "request must be an object");
        else
            rc = parse_obj(o, out, err);
    }
    json_object_put(o);
    return rc;
}

/* ---- paths beneath the root ------------------------------------------------- */

/* Makes a request path relative to the root (see broker.h); 0 or -EXDEV. */
static int rel_path(const pl_broker *b, const char *p, const char **rel) {
    if (p[0] == '/') {
        if (b->root_len == 1)
            p++;
        else if (!strncmp(p, b->root, b->root_len) && (p[b->root_len] == '/' || !p[b->root_len]))
            p += b->root_len;
        else
            return -EXDEV;
    }
    while (*p == '/') p++;
    *rel = *p ? p : ".";
    return 0;
}

/* openat2 beneath the root; an fd or -errno. */
static int open_beneath(const pl_broker *b, const char *rel, int flags) {
    struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC), .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    long fd = syscall(SYS_openat2, b->rootfd, rel, &how, sizeof how);
    return fd < 0 ? -errno : (int)fd;
}

/* Canonical path of an fd (through /proc/self/fd); 0 or -errno. */
static int fd_path(int fd, char *out, size_t cap) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, cap - 1);
    if (n < 0) return -errno;
    if ((size_t)n >= cap - 1) return -ENAMETOOLONG;
    out[n] = 0;
    return 0;
}

/* Splits rel into its parent (opened O_PATH beneath the root) and last
 * component name (copied); full gets the canonical parent + "/" + name.
 * Returns the parent fd or -errno. */
static int open_parent(const pl_broker *b, const char *rel, char *name, char *full, size_t cap) {
    char dir[PATH_MAX];
    size_t n = strlen(rel);
    while (n > 1 && rel[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && rel[s - 1] != '/') s--;
    size_t nl = n - s;
    if (nl == 0 || nl >= NAME_MAX + 1 || (nl == 1 && rel[s] == '.') || (nl == 2 && !strncmp(rel + s, "..", 2)))
        return -EINVAL;
    memcpy(name, rel + s, nl);
    name[nl] = 0;
    if (s == 0)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)s, rel);
    int dfd = open_beneath(b, dir, O_PATH | O_DIRECTORY);
    if (dfd < 0) return dfd;
    char parent[PATH_MAX];
    int e = fd_path(dfd, parent, sizeof parent);
    if (!e) {
        int w = !strcmp(parent, "/") ? snprintf(full, cap, "/%s", name) : snprintf(full, cap, "%s/%s", parent, name);
        if (w < 0 || (size_t)w >= cap) e = -ENAMETOOLONG;
    }
    if (e) {
        close(dfd);
        return e;
    }
    return dfd;
}

/* ---- deciding -------------------------------------------------------------- */

/* Decides (unless envelope, a fixed deny reason), audits, and returns 1 to
 * allow or 0 to deny; *v gets the verdict actually applied. */
static int decide(conn *c, const char *cls, const char *text, const char *envelope, pl_verdict *v) {
    pl_broker *b = c->b;
    memset(v, 0, sizeof *v);
    double t0 = pl_now();
    if (envelope) {
        v->decision = PL_DECISION_DENY;
        v->p_dangerous = NAN;
        snprintf(v->rule, sizeof v->rule, "%s", "broker:root");
        snprintf(v->reason, sizeof v->reason, "%s", envelope);
    } else {
        if (!b->o.decide_threadsafe) pthread_mutex_lock(&b->decide_mu);
        int rc = b->o.decide(b->o.decide_ctx, cls, text, strlen(text), v);
        if (!b->o.decide_threadsafe) pthread_mutex_unlock(&b->decide_mu);
        if (rc < 0 || v->decision < PL_DECISION_ALLOW || v->decision > PL_DECISION_DENY) {
            memset(v, 0, sizeof *v);
            v->decision = PL_DECISION_DENY;
            v->p_dangerous = NAN;
            snprintf(v->reason, sizeof v->reason, "decider error (%d)", rc);
        }
    }
    if (!(v->latency_ms > 0)) v->latency_ms = (pl_now() - t0) * 1e3;
    int allow = v->decision != PL_DECISION_DENY;
    const pl_audit_rec rec = {.pid = c->pid,
                              .tid = c->pid,
                              .has_uid = 1,
                              .uid = c->uid,
                              .cls = cls,
                              .text = text,
                              .len = strlen(text),
                              .has_alpha = !isnan(v->p_dangerous),
                              .alpha = v->alpha,
                              .v = v};
    if (pl_audit_append(b->o.audit, &rec, NULL) < 0) {
        v->decision = PL_DECISION_DENY; /* fail closed */
        snprintf(v->reason, sizeof v->reason, "audit write failed");
        allow = 0;
    }
    return allow;
}

/* ---- responses ------------------------------------------------------------- */

static void set_error(json_object *r, int e, const char *msg) {
    json_object_object_add(r, "ok", json_object_new_boolean(0));
    json_object_object_add(r, "error", json_object_new_string(msg));
    json_object_object_add(r, "errno", json_object_new_int(e));
}

static void set_errno(json_object *r, int e) { set_error(r, e, strerror(e)); }

/* Records the verdict in the response; on deny also the error. */
static void set_verdict(json_object *r, const pl_verdict *v) {
    json_object_object_add(r, "decision", json_object_new_string(pl_decision_name(v->decision)));
    if (v->rule[0]) json_object_object_add(r, "rule", json_object_new_string(v->rule));
    if (isfinite(v->p_dangerous)) json_object_object_add(r, "p", json_object_new_double(v->p_dangerous));
    if (v->decision == PL_DECISION_DENY) {
        char msg[300];
        snprintf(msg, sizeof msg, "denied: %s", v->reason);
        set_error(r, EACCES, msg);
    }
}

static void set_ok(json_object *r) { json_object_object_add(r, "ok", json_object_new_boolean(1)); }

/* Adds base64 of data under key; 0 or -ENOMEM. */
static int add_b64(json_object *r, const char *key, const unsigned char *data, size_t len) {
    size_t n;
    char *s = pl_broker_b64_encode(data, len, &n);
    if (!s) return -ENOMEM;
    json_object_object_add(r, key, json_object_new_string_len(s, (int)n));
    free(s);
    return 0;
}

/* Raw bytes of output the response can carry (base64 grows 4/3), split in parts. */
static size_t raw_budget(const pl_broker *b, size_t parts) {
    size_t m = b->o.max_response > 8192 ? b->o.max_response - 8192 : 0;
    return m / 4 * 3 / parts;
}

/* Denies a request whose path left the root (audited). */
static void deny_escape(conn *c, json_object *r, const char *cls, const char *verb, const char *path, int e) {
    size_t n = strlen(verb) + strlen(path) + 2;
    char *text = malloc(n);
    pl_verdict v;
    if (!text) return set_errno(r, ENOMEM);
    snprintf(text, n, "%s %s", verb, path);
    decide(c, cls, text,
           e == ELOOP ? "path resolves through a symlink loop or magic link" : "path escapes the broker root", &v);
    free(text);
    set_verdict(r, &v);
    json_object_object_add(r, "errno", json_object_new_int(e));
}

static int is_escape(int e) { return e == EXDEV || e == ELOOP; }

/* ---- operations ------------------------------------------------------------- */

static void op_read(conn *c, const pl_broker_request *q, json_object *r, int *pass_fd) {
    const char *rel;
    if (rel_path(c->b, q->path, &rel)) return deny_escape(c, r, "file_read", "read", q->path, EXDEV);
    int fd = open_beneath(c->b, rel, O_PATH);
    if (fd < 0) return is_escape(-fd) ? deny_escape(c, r, "file_read", "read", q->path, -fd) : set_errno(r, -fd);
    struct stat st;
    char real[PATH_MAX], text[PATH_MAX + 16];
    int e = fstat(fd, &st) < 0 ? errno : !S_ISREG(st.st_mode) ? (S_ISDIR(st.st_mode) ? EISDIR : EINVAL) : 0;
    if (!e) e = -fd_path(fd, real, sizeof real);
    if (e) {
        close(fd);
        return set_errno(r, e);
    }
    snprintf(text, sizeof text, "read %s", real);
    pl_verdict v;
    int allow = decide(c, "file_read", text, NULL, &v);
    set_verdict(r, &v);
    if (!allow) {
        close(fd);
        return;
    }
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    int rfd = open(link, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    e = errno;
    close(fd);
    if (rfd < 0) return set_errno(r, e);
    if (q->as_fd) {
        fcntl(rfd, F_SETFL, 0);
        *pass_fd = rfd;
        set_ok(r);
        json_object_object_add(r, "fd", json_object_new_boolean(1));
        return;
    }
    size_t cap = raw_budget(c->b, 1);
    if (q->max_bytes >= 0 && (uint64_t)q->max_bytes < cap) cap = (size_t)q->max_bytes;
    unsigned char *buf = malloc(cap + 1);
    size_t got = 0;
    int truncated = 0;
    if (!buf) {
        close(rfd);
        return set_errno(r, ENOMEM);
    }
    for (;;) {
        ssize_t n = read(rfd, buf + got, cap + 1 - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            e = errno;
            free(buf);
            close(rfd);
            return set_errno(r, e);
        }
        if (n == 0) break;
        got += (size_t)n;
        if (got > cap) {
            got = cap;
            truncated = 1;
            break;
        }
    }
    close(rfd);
    if (add_b64(r, "content_b64", buf, got) < 0) {
        free(buf);
        return set_errno(r, ENOMEM);
    }
    free(buf);
    set_ok(r);
    json_object_object_add(r, "size", json_object_new_int64((int64_t)st.st_size));
    json_object_object_add(r, "truncated", json_object_new_boolean(truncated));
}

static void op_write(conn *c, const pl_broker_request *q, json_object *r) {
    const char *rel;
    char name[NAME_MAX + 1], full[PATH_MAX], text[PATH_MAX + 64];
    const char *fl = q->append ? "O_WRONLY|O_CREAT|O_APPEND" : "O_WRONLY|O_CREAT|O_TRUNC";
    if (rel_path(c->b, q->path, &rel)) return deny_escape(c, r, "file_write", "write", q->path, EXDEV);
    int dfd = open_parent(c->b, rel, name, full, sizeof full);
    if (dfd < 0) return is_escape(-dfd) ? deny_escape(c, r, "file_write", "write", q->path, -dfd) : set_errno(r, -dfd);
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode)) {
        close(dfd);
        return set_error(r, S_ISLNK(st.st_mode) ? ELOOP : EINVAL,
                         S_ISLNK(st.st_mode) ? "refusing to write through a symlink" : "not a regular file");
    }
    snprintf(text, sizeof text, "write %s (%s)", full, fl);
    pl_verdict v;
    int allow = decide(c, "file_write", text, NULL, &v);
    set_verdict(r, &v);
    if (!allow) {
        close(dfd);
        return;
    }
    int fd = openat(dfd, name,
                    O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (q->append ? O_APPEND : 0),
                    (mode_t)q->mode);
    int e = errno;
    close(dfd);
    if (fd < 0) return set_errno(r, e);
    e = fstat(fd, &st) < 0 ? errno : !S_ISREG(st.st_mode) ? EINVAL : st.st_nlink > 1 ? EMLINK : 0;
    if (!e && !q->append && ftruncate(fd, 0) < 0) e = errno;
    size_t off = 0;
    while (!e && off < q->data_len) {
        ssize_t n = write(fd, q->data + off, q->data_len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            e = n < 0 ? errno : EIO;
        else
            off += (size_t)n;
    }
    close(fd);
    if (e) return set_errno(r, e);
    set_ok(r);
    json_object_object_add(r, "written", json_object_new_int64((int64_t)off));
}

static void op_delete(conn *c, const pl_broker_request *q, json_object *r) {
    const char *rel;
    char name[NAME_MAX + 1], full[PATH_MAX], text[PATH_MAX + 32];
    if (rel_path(c->b, q->path, &rel)) return deny_escape(c, r, "file_delete", "delete", q->path, EXDEV);
    int dfd = open_parent(c->b, rel, name, full, sizeof full);
    if (dfd < 0)
        return is_escape(-dfd) ? deny_escape(c, r, "file_delete", "delete", q->path, -dfd) : set_errno(r, -dfd);
    snprintf(text, sizeof text, "delete %s%s", full, q->dir ? " (directory)" : "");
    pl_verdict v;
    int allow = decide(c, "file_delete", text, NULL, &v);
    set_verdict(r, &v);
    if (allow) {
        if (unlinkat(dfd, name, q->dir ? AT_REMOVEDIR : 0) < 0)
            set_errno(r, errno);
        else
            set_ok(r);
    }
    close(dfd);
}

static const char *dtype_name(unsigned char t) {
    return t == DT_REG ? "file" : t == DT_DIR ? "dir" : t == DT_LNK ? "symlink" : "other";
}

static void op_list(conn *c, const pl_broker_request *q, json_object *r) {
    const char *rel;
    char real[PATH_MAX], text[PATH_MAX + 16];
    if (rel_path(c->b, q->path, &rel)) return deny_escape(c, r, "file_read", "list", q->path, EXDEV);
    int fd = open_beneath(c->b, rel, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return is_escape(-fd) ? deny_escape(c, r, "file_read", "list", q->path, -fd) : set_errno(r, -fd);
    int e = -fd_path(fd, real, sizeof real);
    if (e) {
        close(fd);
        return set_errno(r, e);
    }
    snprintf(text, sizeof text, "list %s", real);
    pl_verdict v;
    int allow = decide(c, "file_read", text, NULL, &v);
    set_verdict(r, &v);
    if (!allow) {
        close(fd);
        return;
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        e = errno;
        close(fd);
        return set_errno(r, e);
    }
    json_object *arr = json_object_new_array();
    size_t budget = raw_budget(c->b, 2), used = 0;
    int truncated = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        size_t n = strlen(de->d_name) * 6 + 40; /* worst-case JSON escaping */
        if (used + n > budget) {
            truncated = 1;
            break;
        }
        used += n;
        unsigned char t = de->d_type;
        if (t == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
                t = S_ISREG(st.st_mode)   ? DT_REG
                    : S_ISDIR(st.st_mode) ? DT_DIR
                    : S_ISLNK(st.st_mode) ? DT_LNK
                                          : DT_UNKNOWN;
        }
        json_object *ent = json_object_new_object();
        json_object_object_add(ent, "name", json_object_new_string(de->d_name));
        json_object_object_add(ent, "type", json_object_new_string(dtype_name(t)));
        json_object_array_add(arr, ent);
    }
    closedir(d);
    set_ok(r);
    json_object_object_add(r, "entries", arr);
    json_object_object_add(r, "truncated", json_object_new_boolean(truncated));
}

/* Canonical path of an executable regular file for argv[0]; 0 or an errno. */
static int find_program(const char *a0, char *real) {
    char cand[PATH_MAX];
    struct stat st;
    if (strchr(a0, '/')) {
        if (a0[0] != '/') return EINVAL;
        if (!realpath(a0, real)) return errno;
        if (stat(real, &st) < 0) return errno;
        if (!S_ISREG(st.st_mode)) return EACCES;
        return access(real, X_OK) < 0 ? errno : 0;
    }
    static const char *const dirs[] = {"/usr/local/bin", "/usr/bin", "/bin"};
    for (size_t i = 0; i < 3; i++) {
        int n = snprintf(cand, sizeof cand, "%s/%s", dirs[i], a0);
        if (n < 0 || (size_t)n >= sizeof cand) return ENAMETOOLONG;
        if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0 && realpath(cand, real)) return 0;
    }
    return ENOENT;
}

/* "exec REAL ARGS (cwd CWD)" as the supervisor renders it; malloc'ed or NULL. */
static char *render_exec(const char *real, char *const *argv, size_t argc, const char *cwd) {
    size_t cap = strlen(real) + strlen(cwd) + 32;
    for (size_t i = 1; i < argc; i++)
        if (!pl_add_ok(cap, strlen(argv[i]) + 4, &cap)) return NULL;
    char *t = malloc(cap);
    if (!t) return NULL;
    size_t n = (size_t)snprintf(t, cap, "exec %s", real);
    for (size_t i = 1; i < argc; i++) {
        const char *a = argv[i];
        int quote = !a[0] || strpbrk(a, " \t\n'\"\\$`;&|<>*?()") != NULL;
        n += (size_t)snprintf(t + n, cap - n, quote ? " '%s'" : " %s", a);
    }
    snprintf(t + n, cap - n, " (cwd %s)", cwd);
    return t;
}

static int remaining_ms(double deadline) {
    double ms = (deadline - pl_now()) * 1e3;
    return ms <= 0 ? 0 : ms > INT_MAX ? INT_MAX : (int)ms + 1;
}

/* Output of one child stream: kept up to cap bytes, the rest drained. */
typedef struct outbuf {
    unsigned char *p; /* cap bytes */
    size_t n, cap;    /* kept, capacity */
    int truncated;    /* more was produced than kept */
    int fd;           /* our read end, -1 once at EOF */
} outbuf;

static void drain(outbuf *o) {
    unsigned char tmp[4096];
    ssize_t n = o->n < o->cap ? read(o->fd, o->p + o->n, o->cap - o->n) : read(o->fd, tmp, sizeof tmp);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) {
        close(o->fd);
        o->fd = -1;
        return;
    }
    if (o->n < o->cap)
        o->n += (size_t)n;
    else
        o->truncated = 1;
}

static void op_exec(conn *c, const pl_broker_request *q, json_object *r) {
    pl_broker *b = c->b;
    char real[PATH_MAX], cwd[PATH_MAX];
    const char *rel;
    int e = find_program(q->argv[0], real);
    if (e) return set_error(r, e, e == EINVAL ? "argv[0] must be an absolute path or a bare name" : strerror(e));
    if (rel_path(b, q->cwd ? q->cwd : ".", &rel)) return deny_escape(c, r, "exec", "exec in", q->cwd, EXDEV);
    int cfd = open_beneath(b, rel, O_PATH | O_DIRECTORY);
    if (cfd < 0) return is_escape(-cfd) ? deny_escape(c, r, "exec", "exec in", q->cwd, -cfd) : set_errno(r, -cfd);
    if ((e = -fd_path(cfd, cwd, sizeof cwd))) {
        close(cfd);
        return set_errno(r, e);
    }
    char *text = render_exec(real, q->argv, q->argc, cwd);
    if (!text) {
        close(cfd);
        return set_errno(r, ENOMEM);
    }
    pl_verdict v;
    int allow = decide(c, "exec", text, NULL, &v);
    free(text);
    set_verdict(r, &v);
    if (!allow) {
        close(cfd);
        return;
    }
    int in[2] = {-1, -1}, out[2] = {-1, -1}, er[2] = {-1, -1};
    size_t cap = raw_budget(b, 2);
    outbuf ob[2] = {{.cap = cap, .fd = -1}, {.cap = cap, .fd = -1}};
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
        pipe2(er, O_CLOEXEC) < 0 || (errno = 0, !(ob[0].p = malloc(cap + 1)) || !(ob[1].p = malloc(cap + 1)))) {
        e = errno ? errno : ENOMEM;
        goto fail;
    }
    static char *const envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", NULL};
    pid_t pid = fork();
    if (pid < 0) {
        e = errno;
        goto fail;
    }
    if (pid == 0) { /* child: async-signal-safe calls only */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        setpgid(0, 0);
        if (dup2(in[1], 0) < 0 || dup2(out[1], 1) < 0 || dup2(er[1], 2) < 0 || fchdir(cfd) < 0) _exit(126);
        syscall(SYS_close_range, 3U, ~0U, 0U);
        /* The program runs with the requesting peer's identity, never with
         * the broker's: a root broker drops to the peer's uid/gid (no
         * supplementary groups), and nothing may regain privileges. */
        if (geteuid() == 0 && c->uid != 0 &&
            (setgroups(0, NULL) != 0 || setresgid(c->gid, c->gid, c->gid) != 0 ||
             setresuid(c->uid, c->uid, c->uid) != 0))
            _exit(126);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(126);
        execve(real, q->argv, envp);
        _exit(127);
    }
    setpgid(pid, pid);
    close(in[1]);
    close(out[1]);
    close(er[1]);
    in[1] = out[1] = er[1] = -1;
    ob[0].fd = out[0];
    ob[1].fd = er[0];
    out[0] = er[0] = -1;
    fcntl(in[0], F_SETFL, O_NONBLOCK);
    size_t in_off = 0;
    if (!q->has_data || !q->data_len) {
        close(in[0]);
        in[0] = -1;
    }
    int tmo = q->timeout_ms ? (q->timeout_ms < b->o.request_timeout_ms ? q->timeout_ms : b->o.request_timeout_ms)
                            : b->o.request_timeout_ms;
    double deadline = pl_now() + tmo / 1e3;
    int timed_out = 0;
    while (ob[0].fd >= 0 || ob[1].fd >= 0 || in[0] >= 0) {
        struct pollfd p[3];
        int np = 0, idx[3];
        for (int k = 0; k < 2; k++)
            if (ob[k].fd >= 0) p[np] = (struct pollfd){.fd = ob[k].fd, .events = POLLIN}, idx[np++] = k;
        if (in[0] >= 0) p[np] = (struct pollfd){.fd = in[0], .events = POLLOUT}, idx[np++] = 2;
        int ms = remaining_ms(deadline);
        if (ms == 0) {
            timed_out = 1;
            break;
        }
        int pr = poll(p, (nfds_t)np, ms);
        if (pr < 0 && errno == EINTR) continue;
        if (pr < 0) break;
        for (int k = 0; k < np; k++) {
            if (!p[k].revents) continue;
            if (idx[k] < 2) {
                drain(&ob[idx[k]]);
            } else {
                ssize_t n = send(in[0], q->data + in_off, q->data_len - in_off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n > 0) in_off += (size_t)n;
                if ((n < 0 && errno != EAGAIN && errno != EINTR) || in_off >= q->data_len) {
                    close(in[0]);
                    in[0] = -1;
                }
            }
        }
    }
    if (timed_out) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
    }
    int status = 0, waited;
    while ((waited = (int)waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
    }
    set_ok(r);
    json_object_object_add(r, "exit_code",
                           waited > 0 && WIFEXITED(status) ? json_object_new_int(WEXITSTATUS(status)) : NULL);
    json_object_object_add(r, "signal",
                           waited > 0 && WIFSIGNALED(status) ? json_object_new_int(WTERMSIG(status)) : NULL);
    json_object_object_add(r, "timed_out", json_object_new_boolean(timed_out));
    json_object_object_add(r, "stdout_truncated", json_object_new_boolean(ob[0].truncated));
    json_object_object_add(r, "stderr_truncated", json_object_new_boolean(ob[1].truncated));
    if (add_b64(r, "stdout_b64", ob[0].p, ob[0].n) < 0 || add_b64(r, "stderr_b64", ob[1].p, ob[1].n) < 0)
        set_errno(r, ENOMEM);
    e = 0;
fail:
    if (e) set_errno(r, e);
    for (int k = 0; k < 2; k++) {
        if (in[k] >= 0) close(in[k]);
        if (out[k] >= 0) close(out[k]);
        if (er[k] >= 0) close(er[k]);
        if (ob[k].fd >= 0) close(ob[k].fd);
        free(ob[k].p);
    }
    close(cfd);
}

static void op_connect(conn *c, const pl_broker_request *q, json_object *r, int *pass_fd) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
    char port[16], host[INET6_ADDRSTRLEN], text[INET6_ADDRSTRLEN + 300];
    snprintf(port, sizeof port, "%d", q->port);
    unsigned char tmp[sizeof(struct in6_addr)];
    int numeric = inet_pton(AF_INET, q->host, tmp) == 1 || inet_pton(AF_INET6, q->host, tmp) == 1;
    if (numeric) hints.ai_flags |= AI_NUMERICHOST;
    int g = getaddrinfo(q->host, port, &hints, &ai);
    if (g || !ai) {
        if (ai) freeaddrinfo(ai);
        return set_error(r, ENOENT, g ? gai_strerror(g) : "no address");
    }
    int fam = ai->ai_family;
    if (fam == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ai->ai_addr;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(text, sizeof text, "connect %s:%u", host, ntohs(in->sin_port));
    } else if (fam == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ai->ai_addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(text, sizeof text, "connect [%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        freeaddrinfo(ai);
        return set_errno(r, EAFNOSUPPORT);
    }
    if (!numeric) {
        size_t n = strlen(text);
        snprintf(text + n, sizeof text - n, " (%s)", q->host);
    }
    pl_verdict v;
    int allow = decide(c, "network", text, NULL, &v);
    set_verdict(r, &v);
    if (!allow) {
        freeaddrinfo(ai);
        return;
    }
    int e = 0, fd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        e = errno;
    else if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        e = errno;
        if (e == EINPROGRESS) {
            int tmo = q->timeout_ms && q->timeout_ms < c->b->o.request_timeout_ms ? q->timeout_ms
                                                                                  : c->b->o.request_timeout_ms;
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int pr;
            while ((pr = poll(&p, 1, tmo)) < 0 && errno == EINTR) {
            }
            socklen_t sl = sizeof e;
            if (pr == 0)
                e = ETIMEDOUT;
            else if (pr < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) < 0)
                e = errno;
        }
    }
    freeaddrinfo(ai);
    if (e) {
        if (fd >= 0) close(fd);
        return set_errno(r, e);
    }
    fcntl(fd, F_SETFL, 0);
    *pass_fd = fd;
    set_ok(r);
    json_object_object_add(r, "fd", json_object_new_boolean(1));
}

/* ---- framing --------------------------------------------------------------- */

/* Waits for fd to become ready for events (or stop) until deadline; 1 ready, 0 timeout/stop. */
static int wait_fd(conn *c, short events, double deadline) {
    for (;;) {
        struct pollfd p[2] = {{.fd = c->fd, .events = events}, {.fd = c->b->stopfd, .events = POLLIN}};
        int pr = poll(p, 2, remaining_ms(deadline));
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0 || p[1].revents) return 0;
        if (p[0].revents) return 1;
    }
}

/* Reads exactly n bytes before deadline; 1 ok, 0 clean EOF before any byte, -1 otherwise. */
static int read_full(conn *c, void *buf, size_t n, double deadline) {
    size_t got = 0;
    while (got < n) {
        if (!wait_fd(c, POLLIN, deadline)) return -1;
        ssize_t k = recv(c->fd, (char *)buf + got, n - got, MSG_DONTWAIT);
        if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (k <= 0) return k == 0 && got == 0 ? 0 : -1;
        got += (size_t)k;
    }
    return 1;
}

/* Sends one frame (header + body), attaching pass_fd (if >= 0) to its first
 * byte; 0 or -1. */
static int send_frame(conn *c, const char *body, size_t len, int pass_fd) {
    unsigned char hdr[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                            (unsigned char)len};
    size_t total = len + 4, off = 0;
    double deadline = pl_now() + c->b->o.request_timeout_ms / 1e3;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } cm;
    while (off < total) {
        struct iovec iov[2];
        int niov = 0;
        if (off < 4) iov[niov++] = (struct iovec){hdr + off, 4 - off};
        size_t boff = off < 4 ? 0 : off - 4;
        if (len > boff) iov[niov++] = (struct iovec){(char *)body + boff, len - boff};
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)niov};
        if (off == 0 && pass_fd >= 0) {
            memset(&cm, 0, sizeof cm);
            m.msg_control = cm.buf;
            m.msg_controllen = sizeof cm.buf;
            struct cmsghdr *h = CMSG_FIRSTHDR(&m);
            h->cmsg_level = SOL_SOCKET;
            h->cmsg_type = SCM_RIGHTS;
            h->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(h), &pass_fd, sizeof(int));
        }
        ssize_t k = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && errno == EAGAIN) {
            if (!wait_fd(c, POLLOUT, deadline)) return -1;
            continue;
        }
        if (k <= 0) return -1;
        off += (size_t)k;
    }
    return 0;
}

/* Serialises and sends a response (falling back to an error when it exceeds
 * max_response); 0 or -1. */
static int send_json(conn *c, json_object *r, int pass_fd) {
    size_t n;
    const char *s = json_object_to_json_string_length(r, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    if (!s) return -1;
    if (n > c->b->o.max_response) {
        char small[160];
        json_object *id = json_object_object_get(r, "id");
        int k = snprintf(small, sizeof small, "{\"id\":%s,\"ok\":false,\"error\":\"response too large\",\"errno\":%d}",
                         id ? json_object_to_json_string(id) : "null", EMSGSIZE);
        return send_frame(c, small, (size_t)k, -1);
    }
    return send_frame(c, s, n, pass_fd);
}

/* A protocol-level error response (no decision). */
static int send_error(conn *c, int64_t id, int e, const char *msg) {
    json_object *r = json_object_new_object();
    json_object_object_add(r, "id", id >= 0 ? json_object_new_int64(id) : NULL);
    set_error(r, e, msg);
    int rc = send_json(c, r, -1);
    json_object_put(r);
    return rc;
}

/* Handles one request frame body; returns 0 or -1 when the connection broke. */
static int handle(conn *c, const char *body, size_t len) {
    char ebuf[256] = "";
    pl_err err = {ebuf, sizeof ebuf};
    pl_broker_request q;
    if (pl_broker_parse_request(body, len, &q, &err) < 0) {
        int64_t id = q.id;
        pl_broker_request_free(&q);
        char msg[300];
        snprintf(msg, sizeof msg, "protocol error: %s", ebuf);
        return send_error(c, id, EINVAL, msg);
    }
    json_object *r = json_object_new_object();
    json_object_object_add(r, "id", json_object_new_int64(q.id));
    int pass_fd = -1;
    switch (q.op) {
    case PL_BROKER_OP_READ_FILE: op_read(c, &q, r, &pass_fd); break;
    case PL_BROKER_OP_WRITE_FILE: op_write(c, &q, r); break;
    case PL_BROKER_OP_DELETE: op_delete(c, &q, r); break;
    case PL_BROKER_OP_LIST_DIR: op_list(c, &q, r); break;
    case PL_BROKER_OP_EXEC: op_exec(c, &q, r); break;
    case PL_BROKER_OP_CONNECT: op_connect(c, &q, r, &pass_fd); break;
    }
    if (!json_object_object_get_ex(r, "ok", NULL)) set_error(r, EIO, "internal error: no result");
    int rc = send_json(c, r, pass_fd);
    if (pass_fd >= 0) close(pass_fd);
    json_object_put(r);
    pl_broker_request_free(&q);
    return rc;
}

static void conn_end(conn *c) {
    pl_broker *b = c->b;
    close(c->fd);
    free(c);
    pthread_mutex_lock(&b->mu);
    b->active--;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static void *conn_main(void *arg) {
    conn *c = arg;
    pl_broker *b = c->b;
    for (;;) {
        unsigned char hdr[4];
        if (!wait_fd(c, POLLIN, pl_now() + b->o.idle_timeout_ms / 1e3)) break;
        if (read_full(c, hdr, 4, pl_now() + b->o.request_timeout_ms / 1e3) != 1) break;
        size_t n = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
        if (n == 0 || n > b->o.max_request) {
            char msg[96];
            snprintf(msg, sizeof msg, "protocol error: frame length %zu out of range 1..%zu", n, b->o.max_request);
            send_error(c, -1, EMSGSIZE, msg);
            break;
        }
        char *body = malloc(n);
        if (!body) {
            send_error(c, -1, ENOMEM, "out of memory");
            break;
        }
        int rr = read_full(c, body, n, pl_now() + b->o.request_timeout_ms / 1e3);
        int rc = rr == 1 ? handle(c, body, n) : -1;
        free(body);
        if (rc < 0) break;
    }
    conn_end(c);
    return NULL;
}

/* ---- lifecycle -------------------------------------------------------------- */

int pl_broker_create(const pl_broker_opts *opts, pl_broker **out, pl_err *err) {
    *out = NULL;
    if (!opts || !opts->socket_path || !opts->root || !opts->decide || !opts->audit)
        return pl_fail(err, PL_ERR_ARG, "broker: socket_path, root, decide and audit are required");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(opts->socket_path) >= sizeof sa.sun_path)
        return pl_fail(err, PL_ERR_ARG, "broker: socket path too long");
    if (opts->n_allowed_uids > 65536) return pl_fail(err, PL_ERR_ARG, "broker: too many uids");
    pl_broker *b = calloc(1, sizeof *b);
    if (!b) return pl_fail(err, PL_ERR_NOMEM, "out of memory");
    b->o = *opts;
    b->rootfd = b->lfd = b->stopfd = -1;
    if (!b->o.socket_mode) b->o.socket_mode = 0600;
    if (!b->o.max_request) b->o.max_request = 1 << 20;
    if (!b->o.max_response) b->o.max_response = 4 << 20;
    if (b->o.max_conns <= 0) b->o.max_conns = 64;
    if (b->o.request_timeout_ms <= 0) b->o.request_timeout_ms = 10000;
    if (b->o.idle_timeout_ms <= 0) b->o.idle_timeout_ms = 300000;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    pthread_mutex_init(&b->decide_mu, NULL);
    int rc = PL_ERR_IO;
    if (b->o.max_request > (64u << 20) || b->o.max_response > (256u << 20) || b->o.max_response < 256) {
        rc = pl_fail(err, PL_ERR_ARG, "broker: max_request <= 64 MiB, 256 B <= max_response <= 256 MiB");
        goto fail;
    }
    b->n_uids = opts->n_allowed_uids ? opts->n_allowed_uids : 1;
    if (!(b->uids = malloc(b->n_uids * sizeof *b->uids)) || !(b->sock_path = strdup(opts->socket_path))) {
        rc = pl_fail(err, PL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (opts->n_allowed_uids)
        memcpy(b->uids, opts->allowed_uids, b->n_uids * sizeof *b->uids);
    else
        b->uids[0] = geteuid();
    b->o.socket_path = b->sock_path;
    b->o.allowed_uids = b->uids;
    b->o.n_allowed_uids = b->n_uids;
    if ((b->rootfd = open(opts->root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
        rc = pl_fail(err, PL_ERR_IO, "broker: root %s: %s", opts->root, strerror(errno));
        goto fail;
    }
    if (fd_path(b->rootfd, b->root, sizeof b->root) < 0) {
        rc = pl_fail(err, PL_ERR_IO, "broker: cannot resolve root %s", opts->root);
        goto fail;
    }
    b->root_len = strlen(b->root);
    struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_BENEATH};
    long probe = syscall(SYS_openat2, b->rootfd, ".", &how, sizeof how);
    if (probe < 0) {
        rc = pl_fail(err, PL_ERR_UNSUPPORTED, "broker: openat2 unavailable: %s", strerror(errno));
        goto fail;
    }
    close((int)probe);
    if ((b->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        rc = pl_fail(err, PL_ERR_IO, "broker: eventfd: %s", strerror(errno));
        goto fail;
    }
    memcpy(sa.sun_path, opts->socket_path, strlen(opts->socket_path) + 1);
    struct stat st;
    if (lstat(opts->socket_path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(opts->socket_path);
    if ((b->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
        bind(b->lfd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        rc = pl_fail(err, PL_ERR_IO, "broker: bind %s: %s", opts->socket_path, strerror(errno));
        goto fail;
    }
    if (chmod(opts->socket_path, b->o.socket_mode & 0777) < 0 || listen(b->lfd, 128) < 0) {
        rc = pl_fail(err, PL_ERR_IO, "broker: listen %s: %s", opts->socket_path, strerror(errno));
        unlink(opts->socket_path);
        goto fail;
    }
    *out = b;
    return PL_OK;
fail:
    if (b->lfd >= 0) close(b->lfd);
    b->lfd = -1;
    pl_broker_free(b);
    return rc;
}

/* Refuses a connection with one error frame (best effort) and closes it. */
static void refuse(pl_broker *b, int fd, int e, const char *msg) {
    conn tmp = {.b = b, .fd = fd};
    send_error(&tmp, -1, e, msg);
    close(fd);
}

int pl_broker_serve(pl_broker *b) {
    if (!b) return PL_ERR_ARG;
    for (;;) {
        struct pollfd p[2] = {{.fd = b->lfd, .events = POLLIN}, {.fd = b->stopfd, .events = POLLIN}};
        int pr = poll(p, 2, -1);
        if (pr < 0 && errno == EINTR) continue;
        if (pr < 0 || p[1].revents) break;
        int fd = accept4(b->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) usleep(10000);
            continue;
        }
        struct ucred cr;
        socklen_t sl = sizeof cr;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &sl) < 0) {
            close(fd);
            continue;
        }
        int ok = 0;
        for (size_t i = 0; i < b->n_uids && !ok; i++) ok = b->uids[i] == cr.uid;
        if (!ok) {
            char text[128];
            snprintf(text, sizeof text, "connect to broker from uid %u gid %u pid %d", (unsigned)cr.uid,
                     (unsigned)cr.gid, (int)cr.pid);
            pl_verdict v = {.decision = PL_DECISION_DENY, .p_dangerous = NAN};
            snprintf(v.rule, sizeof v.rule, "broker:peer");
            snprintf(v.reason, sizeof v.reason, "peer uid not allowed");
            pl_audit_log(b->o.audit, cr.pid, cr.pid, "peer", text, strlen(text), &v);
            refuse(b, fd, EACCES, "peer uid not allowed");
            continue;
        }
        pthread_mutex_lock(&b->mu);
        int full = b->active >= b->o.max_conns;
        if (!full) b->active++;
        pthread_mutex_unlock(&b->mu);
        if (full) {
            refuse(b, fd, EAGAIN, "too many connections");
            continue;
        }
        conn *c = malloc(sizeof *c);
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (c) *c = (conn){.b = b, .fd = fd, .pid = cr.pid, .uid = cr.uid, .gid = cr.gid};
        if (!c || pthread_create(&th, &at, conn_main, c) != 0) {
            pthread_attr_destroy(&at);
            if (c)
                conn_end(c);
            else {
                close(fd);
                pthread_mutex_lock(&b->mu);
                b->active--;
                pthread_mutex_unlock(&b->mu);
            }
            continue;
        }
        pthread_attr_destroy(&at);
    }
    pthread_mutex_lock(&b->mu);
    while (b->active > 0) pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    return PL_OK;
}

void pl_broker_stop(pl_broker *b) {
    if (!b || b->stopfd < 0) return;
    uint64_t one = 1;
    ssize_t n = write(b->stopfd, &one, sizeof one);
    (void)n;
}

void pl_broker_free(pl_broker *b) {
    if (!b) return;
    if (b->lfd >= 0) {
        close(b->lfd);
        if (b->sock_path && b->sock_path[0]) unlink(b->sock_path);
    }
    if (b->stopfd >= 0) close(b->stopfd);
    if (b->rootfd >= 0) close(b->rootfd);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->decide_mu);
    free(b->uids);
    free(b->sock_path);
    free(b);
}
