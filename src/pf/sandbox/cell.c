/*
 * pf-cell: the supervisor of a cell, one long-lived bubblewrap sandbox that runs the
 * confined steps of many builds in turn, so a step costs a fork and an exec instead of
 * a bubblewrap start (pf.sandbox.cells).
 *
 *   pf-cell FD
 *
 * It runs as pid 1 of the cell's pid namespace (bwrap --as-pid-1), talking to pf over
 * FD, one end of a SOCK_SEQPACKET socketpair (no address anywhere). Requests:
 *
 *   "R" cwd\0 argc\0 argv...\0 envc\0 env...\0 7 limits\0   with SCM_RIGHTS: stdin,
 *       stdout and stderr of the step. Limits: cpu as fsize nproc nofile core msgqueue,
 *       each a decimal or "-" for none.
 *   "K" kill the running step (and everything else in the namespace).
 *
 * Replies: "ready" once; per step "exit CODE IPC" or "signal N IPC", IPC being how many
 * SysV IPC objects exist in the cell afterwards (pf retires a cell that has any). Before
 * it replies, every other process in the namespace is killed and reaped and /proc shows
 * nobody but pid 1. Anything unexpected ends it (it is pid 1: the namespace ends with
 * it) and pf sees the socket close.
 *
 * Why the jobs cannot touch it: a pid namespace's init receives from inside only the
 * signals it has a handler for (it has none, SIGKILL included), and it is not dumpable,
 * so a job of the same uid cannot ptrace it or open /proc/1/mem or /proc/1/fd.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "pf-cell knows the system call ABI of x86_64 and aarch64 only"
#endif

#define MAX_MESSAGE (256 * 1024)
#define MAX_FIELDS 16384
#define SWEEP_ROUNDS 1000

extern char **environ;

static int sock = -1;
static char message[MAX_MESSAGE + 1];

static const int LIMITS[] = {RLIMIT_CPU,    RLIMIT_AS,   RLIMIT_FSIZE,   RLIMIT_NPROC,
                             RLIMIT_NOFILE, RLIMIT_CORE, RLIMIT_MSGQUEUE};
#define NLIMITS (sizeof LIMITS / sizeof LIMITS[0])

static void die(const char *what, const char *detail) {
  fprintf(stderr, "pf-cell: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  /* pid 1 exiting ends the namespace: every job goes with it. */
  exit(1);
}

static void say(const char *format, ...) {
  char text[128];
  va_list args;
  va_start(args, format);
  int length = vsnprintf(text, sizeof text, format, args);
  va_end(args);
  if (send(sock, text, (size_t)length, MSG_NOSIGNAL) != length) die("send", strerror(errno));
}

/* One message and up to three descriptors; 0 at end of file. Truncation is fatal. */
static ssize_t receive(int fds[3], int *nfds) {
  char control[CMSG_SPACE(3 * sizeof(int))];
  struct iovec iov = {message, MAX_MESSAGE};
  struct msghdr header = {.msg_iov = &iov, .msg_iovlen = 1};
  header.msg_control = control;
  header.msg_controllen = sizeof control;
  ssize_t n;
  do n = recvmsg(sock, &header, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) die("recvmsg", strerror(errno));
  *nfds = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&header); c; c = CMSG_NXTHDR(&header, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (*nfds < 3) fds[(*nfds)++] = fd;
      else close(fd);
    }
  }
  if (header.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) die("a request was too large", NULL);
  message[n] = '\0';
  return n;
}

/* How many processes other than this one the namespace's /proc lists; -1 on error. */
static int others(void) {
  DIR *proc = opendir("/proc");
  if (!proc) return -1;
  int count = 0;
  struct dirent *entry;
  while ((entry = readdir(proc)))
    if (entry->d_name[0] >= '1' && entry->d_name[0] <= '9' && strcmp(entry->d_name, "1") != 0)
      count++;
  closedir(proc);
  return count;
}

/* Kill everything but this process and reap it all; 1 when /proc then lists only pid 1.
 * Each round kills again before it waits, so a child forked while the last signal was
 * on its way is killed by the next one. */
static int sweep(void) {
  for (int round = 0; round < SWEEP_ROUNDS; round++) {
    kill(-1, SIGKILL);
    pid_t reaped = waitpid(-1, NULL, __WALL);
    if (reaped < 0 && errno == ECHILD && others() == 0) return 1;
    if (reaped < 0 && errno != ECHILD && errno != EINTR) return 0;
  }
  return 0;
}

/* SysV IPC objects that exist in the cell's IPC namespace: state a later build could
 * find, which pf does not reuse a cell with. */
static int ipc_objects(void) {
  static const char *const TABLES[] = {"/proc/sysvipc/shm", "/proc/sysvipc/msg",
                                       "/proc/sysvipc/sem"};
  int count = 0;
  for (size_t i = 0; i < sizeof TABLES / sizeof TABLES[0]; i++) {
    FILE *table = fopen(TABLES[i], "re");
    if (!table) return 1000000; /* cannot tell: as bad as dirty */
    int lines = 0, c, last = '\n';
    while ((c = fgetc(table)) != EOF) {
      if (c == '\n') lines++;
      last = c;
    }
    if (last != '\n') lines++;
    fclose(table);
    count += lines > 0 ? lines - 1 : 0; /* the first line is the header */
  }
  return count;
}

