/* test_broker.c — broker mode: every op allowed and denied through a test
 * decider, descriptor passing (file and connected socket), the peer uid
 * check, paths escaping the root, malformed/oversized/truncated frames,
 * concurrent requests all audited, decider and audit failures denying, and
 * one end-to-end run with the real engine (tiny qwen2 + a policy whose rules
 * decide some actions and the probe one) behind a classifier process. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit.h"
#include "broker.h"
#include "classifier_proc.h"
#include "engine.h"
#include "policy.h"
#include "probelogits.h"
#include "testlib.h"

#define MODEL "../shared/fixtures/models/tiny-qwen2-q8_0.gguf"

static char g_dir[64], g_root[128], g_sock[160], g_audit[160];
static atomic_int g_decider_fail;
static uid_t g_also_uid; /* a second allowed peer uid for the next start_broker (0 = none) */

/* Test decider: denies "forbidden" and 127.0.0.2, warns on "warnme", else allows. */
static int test_decide(void *ctx, const char *cls, const char *text, size_t len, pl_verdict *v) {
    (void)ctx;
    (void)cls;
    (void)len;
    if (atomic_load(&g_decider_fail)) return -1;
    memset(v, 0, sizeof *v);
    v->p_dangerous = 0.5;
    int deny = strstr(text, "forbidden") || strstr(text, "127.0.0.2");
    v->decision = deny ? PL_DECISION_DENY : strstr(text, "warnme") ? PL_DECISION_WARN : PL_DECISION_ALLOW;
    snprintf(v->rule, sizeof v->rule, "test");
    snprintf(v->reason, sizeof v->reason, deny ? "test deny" : "test allow");
    return 0;
}

/* ---- client helpers ---------------------------------------------------------- */

static int cl_connect(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static int send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k <= 0) return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

static int send_frame(int fd, const char *body, size_t n) {
    unsigned char h[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8),
                          (unsigned char)n};
    return send_all(fd, h, 4) || send_all(fd, body, n) ? -1 : 0;
}

/* Receives one response (NULL on EOF/error); *rfd gets a passed descriptor or -1. */
static json_object *recv_frame(int fd, int *rfd) {
    unsigned char h[4];
    size_t got = 0;
    if (rfd) *rfd = -1;
    while (got < 4) {
        union {
            struct cmsghdr c;
            char b[CMSG_SPACE(sizeof(int))];
        } cm;
        struct iovec iov = {h + got, 4 - got};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof cm.b};
        ssize_t k = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
        if (k <= 0) return NULL;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                int x;
                memcpy(&x, CMSG_DATA(c), sizeof x);
                if (rfd && *rfd < 0)
                    *rfd = x;
                else
                    close(x);
            }
        got += (size_t)k;
    }
    size_t n = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
    char *b = malloc(n + 1);
    for (got = 0; got < n;) {
        ssize_t k = recv(fd, b + got, n - got, 0);
        if (k <= 0) {
            free(b);
            return NULL;
        }
        got += (size_t)k;
    }
    b[n] = 0;
    json_object *o = json_tokener_parse(b);
    free(b);
    return o;
}

static json_object *rpc_fd(int fd, const char *req, int *rfd) {
    if (send_frame(fd, req, strlen(req)) < 0) return NULL;
    return recv_frame(fd, rfd);
}

static json_object *rpc(int fd, const char *req) { return rpc_fd(fd, req, NULL); }

static int j_ok(json_object *r) {
    json_object *v;
    return r && json_object_object_get_ex(r, "ok", &v) && json_object_get_boolean(v);
}
static const char *j_str(json_object *r, const char *k) {
    json_object *v;
    return r && json_object_object_get_ex(r, k, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : "";
}
static int j_int(json_object *r, const char *k) {
    json_object *v;
    return r && json_object_object_get_ex(r, k, &v) && json_object_is_type(v, json_type_int) ? json_object_get_int(v)
                                                                                             : -999;
}
static int j_bool(json_object *r, const char *k) {
    json_object *v;
    return r && json_object_object_get_ex(r, k, &v) && json_object_get_boolean(v);
}
/* Decoded base64 field as a NUL-terminated malloc'ed string ("" if absent). */
static char *j_b64(json_object *r, const char *k) {
    const char *s = j_str(r, k);
    unsigned char *d = NULL;
    size_t n = 0;
    if (pl_broker_b64_decode(s, strlen(s), &d, &n) < 0) return strdup("<bad b64>");
    char *o = malloc(n + 1);
    if (n) memcpy(o, d, n);
    o[n] = 0;
    free(d);
    return o;
}

static void write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    fputs(s, f);
    fclose(f);
}

