/* sandbox.c — launcher of a governed agent (see sandbox.h). The seccomp
 * program and the Landlock ruleset are built in the parent before fork; the
 * child only performs raw syscalls, reports the first failing step over a
 * SOCK_SEQPACKET socketpair, and lets the parent take the listener with pidfd_getfd. */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probelogits.h"

/* Landlock UAPI, defined locally: bookworm's 6.1 headers stop at ABI 2. */
#define LL_FS_EXECUTE (1ULL << 0)
#define LL_FS_WRITE_FILE (1ULL << 1)
#define LL_FS_REMOVE_DIR (1ULL << 4)
#define LL_FS_REMOVE_FILE (1ULL << 5)
#define LL_FS_MAKE_CHAR (1ULL << 6)
#define LL_FS_MAKE_DIR (1ULL << 7)
#define LL_FS_MAKE_REG (1ULL << 8)
#define LL_FS_MAKE_SOCK (1ULL << 9)
#define LL_FS_MAKE_FIFO (1ULL << 10)
#define LL_FS_MAKE_BLOCK (1ULL << 11)
#define LL_FS_MAKE_SYM (1ULL << 12)
#define LL_FS_REFER (1ULL << 13)
#define LL_FS_TRUNCATE (1ULL << 14)
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LL_SCOPE_SIGNAL (1ULL << 1)
#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1

struct ll_ruleset_attr {
    uint64_t handled_access_fs;  /* filesystem rights the domain restricts */
    uint64_t handled_access_net; /* network rights (ABI >= 4) */
    uint64_t scoped;             /* IPC scopes (ABI >= 6) */
};
struct ll_path_beneath_attr {
    uint64_t allowed_access; /* rights granted beneath parent_fd */
    int32_t parent_fd;       /* O_PATH fd of the file or directory */
} __attribute__((packed));

#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#ifndef __NR_fchmodat2
#define __NR_fchmodat2 452
#endif
#ifndef __O_TMPFILE
#define __O_TMPFILE 020000000
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