/* The kernel's key rings are kept per user namespace, not per process: one build could
 * leave a key that a later build in the same cell reads. Jobs get no key system calls
 * at all (as Docker's default profile), and no other ABI's system calls, whose numbers
 * this filter does not know. */
static int deny_keyrings(void) {
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 3, 0), /* x32 */
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_add_key, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_request_key, 1, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_keyctl, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog program = {sizeof filter / sizeof filter[0], filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) return -1;
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program);
}

static int number(const char *text, unsigned long long *value) {
  char *end = NULL;
  if (*text < '0' || *text > '9') return -1;
  errno = 0;
  *value = strtoull(text, &end, 10);
  return (errno || *end) ? -1 : 0;
}

struct job {
  char *cwd;
  char **argv;
  char **env;
  const char *limits[NLIMITS];
};

static char *fields[MAX_FIELDS + 2];

/* Split a run request into its fields; -1 when it is malformed. */
static int parse(char *body, size_t length, struct job *job) {
  size_t count = 0;
  char *end = body + length;
  if (length == 0 || end[-1] != '\0') return -1;
  for (char *at = body; at < end; at += strlen(at) + 1) {
    if (count == MAX_FIELDS) return -1;
    fields[count++] = at;
  }
  unsigned long long argc = 0, envc = 0;
  if (count < 3 || number(fields[1], &argc) || argc == 0 || argc > count - 2) return -1;
  size_t at = 2 + argc;
  if (at >= count || number(fields[at], &envc) || envc > count - at - 1) return -1;
  size_t limits = at + 1 + envc;
  if (limits + NLIMITS != count) return -1;
  /* argv and env become NULL-terminated in place: each list's terminator overwrites
   * the field after it, whose value was read already. */
  job->cwd = fields[0];
  job->argv = fields + 2;
  job->env = fields + at + 1;
  for (size_t i = 0; i < NLIMITS; i++) job->limits[i] = fields[limits + i];
  fields[at] = NULL;
  fields[limits] = NULL;
  return 0;
}

static void child(const struct job *job, const int fds[3]) {
  setsid();
  for (size_t i = 0; i < NLIMITS; i++) {
    unsigned long long value = 0;
    if (strcmp(job->limits[i], "-") == 0) continue;
    if (number(job->limits[i], &value)) _exit(126);
    struct rlimit limit = {(rlim_t)value, (rlim_t)value};
    if (setrlimit(LIMITS[i], &limit)) {
      dprintf(fds[2], "pf-cell: limit %zu: %s\n", i, strerror(errno));
      _exit(126);
    }
  }
  for (int i = 0; i < 3; i++)
    if (dup2(fds[i], i) < 0) _exit(126);
  if (syscall(SYS_close_range, 3, ~0U, 0)) _exit(126);
  if (deny_keyrings()) {
    fprintf(stderr, "pf-cell: seccomp: %s\n", strerror(errno));
    _exit(126);
  }
  if (chdir(job->cwd)) {
    fprintf(stderr, "pf-cell: cannot enter %s: %s\n", job->cwd, strerror(errno));
    _exit(126);
  }
  /* execvp searches the PATH of environ, which is the job's own from here on. */
  environ = job->env;
  execvp(job->argv[0], job->argv);
  fprintf(stderr, "pf-cell: cannot run %s: %s\n", job->argv[0], strerror(errno));
  _exit(127);
}

static void run(size_t length, const int fds[3]) {
  struct job job;
  if (parse(message + 1, length - 1, &job)) die("a malformed request", NULL);
  pid_t pid = fork();
  if (pid == 0) child(&job, fds);
  for (int i = 0; i < 3; i++) close(fds[i]);
  if (pid < 0) die("fork", strerror(errno));
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) die("pidfd_open", strerror(errno));
  struct pollfd waits[2] = {{.fd = sock, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
  for (;;) {
    if (poll(waits, 2, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll", strerror(errno));
    }
    if (waits[1].revents) break;
    if (waits[0].revents) {
      int extra[3], nextra = 0;
      ssize_t n = receive(extra, &nextra);
      for (int i = 0; i < nextra; i++) close(extra[i]);
      if (n == 0) die("pf closed the connection", NULL);
      if (message[0] != 'K' || nextra) die("an unexpected request during a step", NULL);
      kill(-1, SIGKILL);
    }
  }
  close(pidfd);
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) die("waitpid", strerror(errno));
  if (!sweep()) die("processes survived the sweep", NULL);
  if (WIFSIGNALED(status)) say("signal %d %d", WTERMSIG(status), ipc_objects());
  else say("exit %d %d", WEXITSTATUS(status), ipc_objects());
}

int main(int argc, char **argv) {
  unsigned long long fd = 0;
  if (argc != 2 || number(argv[1], &fd) || fd < 3 || fd > 1024) die("usage", "pf-cell FD");
  sock = (int)fd;
  if (fcntl(sock, F_SETFD, FD_CLOEXEC)) die("fcntl", strerror(errno));
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) die("prctl", strerror(errno));
  if (getpid() != 1) die("must run as pid 1 of a pid namespace", NULL);
  if (others() != 0) die("the namespace is not empty", NULL);
  say("ready");
  for (;;) {
    int fds[3], nfds = 0;
    ssize_t n = receive(fds, &nfds);
    if (n == 0) return 0;
    if (message[0] == 'K' && nfds == 0) continue; /* the step it meant ended first */
    if (message[0] != 'R' || nfds != 3) die("an unexpected request", NULL);
    run((size_t)n, fds);
  }
}