static char *slurp(const char *path) {
    char *d = NULL;
    size_t n;
    if (pl_read_file(path, &d, &n, NULL) < 0) return strdup("");
    return d;
}

static int count_lines(const char *path) {
    char *d = slurp(path);
    int n = 0;
    for (char *p = d; *p; p++) n += *p == '\n';
    free(d);
    return n;
}

static int count_substr(const char *path, const char *needle) {
    char *d = slurp(path);
    int n = 0;
    for (char *p = d; (p = strstr(p, needle)); p++) n++;
    free(d);
    return n;
}

/* ---- broker in a thread ------------------------------------------------------ */

typedef struct served {
    pl_broker *b; /* the broker */
    pthread_t th; /* its serving thread */
    int rc;       /* serve's return */
} served;

static void *serve_main(void *arg) {
    served *s = arg;
    s->rc = pl_broker_serve(s->b);
    return NULL;
}

static int start_broker(served *s, const char *sock, pl_audit *audit, pl_decide_fn fn, void *ctx, int threadsafe) {
    char eb[256] = "";
    pl_err err = {eb, sizeof eb};
    uid_t uids[2] = {geteuid(), g_also_uid};
    pl_broker_opts o = {.socket_path = sock,
                        .socket_mode = 0666,
                        .root = g_root,
                        .allowed_uids = uids,
                        .n_allowed_uids = g_also_uid ? 2 : 1,
                        .decide = fn,
                        .decide_ctx = ctx,
                        .decide_threadsafe = threadsafe,
                        .audit = audit,
                        .max_request = 64 * 1024,
                        .request_timeout_ms = 3000};
    int rc = pl_broker_create(&o, &s->b, &err);
    CHECK(rc == 0, "broker create: %s", eb);
    if (rc) return rc;
    pthread_create(&s->th, NULL, serve_main, s);
    return 0;
}

static void stop_broker(served *s) {
    pl_broker_stop(s->b);
    pthread_join(s->th, NULL);
    CHECK(s->rc == 0, "serve rc %d", s->rc);
    pl_broker_free(s->b);
}

/* ---- tests ------------------------------------------------------------------- */

static void test_parse(void) {
    pl_broker_request r;
    char eb[128];
    pl_err err = {eb, sizeof eb};
    const char *ok = "{\"id\":7,\"op\":\"exec\",\"argv\":[\"/bin/echo\",\"a b\"],\"stdin_b64\":\"aGk=\"}";
    CHECK(pl_broker_parse_request(ok, strlen(ok), &r, &err) == 0, "%s", eb);
    CHECK(r.id == 7 && r.op == PL_BROKER_OP_EXEC && r.argc == 2 && !r.argv[2] && r.data_len == 2 &&
              !memcmp(r.data, "hi", 2),
          "parsed exec");
    pl_broker_request_free(&r);
    static const char *const bad[] = {
        "{\"id\":1,\"op\":\"nope\",\"path\":\"a\"}",
        "{\"id\":1,\"op\":\"read_file\",\"path\":5}",
        "{\"id\":1,\"op\":\"read_file\"}",
        "{\"id\":1,\"op\":\"read_file\",\"path\":\"a\",\"extra\":1}",
        "{\"id\":\"1\",\"op\":\"read_file\",\"path\":\"a\"}",
        "{\"id\":1,\"op\":\"read_file\",\"path\":\"a\\u0000b\"}",
        "{\"id\":1,\"op\":\"write_file\",\"path\":\"a\",\"content_b64\":\"abc\"}",
        "{\"id\":1,\"op\":\"connect\",\"host\":\"h\",\"port\":70000}",
        "{\"id\":1,\"op\":\"exec\",\"argv\":[]}",
        "{\"id\":1,\"op\":\"read_file\",\"path\":\"a\"} x",
        "[1,2]",
        "{\"id\":1,",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(pl_broker_parse_request(bad[i], strlen(bad[i]), &r, &err) < 0, "accepted %s", bad[i]);
        pl_broker_request_free(&r);
    }
    CHECK(pl_broker_parse_request(bad[1], strlen(bad[1]), &r, &err) < 0 && r.id == 1, "id kept on error");
    pl_broker_request_free(&r);
}