static const char *const k_devices[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/ptmx", NULL};

int pl_sandbox_path_writable(const pl_sandbox *sb, const char *path) {
    for (int i = 0; i < sb->n_roots; i++) {
        size_t n = strlen(sb->roots[i]);
        if (n == 1 && path[0] == '/') return 1; /* root "/" */
        if (strncmp(path, sb->roots[i], n) == 0 && (path[n] == '\0' || path[n] == '/')) return 1;
    }
    for (int i = 0; k_devices[i]; i++)
        if (strcmp(path, k_devices[i]) == 0) return 1;
    if (strncmp(path, "/dev/pts/", 9) == 0 && path[9] >= '0' && path[9] <= '9') return 1;
    return 0;
}

/* ---- seccomp program ---------------------------------------------------- */

static int add(scmp_filter_ctx c, uint32_t act, int nr, unsigned n, const struct scmp_arg_cmp *a) {
    return seccomp_rule_add_array(c, act, nr, n, a);
}

/* Builds the BPF program in memory: libseccomp 2.5 exports only to an fd. */
static int build_filter(struct sock_fprog *prog, pl_err *err) {
    scmp_filter_ctx c = seccomp_init(SCMP_ACT_ALLOW);
    if (!c) return pl_fail(err, PL_ERR_NOMEM, "sandbox: seccomp_init failed");
    int rc = 0;
    /* Non-native ABIs (i386 int 0x80, x32 numbers) kill the whole agent. */
    rc |= seccomp_attr_set(c, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    rc |= seccomp_attr_set(c, SCMP_FLTATR_CTL_NNP, 0); /* set explicitly by the child */
    const uint32_t N = SCMP_ACT_NOTIFY, EP = SCMP_ACT_ERRNO(EPERM);
    /* Opens that can modify: any of the write/create/truncate/tmpfile bits. */
    static const uint64_t wbits[] = {O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, __O_TMPFILE};
    for (size_t i = 0; i < sizeof wbits / sizeof wbits[0]; i++) {
        struct scmp_arg_cmp a1 = SCMP_A1(SCMP_CMP_MASKED_EQ, wbits[i], wbits[i]);
        struct scmp_arg_cmp a2 = SCMP_A2(SCMP_CMP_MASKED_EQ, wbits[i], wbits[i]);
        rc |= add(c, N, SCMP_SYS(open), 1, &a1);
        rc |= add(c, N, SCMP_SYS(openat), 1, &a2);
    }
    static const int notify_all[] = {
        SCMP_SYS(creat),    SCMP_SYS(openat2),  SCMP_SYS(unlink),    SCMP_SYS(unlinkat), SCMP_SYS(rmdir),
        SCMP_SYS(rename),   SCMP_SYS(renameat), SCMP_SYS(renameat2), SCMP_SYS(mkdir),    SCMP_SYS(mkdirat),
        SCMP_SYS(chmod),    SCMP_SYS(fchmod),   SCMP_SYS(fchmodat),  __NR_fchmodat2,     SCMP_SYS(link),
        SCMP_SYS(linkat),   SCMP_SYS(symlink),  SCMP_SYS(symlinkat), SCMP_SYS(mknod),    SCMP_SYS(mknodat),
        SCMP_SYS(truncate), SCMP_SYS(execve),   SCMP_SYS(execveat),  SCMP_SYS(connect),
    };
    for (size_t i = 0; i < sizeof notify_all / sizeof notify_all[0]; i++) rc |= add(c, N, notify_all[i], 0, NULL);
    /* Datagram egress with an explicit destination: sendto with a non-NULL
     * address (a register), sendmsg/sendmmsg always (the address is in memory). */
    struct scmp_arg_cmp dst4 = SCMP_A4(SCMP_CMP_NE, 0);
    rc |= add(c, N, SCMP_SYS(sendto), 1, &dst4);
    rc |= add(c, N, SCMP_SYS(sendmsg), 0, NULL);
    rc |= add(c, N, SCMP_SYS(sendmmsg), 0, NULL);
    /* memfd_create must seal out exec (no loader/execveat of anonymous code). */
    struct scmp_arg_cmp mfd1 = SCMP_A1(SCMP_CMP_MASKED_EQ, MFD_NOEXEC_SEAL, 0);
    rc |= add(c, EP, SCMP_SYS(memfd_create), 1, &mfd1);
    static const int refused[] = {
        SCMP_SYS(io_uring_setup),
        SCMP_SYS(io_uring_enter),
        SCMP_SYS(io_uring_register),
        SCMP_SYS(ptrace),
        SCMP_SYS(process_vm_readv),
        SCMP_SYS(process_vm_writev),
        SCMP_SYS(pidfd_getfd),
        SCMP_SYS(bpf),
        SCMP_SYS(userfaultfd),
        SCMP_SYS(perf_event_open),
        SCMP_SYS(mount),
        SCMP_SYS(umount2),
        SCMP_SYS(fsopen),
        SCMP_SYS(fsconfig),
        SCMP_SYS(fsmount),
        SCMP_SYS(fspick),
        SCMP_SYS(open_tree),
        SCMP_SYS(move_mount),
        SCMP_SYS(mount_setattr),
        SCMP_SYS(pivot_root),
        SCMP_SYS(chroot),
        SCMP_SYS(kexec_load),
        SCMP_SYS(kexec_file_load),
        SCMP_SYS(init_module),
        SCMP_SYS(finit_module),
        SCMP_SYS(delete_module),
        SCMP_SYS(name_to_handle_at),
        SCMP_SYS(open_by_handle_at),
        SCMP_SYS(personality),
        SCMP_SYS(keyctl),
        SCMP_SYS(add_key),
        SCMP_SYS(request_key),
        SCMP_SYS(setns),
        SCMP_SYS(io_setup),
        SCMP_SYS(io_submit), /* Linux AIO writes user memory asynchronously */
        SCMP_SYS(chown),
        SCMP_SYS(fchown),
        SCMP_SYS(lchown),
        SCMP_SYS(fchownat),
        SCMP_SYS(setxattr),
        SCMP_SYS(lsetxattr),
        SCMP_SYS(fsetxattr),
        SCMP_SYS(removexattr),
        SCMP_SYS(lremovexattr),
        SCMP_SYS(fremovexattr),
        SCMP_SYS(acct),
        SCMP_SYS(swapon),
        SCMP_SYS(swapoff),
        SCMP_SYS(reboot),
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) rc |= add(c, EP, refused[i], 0, NULL);
    /* clone3 carries its flags in memory: ENOSYS makes libc fall back to clone. */
    rc |= add(c, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0, NULL);
    struct scmp_arg_cmp nu0 = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER);
    rc |= add(c, EP, SCMP_SYS(unshare), 1, &nu0);
    rc |= add(c, EP, SCMP_SYS(clone), 1, &nu0);
    struct scmp_arg_cmp nl1 =
        SCMP_A1(SCMP_CMP_MASKED_EQ, SECCOMP_FILTER_FLAG_NEW_LISTENER, SECCOMP_FILTER_FLAG_NEW_LISTENER);
    rc |= add(c, EP, SCMP_SYS(seccomp), 1, &nl1);
    /* Socket families other than unix, inet, inet6, netlink. */
    struct scmp_arg_cmp fam;
    for (int f = 0; f <= 16; f++) {
        if (f == AF_UNIX || f == AF_INET || f == AF_INET6 || f == AF_NETLINK) continue;
        fam = (struct scmp_arg_cmp)SCMP_A0(SCMP_CMP_EQ, (uint64_t)f);
        rc |= add(c, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1, &fam);
    }
    fam = (struct scmp_arg_cmp)SCMP_A0(SCMP_CMP_GT, 16);
    rc |= add(c, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1, &fam);
    if (rc) {
        seccomp_release(c);
        return pl_fail(err, PL_ERR_UNSUPPORTED, "sandbox: building the seccomp filter failed (libseccomp)");
    }
    int mfd = memfd_create("pl-bpf", MFD_CLOEXEC);
    if (mfd < 0) {
        seccomp_release(c);
        return pl_fail(err, PL_ERR_IO, "sandbox: memfd_create: %s", strerror(errno));
    }
    rc = seccomp_export_bpf(c, mfd);
    seccomp_release(c);
    off_t len = lseek(mfd, 0, SEEK_END);
    if (rc < 0 || len <= 0 || len % (off_t)sizeof(struct sock_filter) || len > 65536 * 8) {
        close(mfd);
        return pl_fail(err, PL_ERR_INTERNAL, "sandbox: seccomp_export_bpf failed (%d)", rc);
    }
    struct sock_filter *f = malloc((size_t)len);
    if (!f || pread(mfd, f, (size_t)len, 0) != len) {
        free(f);
        close(mfd);
        return pl_fail(err, PL_ERR_IO, "sandbox: reading the exported filter failed");
    }
    close(mfd);
    prog->len = (unsigned short)(len / (off_t)sizeof(struct sock_filter));
    prog->filter = f;
    return 0;
}

/* ---- Landlock ruleset --------------------------------------------------- */

static int ll_add(int rs, const char *path, uint64_t access, int must) {
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) return must ? -errno : 0;
    struct ll_path_beneath_attr pb = {.allowed_access = access, .parent_fd = fd};
    long r = syscall(__NR_landlock_add_rule, rs, LL_RULE_PATH_BENEATH, &pb, 0);
    int e = errno;
    close(fd);
    return r < 0 ? -e : 0;
}