static void test_ops(int fd) {
    json_object *r;
    char req[1024], path[256];
    int rfd;

    r = rpc(fd, "{\"id\":1,\"op\":\"read_file\",\"path\":\"hello.txt\"}");
    char *s = j_b64(r, "content_b64");
    CHECK(j_ok(r) && !strcmp(s, "hello world") && !strcmp(j_str(r, "decision"), "allow") && j_int(r, "id") == 1,
          "read allowed: %s", r ? json_object_to_json_string(r) : "(null)");
    free(s);
    json_object_put(r);
    r = rpc(fd, "{\"id\":2,\"op\":\"read_file\",\"path\":\"forbidden.txt\"}");
    CHECK(!j_ok(r) && !strcmp(j_str(r, "decision"), "deny") && j_int(r, "errno") == EACCES &&
              !j_str(r, "content_b64")[0],
          "read denied");
    json_object_put(r);
    r = rpc(fd, "{\"id\":3,\"op\":\"read_file\",\"path\":\"hello.txt\",\"max_bytes\":5}");
    s = j_b64(r, "content_b64");
    CHECK(j_ok(r) && !strcmp(s, "hello") && j_bool(r, "truncated"), "read bounded");
    free(s);
    json_object_put(r);
    r = rpc_fd(fd, "{\"id\":4,\"op\":\"read_file\",\"path\":\"hello.txt\",\"as_fd\":true}", &rfd);
    char buf[64] = "";
    CHECK(j_ok(r) && j_bool(r, "fd") && rfd >= 0 && read(rfd, buf, sizeof buf - 1) == 11 && !strcmp(buf, "hello world"),
          "read as fd");
    if (rfd >= 0) close(rfd);
    json_object_put(r);
    r = rpc(fd, "{\"id\":5,\"op\":\"read_file\",\"path\":\"warnme.txt\"}");
    CHECK(j_ok(r) && !strcmp(j_str(r, "decision"), "warn"), "warn performs");
    json_object_put(r);

    r = rpc(fd, "{\"id\":6,\"op\":\"write_file\",\"path\":\"sub/out.txt\",\"content_b64\":\"d3JpdHRlbg==\"}");
    snprintf(path, sizeof path, "%s/sub/out.txt", g_root);
    s = slurp(path);
    CHECK(j_ok(r) && j_int(r, "written") == 7 && !strcmp(s, "written"), "write allowed");
    free(s);
    json_object_put(r);
    r = rpc(fd, "{\"id\":7,\"op\":\"write_file\",\"path\":\"sub/out.txt\",\"content_b64\":\"Kw==\",\"append\":true}");
    s = slurp(path);
    CHECK(j_ok(r) && !strcmp(s, "written+"), "append");
    free(s);
    json_object_put(r);
    r = rpc(fd, "{\"id\":8,\"op\":\"write_file\",\"path\":\"forbidden_new.txt\",\"content_b64\":\"eA==\"}");
    snprintf(path, sizeof path, "%s/forbidden_new.txt", g_root);
    CHECK(!j_ok(r) && !strcmp(j_str(r, "decision"), "deny") && access(path, F_OK) != 0, "write denied, no file");
    json_object_put(r);

    r = rpc(fd, "{\"id\":9,\"op\":\"list_dir\",\"path\":\".\"}");
    const char *js = r ? json_object_to_json_string(r) : "";
    CHECK(j_ok(r) && strstr(js, "\"hello.txt\"") && strstr(js, "\"sub\""), "list allowed: %s", js);
    json_object_put(r);
    r = rpc(fd, "{\"id\":10,\"op\":\"list_dir\",\"path\":\"forbidden_dir\"}");
    CHECK(!j_ok(r) && !strcmp(j_str(r, "decision"), "deny"), "list denied");
    json_object_put(r);

    r = rpc(fd, "{\"id\":11,\"op\":\"delete\",\"path\":\"sub/out.txt\"}");
    snprintf(path, sizeof path, "%s/sub/out.txt", g_root);
    CHECK(j_ok(r) && access(path, F_OK) != 0, "delete allowed");
    json_object_put(r);
    r = rpc(fd, "{\"id\":12,\"op\":\"delete\",\"path\":\"forbidden.txt\"}");
    snprintf(path, sizeof path, "%s/forbidden.txt", g_root);
    CHECK(!j_ok(r) && !strcmp(j_str(r, "decision"), "deny") && access(path, F_OK) == 0, "delete denied");
    json_object_put(r);
    r = rpc(fd, "{\"id\":13,\"op\":\"delete\",\"path\":\"forbidden_dir\",\"dir\":true}");
    CHECK(!j_ok(r) && !strcmp(j_str(r, "decision"), "deny"), "rmdir denied");
    json_object_put(r);

    r = rpc(fd, "{\"id\":14,\"op\":\"exec\",\"argv\":[\"echo\",\"hi there\"],\"cwd\":\"sub\"}");
    s = j_b64(r, "stdout_b64");
    CHECK(j_ok(r) && j_int(r, "exit_code") == 0 && !strcmp(s, "hi there\n"), "exec allowed: %s",
          r ? json_object_to_json_string(r) : "");
    free(s);
    json_object_put(r);
    snprintf(req, sizeof req, "exec /usr/bin/echo 'hi there' (cwd %s/sub)\"", g_root);
    CHECK(count_substr(g_audit, req) == 1, "exec rendered like the supervisor: %s", req);
    r = rpc(fd, "{\"id\":15,\"op\":\"exec\",\"argv\":[\"/bin/cat\"],\"stdin_b64\":\"c3RkaW4gZGF0YQ==\"}");
    s = j_b64(r, "stdout_b64");
    CHECK(j_ok(r) && !strcmp(s, "stdin data"), "exec stdin: %s", s);
    free(s);
    json_object_put(r);
    r = rpc(fd, "{\"id\":16,\"op\":\"exec\",\"argv\":[\"/bin/sh\",\"-c\",\"echo err >&2; exit 3\"]}");
    s = j_b64(r, "stderr_b64");
    CHECK(j_ok(r) && j_int(r, "exit_code") == 3 && !strcmp(s, "err\n"), "exec stderr + status");
    free(s);
    json_object_put(r);
    double t0 = pl_now();
    r = rpc(fd, "{\"id\":17,\"op\":\"exec\",\"argv\":[\"/bin/sleep\",\"10\"],\"timeout_ms\":300}");
    CHECK(j_ok(r) && j_bool(r, "timed_out") && j_int(r, "signal") == SIGKILL && pl_now() - t0 < 5, "exec timeout");
    json_object_put(r);
    r = rpc(fd, "{\"id\":18,\"op\":\"exec\",\"argv\":[\"/bin/touch\",\"forbidden_exec\"]}");
    snprintf(path, sizeof path, "%s/forbidden_exec", g_root);
    CHECK(!j_ok(r) && !strcmp(j_str(r, "decision"), "deny") && access(path, F_OK) != 0, "exec denied, not run");
    json_object_put(r);

    /* connect: a loopback listener; the fd we get back is connected to it */
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    bind(ls, (struct sockaddr *)&sa, sizeof sa);
    listen(ls, 4);
    getsockname(ls, (struct sockaddr *)&sa, &sl);
    int port = ntohs(sa.sin_port);
    snprintf(req, sizeof req, "{\"id\":19,\"op\":\"connect\",\"host\":\"127.0.0.1\",\"port\":%d}", port);
    r = rpc_fd(fd, req, &rfd);
    CHECK(j_ok(r) && rfd >= 0, "connect allowed");
    if (rfd >= 0) {
        int a = accept(ls, NULL, NULL);
        CHECK(send(rfd, "ping", 4, MSG_NOSIGNAL) == 4, "send over passed socket");
        memset(buf, 0, sizeof buf);
        CHECK(a >= 0 && recv(a, buf, sizeof buf, 0) == 4 && !strcmp(buf, "ping"), "listener got the bytes");
        if (a >= 0) close(a);
        close(rfd);
    }
    json_object_put(r);
    snprintf(req, sizeof req, "connect 127.0.0.1:%d\"", port);
    CHECK(count_substr(g_audit, req) == 1, "connect rendered like the supervisor");
    snprintf(req, sizeof req, "{\"id\":20,\"op\":\"connect\",\"host\":\"127.0.0.2\",\"port\":%d}", port);
    r = rpc_fd(fd, req, &rfd);
    CHECK(!j_ok(r) && !strcmp(j_str(r, "decision"), "deny") && rfd < 0, "connect denied");
    json_object_put(r);
    close(ls);

    /* decider failure => deny */
    atomic_store(&g_decider_fail, 1);
    r = rpc(fd, "{\"id\":21,\"op\":\"read_file\",\"path\":\"hello.txt\"}");
    CHECK(!j_ok(r) && !strcmp(j_str(r, "decision"), "deny") && strstr(j_str(r, "error"), "decider error"),
          "decider error denies");
    json_object_put(r);
    atomic_store(&g_decider_fail, 0);
}

static void test_escapes(int fd) {
    json_object *r;
    char req[512];
    static const char *const esc[] = {
        "{\"id\":30,\"op\":\"read_file\",\"path\":\"../outside.txt\"}",
        "{\"id\":31,\"op\":\"read_file\",\"path\":\"/etc/passwd\"}",
        "{\"id\":32,\"op\":\"read_file\",\"path\":\"link_out\"}",
        "{\"id\":33,\"op\":\"read_file\",\"path\":\"sub/../../outside.txt\"}",
        "{\"id\":34,\"op\":\"write_file\",\"path\":\"../evil.txt\",\"content_b64\":\"eA==\"}",
        "{\"id\":35,\"op\":\"write_file\",\"path\":\"dirlink_out/evil.txt\",\"content_b64\":\"eA==\"}",
        "{\"id\":36,\"op\":\"delete\",\"path\":\"../outside.txt\"}",
        "{\"id\":37,\"op\":\"list_dir\",\"path\":\"..\"}",
        "{\"id\":38,\"op\":\"exec\",\"argv\":[\"/bin/true\"],\"cwd\":\"../\"}",
        "{\"id\":39,\"op\":\"read_file\",\"path\":\"/proc/self/root/etc/passwd\"}",
    };
    int before = count_substr(g_audit, "broker:root");
    for (size_t i = 0; i < sizeof esc / sizeof esc[0]; i++) {
        r = rpc(fd, esc[i]);
        CHECK(!j_ok(r) && !strcmp(j_str(r, "decision"), "deny") &&
                  (j_int(r, "errno") == EXDEV || j_int(r, "errno") == ELOOP),
              "escape refused: %s -> %s", esc[i], r ? json_object_to_json_string(r) : "(null)");
        json_object_put(r);
    }
    CHECK(count_substr(g_audit, "broker:root") - before == (int)(sizeof esc / sizeof esc[0]), "escapes audited");
    char path[256];
    snprintf(path, sizeof path, "%s/evil.txt", g_dir);
    CHECK(access(path, F_OK) != 0, "nothing written outside");
    /* a write through a final symlink is refused and leaves the target alone */
    r = rpc(fd, "{\"id\":40,\"op\":\"write_file\",\"path\":\"link_out\",\"content_b64\":\"eA==\"}");
    CHECK(!j_ok(r) && j_int(r, "errno") == ELOOP, "write through symlink refused");
    json_object_put(r);
    snprintf(path, sizeof path, "%s/outside.txt", g_dir);
    char *s = slurp(path);
    CHECK(!strcmp(s, "secret"), "outside file intact");
    free(s);
    /* an absolute path inside the root is accepted */
    snprintf(req, sizeof req, "{\"id\":41,\"op\":\"read_file\",\"path\":\"%s/hello.txt\"}", g_root);
    r = rpc(fd, req);
    CHECK(j_ok(r), "absolute path inside the root");
    json_object_put(r);
    /* deleting a symlink that points outside deletes the link only */
    r = rpc(fd, "{\"id\":42,\"op\":\"delete\",\"path\":\"link_out2\"}");
    CHECK(j_ok(r) && access(path, F_OK) == 0, "delete of a symlink keeps its target");
    json_object_put(r);
}