static int build_landlock(pl_sandbox *sb, int *rs_out, pl_err *err) {
    long abi = syscall(__NR_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
    if (abi < 1)
        return pl_fail(err, PL_ERR_UNSUPPORTED,
                       "sandbox: Landlock is unavailable (%s); refusing to run the agent without it", strerror(errno));
    sb->landlock_abi = (int)abi;
    uint64_t fs = LL_FS_WRITE_FILE | LL_FS_REMOVE_DIR | LL_FS_REMOVE_FILE | LL_FS_MAKE_CHAR | LL_FS_MAKE_DIR |
                  LL_FS_MAKE_REG | LL_FS_MAKE_SOCK | LL_FS_MAKE_FIFO | LL_FS_MAKE_BLOCK | LL_FS_MAKE_SYM;
    if (abi >= 2) fs |= LL_FS_REFER;
    if (abi >= 3) fs |= LL_FS_TRUNCATE;
    struct ll_ruleset_attr ra = {.handled_access_fs = fs};
    size_t sz = 8;
    if (abi >= 4) {
        ra.handled_access_net = LL_NET_CONNECT_TCP; /* no rule: every TCP connect goes through the supervisor */
        sz = 16;
    }
    if (abi >= 6) {
        ra.scoped = LL_SCOPE_SIGNAL | LL_SCOPE_ABSTRACT_UNIX_SOCKET;
        sz = 24;
    }
    int rs = (int)syscall(__NR_landlock_create_ruleset, &ra, sz, 0);
    if (rs < 0) return pl_fail(err, PL_ERR_UNSUPPORTED, "sandbox: landlock_create_ruleset: %s", strerror(errno));
    uint64_t file_rights = LL_FS_WRITE_FILE | (abi >= 3 ? LL_FS_TRUNCATE : 0);
    for (int i = 0; i < sb->n_roots; i++) {
        int r = ll_add(rs, sb->roots[i], fs, 1);
        if (r < 0) {
            close(rs);
            return pl_fail(err, PL_ERR_IO, "sandbox: Landlock rule for %s: %s", sb->roots[i], strerror(-r));
        }
    }
    for (int i = 0; k_devices[i]; i++) ll_add(rs, k_devices[i], file_rights, 0);
    ll_add(rs, "/dev/pts", file_rights, 0);
    *rs_out = rs;
    return 0;
}

/* ---- cgroup v2 ---------------------------------------------------------- */

static int find_cgroup2_mount(char *out, size_t cap) {
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f) return -1;
    char line[4096];
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        char *sep = strstr(line, " - ");
        if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0) continue;
        char mnt[PATH_MAX];
        if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1 && strlen(mnt) < cap) {
            snprintf(out, cap, "%s", mnt);
            found = 0;
            break;
        }
    }
    fclose(f);
    return found;
}