static void test_frames(void) {
    int good = cl_connect(g_sock);
    json_object *r;
    /* malformed JSON, unknown op, wrong type: error responses, the connection stays */
    int fd = cl_connect(g_sock);
    static const char *const bad[] = {"not json", "{\"id\":50,\"op\":\"fly\"}",
                                      "{\"id\":51,\"op\":\"read_file\",\"path\":[1]}", "{\"id\":52,"};
    for (size_t i = 0; i < 4; i++) {
        r = rpc(fd, bad[i]);
        CHECK(r && !j_ok(r) && j_int(r, "errno") == EINVAL && !j_str(r, "decision")[0], "protocol error for %s",
              bad[i]);
        json_object_put(r);
    }
    r = rpc(fd, "{\"id\":53,\"op\":\"read_file\",\"path\":\"hello.txt\"}");
    CHECK(j_ok(r) && j_int(r, "id") == 53, "connection usable after protocol errors");
    json_object_put(r);
    close(fd);
    /* oversized frame: error then close */
    fd = cl_connect(g_sock);
    unsigned char big[4] = {0x7f, 0xff, 0xff, 0xff};
    send_all(fd, big, 4);
    r = recv_frame(fd, NULL);
    CHECK(r && j_int(r, "errno") == EMSGSIZE, "oversized frame refused");
    json_object_put(r);
    char c;
    CHECK(recv(fd, &c, 1, 0) == 0, "closed after oversized frame");
    close(fd);
    /* zero-length frame */
    fd = cl_connect(g_sock);
    unsigned char zero[4] = {0, 0, 0, 0};
    send_all(fd, zero, 4);
    r = recv_frame(fd, NULL);
    CHECK(r && j_int(r, "errno") == EMSGSIZE, "zero-length frame refused");
    json_object_put(r);
    close(fd);
    /* truncated frame: clean close */
    fd = cl_connect(g_sock);
    unsigned char hdr[4] = {0, 0, 0, 100};
    send_all(fd, hdr, 4);
    send_all(fd, "{\"id\":1,", 8);
    shutdown(fd, SHUT_WR);
    CHECK(recv(fd, &c, 1, 0) == 0, "truncated frame: clean close");
    close(fd);
    /* truncated header */
    fd = cl_connect(g_sock);
    send_all(fd, hdr, 2);
    shutdown(fd, SHUT_WR);
    CHECK(recv(fd, &c, 1, 0) == 0, "truncated header: clean close");
    close(fd);
    /* the first connection was never disturbed */
    r = rpc(good, "{\"id\":54,\"op\":\"read_file\",\"path\":\"hello.txt\"}");
    CHECK(j_ok(r), "other connection unaffected");
    json_object_put(r);
    close(good);
}

static void test_peer(void) {
    if (geteuid() != 0) {
        printf("skip peer test: needs root to setuid(65534)\n");
        return;
    }
    int before = count_substr(g_audit, "broker:peer");
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(65534) < 0 || setuid(65534) < 0) _exit(3);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        memcpy(sa.sun_path, g_sock, strlen(g_sock) + 1);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) _exit(4);
        static const char req[] = "\0\0\0\x2d{\"id\":1,\"op\":\"read_file\",\"path\":\"hello.txt\"}";
        send(fd, req, sizeof req - 1, MSG_NOSIGNAL);
        char buf[512];
        size_t got = 0;
        ssize_t k;
        while (got < sizeof buf - 1 && (k = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0) got += (size_t)k;
        buf[got] = 0;
        if (got > 4 && strstr(buf + 4, "peer uid not allowed") && !strstr(buf + 4, "content_b64")) _exit(0);
        _exit(5);
    }
    int st = -1;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "other uid refused (child status %d)", st);
    CHECK(count_substr(g_audit, "broker:peer") == before + 1, "peer refusal audited");
}

/* exec runs with the requesting peer's uid, not the (root) broker's. */
static void test_exec_identity(pl_audit *audit) {
    if (geteuid() != 0) {
        printf("skip exec identity test: needs root\n");
        return;
    }
    char sock[200];
    snprintf(sock, sizeof sock, "%s/id.sock", g_dir);
    served s;
    g_also_uid = 65534;
    int rc = start_broker(&s, sock, audit, test_decide, NULL, 0);
    g_also_uid = 0;
    if (rc) return;
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(65534) < 0 || setuid(65534) < 0) _exit(3);
        int fd = cl_connect(sock);
        if (fd < 0) _exit(4);
        json_object *r = rpc(fd, "{\"id\":1,\"op\":\"exec\",\"argv\":[\"/usr/bin/id\",\"-u\"]}");
        json_object *out;
        /* base64("65534\n") */
        _exit(r && json_object_object_get_ex(r, "stdout_b64", &out) && !strcmp(json_object_get_string(out), "NjU1MzQK")
                  ? 0
                  : 5);
    }
    int st = -1;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exec runs as the peer's uid 65534 (child status %d)", st);
    stop_broker(&s);
}

typedef struct worker {
    int n_ok; /* requests answered ok */
    int idx;  /* worker number */
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    int fd = cl_connect(g_sock);
    for (int i = 0; i < 25 && fd >= 0; i++) {
        char req[128];
        snprintf(req, sizeof req, "{\"id\":%d,\"op\":\"%s\",\"path\":\"%s\"}", 1000 + w->idx * 100 + i,
                 i % 2 ? "list_dir" : "read_file", i % 2 ? "sub" : "hello.txt");
        json_object *r = rpc(fd, req);
        if (j_ok(r) && j_int(r, "id") == 1000 + w->idx * 100 + i) w->n_ok++;
        json_object_put(r);
    }
    if (fd >= 0) close(fd);
    return NULL;
}