static int setup_cgroup(pl_sandbox *sb, int *procs_fd, pl_err *err) {
    char mnt[PATH_MAX], self[PATH_MAX] = "";
    if (find_cgroup2_mount(mnt, sizeof mnt) < 0)
        return pl_fail(err, PL_ERR_UNSUPPORTED,
                       "sandbox: no cgroup2 mount found (needed to freeze and kill the agent)");
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (f) {
        char line[PATH_MAX + 8];
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "0::", 3) == 0) {
                line[strcspn(line, "\n")] = 0;
                if (strlen(line + 3) < sizeof self) memcpy(self, line + 3, strlen(line + 3) + 1);
            }
        fclose(f);
    }
    if (strcmp(self, "/") == 0) self[0] = 0;
    static int seq;
    int n = snprintf(sb->cgroup, sizeof sb->cgroup, "%s%s/probelogits-%d-%d", mnt, self, (int)getpid(),
                     __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
    if (n <= 0 || (size_t)n >= sizeof sb->cgroup) return pl_fail(err, PL_ERR_RANGE, "sandbox: cgroup path too long");
    if (mkdir(sb->cgroup, 0755) < 0) {
        int e = errno;
        sb->cgroup[0] = 0;
        return pl_fail(err, PL_ERR_IO, "sandbox: cannot create the agent cgroup under %s%s: %s", mnt, self,
                       strerror(e));
    }
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/cgroup.freeze", sb->cgroup);
    sb->cg_freeze_fd = open(p, O_WRONLY | O_CLOEXEC);
    snprintf(p, sizeof p, "%s/cgroup.kill", sb->cgroup);
    sb->cg_kill_fd = open(p, O_WRONLY | O_CLOEXEC);
    snprintf(p, sizeof p, "%s/cgroup.procs", sb->cgroup);
    *procs_fd = open(p, O_WRONLY | O_CLOEXEC);
    if (sb->cg_freeze_fd < 0 || *procs_fd < 0)
        return pl_fail(err, PL_ERR_UNSUPPORTED, "sandbox: cgroup %s lacks cgroup.freeze/cgroup.procs: %s", sb->cgroup,
                       strerror(errno));
    return 0;
}

int pl_sandbox_freeze(pl_sandbox *sb, int on) {
    return pwrite(sb->cg_freeze_fd, on ? "1" : "0", 1, 0) == 1 ? 0 : -errno;
}

void pl_sandbox_kill(pl_sandbox *sb) {
    if (!sb) return;
    if (sb->cg_kill_fd >= 0 && pwrite(sb->cg_kill_fd, "1", 1, 0) == 1) return;
    /* Fallback: thaw and kill every listed pid until the cgroup is empty. */
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/cgroup.procs", sb->cgroup);
    for (int round = 0; round < 50; round++) {
        FILE *f = fopen(p, "re");
        if (!f) return;
        int pid, any = 0;
        while (fscanf(f, "%d", &pid) == 1) {
            kill(pid, SIGKILL);
            any = 1;
        }
        fclose(f);
        if (!any) return;
        usleep(1000);
    }
}

/* ---- the child ----------------------------------------------------------- */

static __attribute__((noreturn)) void child_fail(int sock, const char *step, int e) {
    char m[256];
    int n = snprintf(m, sizeof m, "%s: %s", step, strerror(e));
    if (n > 0) (void)!send(sock, m, (size_t)n, MSG_NOSIGNAL);
    _exit(127);
}

static __attribute__((noreturn)) void child_main(pl_sandbox *sb, const pl_sandbox_opts *o, char *const argv[], int sock,
                                                 int procs_fd, int rs, struct sock_fprog *prog, pid_t parent,
                                                 uid_t outer_uid, gid_t outer_gid) {
    signal(SIGINT, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    if (write(procs_fd, "0", 1) != 1) child_fail(sock, "joining the agent cgroup", errno);
    close(procs_fd);
    if (sb->mount_ns) {
        /* Private mount namespace: writable temp roots noexec (shortest path
         * first, so a workspace below /tmp gets its own flags back). */
        if (unshare(CLONE_NEWNS) < 0) child_fail(sock, "unshare(CLONE_NEWNS)", errno);
        if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0) child_fail(sock, "making / a slave mount", errno);
        int done[PL_SANDBOX_MAX_ROOTS] = {0};
        for (int k = 0; k < sb->n_roots; k++) {
            int best = -1;
            for (int j = 0; j < sb->n_roots; j++)
                if (!done[j] && (best < 0 || strlen(sb->roots[j]) < strlen(sb->roots[best]))) best = j;
            done[best] = 1;
            const char *d = sb->roots[best];
            if (!strcmp(d, "/")) continue;
            unsigned long fl = MS_BIND | MS_REMOUNT | sb->root_mflags[best];
            if (sb->root_noexec[best]) fl |= MS_NOEXEC | MS_NOSUID | MS_NODEV;
            if (mount(d, d, NULL, MS_BIND | MS_REC, NULL) < 0) child_fail(sock, "bind-mounting a writable root", errno);
            if (mount(NULL, d, NULL, fl, NULL) < 0) child_fail(sock, "remounting a writable root noexec", errno);
        }
    }
    if (outer_uid == 0) {
        if (setgroups(0, NULL) < 0) child_fail(sock, "setgroups", errno);
        if (setresgid(sb->gid, sb->gid, sb->gid) < 0) child_fail(sock, "setresgid", errno);
        if (setresuid(sb->uid, sb->uid, sb->uid) < 0) child_fail(sock, "setresuid", errno);
        if (getuid() != sb->uid || geteuid() != sb->uid) child_fail(sock, "uid change did not hold", EPERM);
    } else {
        if (unshare(CLONE_NEWUSER) < 0) child_fail(sock, "unshare(CLONE_NEWUSER)", errno);
        char m[64];
        int fd = open("/proc/self/setgroups", O_WRONLY);
        if (fd < 0 || write(fd, "deny", 4) != 4) child_fail(sock, "writing /proc/self/setgroups", errno);
        close(fd);
        int n = snprintf(m, sizeof m, "%u %u 1", (unsigned)outer_uid, (unsigned)outer_uid);
        fd = open("/proc/self/uid_map", O_WRONLY);
        if (fd < 0 || write(fd, m, (size_t)n) != n) child_fail(sock, "writing uid_map", errno);
        close(fd);
        n = snprintf(m, sizeof m, "%u %u 1", (unsigned)outer_gid, (unsigned)outer_gid);
        fd = open("/proc/self/gid_map", O_WRONLY);
        if (fd < 0 || write(fd, m, (size_t)n) != n) child_fail(sock, "writing gid_map", errno);
        close(fd);
    }
    /* After the uid change (which clears it): die with the supervisor. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) child_fail(sock, "PR_SET_PDEATHSIG", errno);
    if (getppid() != parent) child_fail(sock, "supervisor exited during setup", ESRCH);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) child_fail(sock, "PR_SET_NO_NEW_PRIVS", errno);
    if (syscall(__NR_landlock_restrict_self, rs, 0) < 0) child_fail(sock, "landlock_restrict_self", errno);
    close(rs);
    /* Close every inherited fd above 2 except the hand-over socket. */
    if (sock > 3 && syscall(__NR_close_range, 3, sock - 1, 0) < 0) child_fail(sock, "close_range", errno);
    if (syscall(__NR_close_range, sock + 1, ~0U, 0) < 0) child_fail(sock, "close_range", errno);
    int lfd = (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER,
                           SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, prog);
    if (lfd < 0) child_fail(sock, "seccomp(SET_MODE_FILTER, NEW_LISTENER|WAIT_KILLABLE_RECV)", errno);
    /* Hand-over: sendmsg is itself governed now, so send only the fd number
     * with write() and let the parent take the fd with pidfd_getfd; keep it
     * open until the parent acknowledges. */
    char msg[1 + sizeof(int)];
    msg[0] = 'L';
    memcpy(msg + 1, &lfd, sizeof lfd);
    if (write(sock, msg, sizeof msg) != (ssize_t)sizeof msg) _exit(127); /* cannot report: the socket is the channel */
    char ack = 0;
    if (read(sock, &ack, 1) != 1 || ack != 'K') _exit(127);
    close(lfd);
    close(sock);
    if (o->child_fn) _exit(o->child_fn(o->child_arg) & 0xff);
    execvp(argv[0], argv);
    int e = errno;
    dprintf(2, "probelogits: cannot execute %s: %s\n", argv[0], strerror(e));
    _exit(e == ENOENT ? 127 : 126);
}