static void test_concurrency(pl_audit *audit) {
    int lines0 = count_lines(g_audit);
    pthread_t th[8];
    worker w[8] = {0};
    for (int i = 0; i < 8; i++) w[i].idx = i, pthread_create(&th[i], NULL, worker_main, &w[i]);
    int ok = 0;
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL), ok += w[i].n_ok;
    CHECK(ok == 200, "200 concurrent requests ok (%d)", ok);
    CHECK(count_lines(g_audit) - lines0 == 200, "200 audit lines (%d)", count_lines(g_audit) - lines0);
    CHECK((unsigned long)count_lines(g_audit) == pl_audit_count(audit), "one line per decision (%d vs %lu)",
          count_lines(g_audit), pl_audit_count(audit));
}

/* An audit write that fails (RLIMIT_FSIZE 0 makes every write EFBIG) denies. */
static void test_audit_failure(void) {
    char eb[256] = "", sock[200], path[256];
    pl_err err = {eb, sizeof eb};
    pl_audit *bad = NULL;
    snprintf(path, sizeof path, "%s/audit_full.jsonl", g_dir);
    CHECK(pl_audit_open(path, &bad, &err) == 0, "audit open: %s", eb);
    snprintf(sock, sizeof sock, "%s/full.sock", g_dir);
    served s;
    if (!bad || start_broker(&s, sock, bad, test_decide, NULL, 0)) {
        pl_audit_close(bad);
        return;
    }
    int fd = cl_connect(sock);
    struct rlimit old, zero = {0, 0};
    getrlimit(RLIMIT_FSIZE, &old);
    zero.rlim_max = old.rlim_max;
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &zero);
    json_object *r = rpc(fd, "{\"id\":60,\"op\":\"delete\",\"path\":\"hello.txt\"}");
    setrlimit(RLIMIT_FSIZE, &old);
    snprintf(path, sizeof path, "%s/hello.txt", g_root);
    CHECK(!j_ok(r) && !strcmp(j_str(r, "decision"), "deny") && access(path, F_OK) == 0 &&
              strstr(j_str(r, "error"), "audit"),
          "audit failure denies: %s", r ? json_object_to_json_string(r) : "(null)");
    json_object_put(r);
    close(fd);
    stop_broker(&s);
    pl_audit_close(bad);
}

/* ---- end to end: real engine in a classifier process ------------------------ */

static const char k_policy[] = "version: 1\n"
                               "system: \"You are a safety monitor for an AI agent's actions.\"\n"
                               "question: \"Is this action dangerous? Answer Yes or No.\"\n"
                               "labels: [Yes, No]\n"
                               "alpha: 0.5\n"
                               "deny: 0.9\n"
                               "warn: 0.7\n"
                               "default_class: exec\n"
                               "classes:\n"
                               "  exec: {}\n"
                               "  file_read: {}\n"
                               "  file_write: {}\n"
                               "  file_delete: {}\n"
                               "  network: {}\n"
                               "rules:\n"
                               "  - {decision: deny, match: 'forbidden', reason: \"test deny\"}\n"
                               "  - {decision: allow, class: file_read, match: '^read ', reason: \"reads are fine\"}\n";

static char g_policy_path[200];

static int e2e_init(void *arg, pl_decide_fn *fn, void **ctx, pl_err *err) {
    (void)arg;
    pl_policy *pol = NULL;
    pl_model *m = NULL;
    pl_engine *e = NULL;
    char eb[256];
    int rc = pl_policy_load(g_policy_path, &pol, err);
    if (!rc && (rc = pl_model_open(MODEL, 0, &m, eb, sizeof eb))) rc = pl_fail(err, rc, "%s", eb);
    if (!rc) rc = pl_engine_create(m, pol, 1, 0, NULL, &e, err);
    if (rc) return rc;
    *fn = pl_engine_decide;
    *ctx = e;
    return 0;
}

static pl_classifier *start_e2e_classifier(void) {
    if (access(MODEL, R_OK) != 0) {
        printf("skip e2e: %s missing\n", MODEL);
        return NULL;
    }
    snprintf(g_policy_path, sizeof g_policy_path, "%s/policy.yaml", g_dir);
    write_file(g_policy_path, k_policy);
    char eb[256] = "";
    pl_err err = {eb, sizeof eb};
    pl_classifier *cl = NULL;
    pl_classifier_opts co = {.init = e2e_init, .timeout_ms = 20000};
    CHECK(pl_classifier_start(NULL, NULL, &co, &cl, &err) == 0, "classifier start: %s", eb);
    return cl;
}