static int add_root(pl_sandbox *sb, const char *path, int must, int noexec, pl_err *err) {
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        if (!must) return 0;
        return pl_fail(err, PL_ERR_IO, "sandbox: writable root %s: %s", path, strerror(errno));
    }
    if (sb->n_roots >= PL_SANDBOX_MAX_ROOTS) return pl_fail(err, PL_ERR_RANGE, "sandbox: too many writable roots");
    struct statvfs sv;
    if (statvfs(real, &sv) < 0) return pl_fail(err, PL_ERR_IO, "sandbox: statvfs %s: %s", real, strerror(errno));
    unsigned long fl = 0;
    if (sv.f_flag & ST_RDONLY) fl |= MS_RDONLY;
    if (sv.f_flag & ST_NOSUID) fl |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV) fl |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC) fl |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME) fl |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME) fl |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME) fl |= MS_RELATIME;
    sb->root_mflags[sb->n_roots] = fl;
    sb->root_noexec[sb->n_roots] = noexec;
    snprintf(sb->roots[sb->n_roots++], PATH_MAX, "%s", real);
    return 0;
}

/* The watchdog: holds a copy of the listener (so pending notifications stay
 * pending), waits for the lifeline pipe to close (supervisor exit or crash),
 * kills the agent's cgroup and only then exits. Only raw syscalls after fork. */
static int start_watchdog(pl_sandbox *sb, pl_err *err) {
    int lp[2];
    if (pipe2(lp, O_CLOEXEC) < 0) return pl_fail(err, PL_ERR_IO, "sandbox: pipe: %s", strerror(errno));
    pid_t w = fork();
    if (w < 0) {
        close(lp[0]);
        close(lp[1]);
        return pl_fail(err, PL_ERR_IO, "sandbox: fork (watchdog): %s", strerror(errno));
    }
    if (w == 0) {
        /* Move the three fds we keep to 0..2 (others closed) and wait. */
        int keep[3] = {lp[0], sb->listener, sb->cg_kill_fd >= 0 ? sb->cg_kill_fd : sb->cg_freeze_fd};
        for (int i = 0; i < 3; i++) {
            int nfd = (int)fcntl(keep[i], F_DUPFD, 1000 + i);
            if (nfd < 0) _exit(1);
            keep[i] = nfd;
        }
        for (int i = 0; i < 3; i++)
            if (dup2(keep[i], i) != i) _exit(1);
        syscall(__NR_close_range, 3, ~0U, 0);
        signal(SIGINT, SIG_IGN);
        signal(SIGQUIT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        char b;
        for (;;) {
            ssize_t r = read(0, &b, 1);
            if (r == 0 || (r < 0 && errno != EINTR)) break;
        }
        /* cgroup.kill, or cgroup.freeze when the kernel lacks it: either way
         * nothing of the agent runs once the listener is gone. */
        while (pwrite(2, "1", 1, 0) < 0 && errno == EINTR) {
        }
        _exit(0);
    }
    close(lp[0]);
    sb->watchdog = w;
    sb->watchdog_fd = lp[1];
    return 0;
}

int pl_sandbox_spawn(const pl_sandbox_opts *o, char *const argv[], pl_sandbox **out, pl_err *err) {
    *out = NULL;
    if (!o || (!o->child_fn && (!argv || !argv[0]))) return pl_fail(err, PL_ERR_ARG, "sandbox: no command to run");
    pl_sandbox *sb = calloc(1, sizeof *sb);
    if (!sb) return pl_fail(err, PL_ERR_NOMEM, "sandbox: out of memory");
    sb->listener = sb->cg_freeze_fd = sb->cg_kill_fd = sb->watchdog_fd = -1;
    sb->pid = sb->watchdog = -1;
    uid_t euid = geteuid();
    gid_t egid = getegid();
    if (euid == 0) {
        sb->uid = o->uid ? o->uid : 65534;
        sb->gid = o->gid ? o->gid : 65534;
        sb->drop_creds = 1;
    } else {
        sb->uid = euid;
        sb->gid = egid;
    }
    int rc, procs_fd = -1, rs = -1, sv[2] = {-1, -1};
    struct sock_fprog prog = {0};
    char cwd[PATH_MAX];
    const char *ws = o->workspace;
    if (!ws) ws = getcwd(cwd, sizeof cwd);
    if (!ws) {
        rc = pl_fail(err, PL_ERR_IO, "sandbox: getcwd: %s", strerror(errno));
        goto fail;
    }
    int nx = o->noexec_workspace ? 1 : 0;
    if ((rc = add_root(sb, ws, 1, nx, err)) < 0) goto fail;
    if ((rc = add_root(sb, "/tmp", 0, 1, err)) < 0) goto fail;
    if ((rc = add_root(sb, "/var/tmp", 0, 1, err)) < 0) goto fail;
    if ((rc = add_root(sb, "/dev/shm", 0, 1, err)) < 0) goto fail;
    for (int i = 0; o->extra_write && o->extra_write[i]; i++)
        if ((rc = add_root(sb, o->extra_write[i], 1, nx, err)) < 0) goto fail;
    sb->mount_ns = euid == 0;
    if ((rc = build_filter(&prog, err)) < 0) goto fail;
    if ((rc = build_landlock(sb, &rs, err)) < 0) goto fail;
    if ((rc = setup_cgroup(sb, &procs_fd, err)) < 0) goto fail;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        rc = pl_fail(err, PL_ERR_IO, "sandbox: socketpair: %s", strerror(errno));
        goto fail;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        rc = pl_fail(err, PL_ERR_IO, "sandbox: fork: %s", strerror(errno));
        goto fail;
    }
    if (pid == 0) {
        close(sv[0]);
        child_main(sb, o, argv, sv[1], procs_fd, rs, &prog, parent, euid, egid);
    }
    sb->pid = pid;
    close(sv[1]);
    sv[1] = -1;
    char buf[512];
    ssize_t n;
    do n = read(sv[0], buf, sizeof buf - 1);
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)(1 + sizeof(int)) && buf[0] == 'L') {
        int lfd;
        memcpy(&lfd, buf + 1, sizeof lfd);
        int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pfd >= 0) {
            sb->listener = (int)syscall(SYS_pidfd_getfd, pfd, lfd, 0);
            close(pfd);
        }
        /* The watchdog must hold its copy of the listener BEFORE the agent
         * is released ('K'): if this process died in between, the agent's
         * governed syscalls would fail with ENOSYS while it kept running. */
        if (sb->listener >= 0 && start_watchdog(sb, err) < 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            sb->pid = -1;
            rc = PL_ERR_IO;
            goto fail; /* err names the failed step; pl_sandbox_free closes the listener */
        }
        if (sb->listener >= 0 && write(sv[0], "K", 1) != 1) {
            close(sb->listener);
            sb->listener = -1;
        }
        if (sb->listener < 0) snprintf(buf, sizeof buf, "taking the listener: %s", strerror(errno));
        n = sb->listener < 0 ? (ssize_t)strlen(buf) : n;
    }
    if (sb->listener < 0) {
        buf[n > 0 ? n : 0] = 0;
        rc = pl_fail(err, PL_ERR_UNSUPPORTED, "sandbox: agent setup failed, refusing to run it ungoverned: %s",
                     n > 0 ? buf : "the setup child died");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        sb->pid = -1;
        goto fail;
    }
    close(sv[0]);
    sv[0] = -1;
    close(procs_fd);
    close(rs);
    free(prog.filter);
    *out = sb;
    return 0;
fail:
    if (sv[0] >= 0) close(sv[0]);
    if (sv[1] >= 0) close(sv[1]);
    if (procs_fd >= 0) close(procs_fd);
    if (rs >= 0) close(rs);
    free(prog.filter);
    pl_sandbox_free(sb);
    return rc;
}

void pl_sandbox_free(pl_sandbox *sb) {
    if (!sb) return;
    if (sb->cgroup[0]) {
        if (sb->cg_freeze_fd >= 0) pl_sandbox_freeze(sb, 0);
        pl_sandbox_kill(sb);
        for (int i = 0; i < 200 && rmdir(sb->cgroup) < 0 && errno == EBUSY; i++) usleep(5000);
    }
    if (sb->listener >= 0) close(sb->listener);
    if (sb->watchdog_fd >= 0) close(sb->watchdog_fd);
    if (sb->watchdog > 0)
        while (waitpid(sb->watchdog, NULL, 0) < 0 && errno == EINTR) {
        }
    if (sb->cg_freeze_fd >= 0) close(sb->cg_freeze_fd);
    if (sb->cg_kill_fd >= 0) close(sb->cg_kill_fd);
    free(sb);
}