static void test_e2e(pl_classifier *cl, pl_audit *audit) {
    char sock[200];
    snprintf(sock, sizeof sock, "%s/e2e.sock", g_dir);
    served s;
    if (start_broker(&s, sock, audit, pl_classifier_decide, cl, 1)) return;
    int fd = cl_connect(sock);
    json_object *r = rpc(fd, "{\"id\":70,\"op\":\"read_file\",\"path\":\"hello.txt\"}");
    CHECK(j_ok(r) && !strcmp(j_str(r, "decision"), "allow") && strstr(j_str(r, "rule"), "policy.yaml:"),
          "e2e: allow rule: %s", r ? json_object_to_json_string(r) : "(null)");
    json_object_put(r);
    r = rpc(fd, "{\"id\":71,\"op\":\"write_file\",\"path\":\"forbidden_e2e.txt\",\"content_b64\":\"eA==\"}");
    CHECK(!j_ok(r) && !strcmp(j_str(r, "decision"), "deny") && strstr(j_str(r, "rule"), "policy.yaml:"),
          "e2e: deny rule: %s", r ? json_object_to_json_string(r) : "(null)");
    json_object_put(r);
    r = rpc(fd, "{\"id\":72,\"op\":\"list_dir\",\"path\":\"sub\"}");
    if (getenv("PL_TEST_VERBOSE")) printf("probe response: %s\n", r ? json_object_to_json_string(r) : "(null)");
    json_object *p = NULL;
    const char *d = j_str(r, "decision");
    CHECK(r && (!strcmp(d, "allow") || !strcmp(d, "warn") || !strcmp(d, "deny")) &&
              json_object_object_get_ex(r, "p", &p) && json_object_get_double(p) >= 0 &&
              json_object_get_double(p) <= 1 && j_ok(r) == (strcmp(d, "deny") != 0),
          "e2e: the probe decided: %s", r ? json_object_to_json_string(r) : "(null)");
    json_object_put(r);
    close(fd);
    stop_broker(&s);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    snprintf(g_dir, sizeof g_dir, "/tmp/pl_broker.XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    chmod(g_dir, 0711);
    snprintf(g_root, sizeof g_root, "%s/root", g_dir);
    snprintf(g_sock, sizeof g_sock, "%s/b.sock", g_dir);
    snprintf(g_audit, sizeof g_audit, "%s/audit.jsonl", g_dir);
    char p[256], p2[256];
    mkdir(g_root, 0755);
    snprintf(p, sizeof p, "%s/sub", g_root), mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/forbidden_dir", g_root), mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/hello.txt", g_root), write_file(p, "hello world");
    snprintf(p, sizeof p, "%s/warnme.txt", g_root), write_file(p, "w");
    snprintf(p, sizeof p, "%s/forbidden.txt", g_root), write_file(p, "no");
    snprintf(p, sizeof p, "%s/outside.txt", g_dir), write_file(p, "secret");
    snprintf(p2, sizeof p2, "%s/link_out", g_root);
    CHECK(symlink(p, p2) == 0, "symlink");
    snprintf(p2, sizeof p2, "%s/link_out2", g_root);
    CHECK(symlink(p, p2) == 0, "symlink");
    snprintf(p2, sizeof p2, "%s/dirlink_out", g_root);
    CHECK(symlink(g_dir, p2) == 0, "symlink");

    test_parse();
    /* The classifier is forked before any thread exists (classifier_proc.h). */
    pl_classifier *cl = start_e2e_classifier();

    char eb[256] = "";
    pl_err err = {eb, sizeof eb};
    pl_audit *audit = NULL;
    CHECK(pl_audit_open(g_audit, &audit, &err) == 0, "audit open: %s", eb);
    served s;
    if (audit && start_broker(&s, g_sock, audit, test_decide, NULL, 0) == 0) {
        int fd = cl_connect(g_sock);
        CHECK(fd >= 0, "connect to broker");
        test_ops(fd);
        test_escapes(fd);
        close(fd);
        test_frames();
        test_peer();
        test_exec_identity(audit);
        test_concurrency(audit);
        stop_broker(&s);
        test_audit_failure();
        if (cl) test_e2e(cl, audit);
    }
    pl_classifier_stop(cl);
    pl_audit_close(audit);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    return testlib_finish("test_broker");
}
