/* engine/remote: engine.h for a model whose engine runs in a child process (ADR 0005). The
 * child is this same binary as `shimmy __engine 3 [CPU_VARIANT]` (child.c; the first warm one a
 * fork of the server before it has threads, which runs the same), joined by a socketpair on fd 3
 * carrying ipc.h frames, its stderr on a pipe that is copied to ours (the last lines are kept
 * for crash reports).
 *
 * Reading the channel (leader and followers): the threads that wait for the child's news (a
 * job's events, a submit's or a call's answer) read the channel themselves, one at a time (the
 * leader), and hand every frame to its call or job; the others wait on their condition
 * variables, and a leader that stops reading passes the channel to one of them that still
 * waits. A streamed token thus wakes one thread of the server, the one that writes it to the
 * client, as in a server without engine processes. Each model's reader thread reads when no
 * one waits: while the model is idle (it sees the child die at once), or when nobody has read
 * for LIM_IPC_LEAD_LAPSE_MS while jobs run (their threads are all busy writing); a waiter that
 * finds it reading takes the channel over (the kick eventfd). Only the reader thread handles the
 * end of the channel.
 *
 * When the child dies (llama.cpp aborted, a signal, an exit), the reader thread fails every
 * call, ends every job the child had started (put on a slot) with ERR_ENGINE_CRASHED and the
 * cause, and resubmits once, to a fresh child, the jobs that were still queued there. A model
 * whose child dies three times in a row before any job finished is failed: every call answers
 * why, until the registry unloads it (rescan).
 *
 * Locking: mu guards the state, the job and call tables, each job's fields and the reading
 * roles (the leader alone uses rd and in, without mu); wmu serialises writes to the channel;
 * spawn_mu makes one spawn at a time. Order: spawn_mu before mu; wmu is taken alone. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/limits.h"
#include "core/log.h"
#include "engine/child.h"
#include "engine/ipc.h"
#include "engine/llama_chat.h"
#include "engine/ops.h"

extern char **environ;

/* R_DYING: the channel ended and the reader thread is reaping the child and failing its jobs;
 * a spawn waits for it to finish (it would reap, count and fail what belongs to the old child). */
enum { R_DEAD, R_ALIVE, R_FAILED, R_STOPPING, R_DYING };
#define CRASHES_TO_FAIL LIM_LOAD_CRASHES

typedef struct rmodel rmodel;

typedef struct rjob {
    engine_hdr hdr; /* first: engine.c dispatches on it */
    rmodel *m;
    uint64_t id;
    int refs;          /* the submitter and the model's table; under m->mu */
    pthread_cond_t cv; /* news, under m->mu */
    buf pending;       /* events of EVENTS frames not yet waited for */
    gen_status st;     /* the latest status */
    bool replied;      /* the child answered the submit (or died first) */
    shimmy_err submit_rc;
    char err[512], param[96];
    bool delivered; /* the waiter got events: a crash now fails it */
    bool started;   /* the child put it on a slot (or it produced something): a crash
                     * now fails it; only a job still queued is resubmitted */
    bool retried;   /* resubmitted once already */
    bool in_table;
    buf request; /* the SUBMIT payload, kept for the retry */
    struct rjob *next;
} rjob;

typedef struct rcall {
    uint64_t id;
    bool done;
    buf reply;        /* the REPLY payload */
    shimmy_err crash; /* SHIMMY_OK, or ERR_ENGINE_CRASHED when the child died first */
    pthread_cond_t cv;
    struct rcall *next;
} rcall;

/* A thread waiting for news, linked in rmodel.waiters while it sleeps on cv. */
typedef struct waiter {
    pthread_cond_t *cv;
    bool (*ready)(const void *arg); /* its news came (mu held) */
    const void *arg;
    struct waiter *next;
} waiter;

struct rmodel {
    engine_hdr hdr; /* first */
    char name[256];
    buf load_msg; /* the IPC_LOAD payload, for each spawn */
    pthread_mutex_t mu, wmu, spawn_mu;
    pthread_cond_t reader_cv; /* readers, chan_gone or R_DYING change; under mu */
    int state;
    int fd;        /* the channel, -1 when none */
    ipc_reader rd; /* its reading end: the handshake's, then the leader's */
    buf in;        /* the leader's frame payload */
    /* the reading roles, under mu (see the top): */
    bool leading;        /* a thread reads rd */
    bool reader_leads;   /* that thread is the reader thread, which reads until kicked */
    bool kicked;         /* a waiter wrote kick_fd and waits for the reader thread to stop */
    bool chan_gone;      /* the channel ended (or there is none): nobody reads it */
    int kick_fd;         /* eventfd */
    int64_t released_ns; /* when the last leader stopped (monotonic) */
    waiter *waiters;
    pid_t pid;
    int readers; /* reader threads running: the one that handles a death may start the next */
    pthread_t log_thread;
    bool has_log_thread;
    rjob *jobs;
    rcall *calls;
    uint64_t next_id;
    int crashes, in_a_row;
    bool finished_one; /* a job finished since the last spawn */
    char cause[384];   /* the last crash */
    char lastlog[LIM_ENGINE_LOG_LINES][256];
    int n_log;              /* lines written into lastlog so far (ring) */
    engine_model_info info; /* the child's last answer to an info call (under mu) */
    int64_t info_ns;        /* when it came (monotonic), 0 = never */
    void (*progress)(void *ctx, float fraction); /* engine_options.progress, for the first load
                                                  * only: its context lives as long as that call */
    void *progress_ctx;
};

/* ---- the child's stderr ---- */

static void keep_line(rmodel *m, const char *line, size_t n) {
    pthread_mutex_lock(&m->mu);
    snprintf(m->lastlog[m->n_log % LIM_ENGINE_LOG_LINES], sizeof m->lastlog[0], "%.*s", (int)n,
             line);
    m->n_log++;
    pthread_mutex_unlock(&m->mu);
}

typedef struct log_arg {
    rmodel *m;
    int fd;
} log_arg;

/* Copies the child's stderr to ours line by line, keeping the last lines. Ends at its EOF. */
static void *log_main(void *p) {
    log_arg a = *(log_arg *)p;
    free(p);
    char line[1024];
    size_t n = 0;
    char c;
    for (;;) {
        ssize_t r = read(a.fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (n < sizeof line - 1)
            line[n++] = c;
        if (c != '\n')
            continue;
        fwrite(line, 1, n, stderr);
        keep_line(a.m, line, n - 1);
        n = 0;
    }
    if (n > 0) {
        fwrite(line, 1, n, stderr);
        fputc('\n', stderr);
        keep_line(a.m, line, n);
    }
    close(a.fd);
    return NULL;
}

/* The child's last log line that is not empty (mu held). */
static const char *last_words(const rmodel *m) {
    for (int k = 1; k <= LIM_ENGINE_LOG_LINES && k <= m->n_log; k++) {
        const char *l = m->lastlog[(m->n_log - k) % LIM_ENGINE_LOG_LINES];
        if (l[0] != '\0')
            return l;
    }
    return "";
}

/* Writes a frame to the current child; the channel (m->fd) changes only under wmu, so a frame
 * never goes to a descriptor that was closed and reused. ERR_IO when no child listens. */
static shimmy_err send_frame(rmodel *m, ipc_type type, uint64_t id, const void *p, size_t n) {
    pthread_mutex_lock(&m->wmu);
    shimmy_err rc = m->fd < 0 ? ERR_IO : ipc_send(m->fd, NULL, type, id, p, n);
    pthread_mutex_unlock(&m->wmu);
    return rc;
}

static void set_channel(rmodel *m, int fd) {
    pthread_mutex_lock(&m->wmu);
    m->fd = fd;
    pthread_mutex_unlock(&m->wmu);
}

/* ---- spawning ---- */

static void put_options(buf *b, const engine_options *o) {
    ipc_put_str(b, o->path);
    ipc_put_str(b, o->name);
    ipc_put_u32(b, (uint32_t)o->n_parallel);
    ipc_put_u32(b, (uint32_t)o->n_ctx);
    ipc_put_u32(b, (uint32_t)o->n_threads);
    ipc_put_str(b, o->template_override);
    ipc_put_str(b, o->template_text);
    ipc_put_u32(b, (uint32_t)o->queue_max);
    ipc_put_str(b, o->lora_path);
    uint32_t scale;
    memcpy(&scale, &o->lora_scale, sizeof scale);
    ipc_put_u32(b, scale);
    ipc_put_u32(b, (uint32_t)o->gpu_backend);
    ipc_put_u32(b, (uint32_t)o->gpu_layers_mode);
    ipc_put_u32(b, (uint32_t)o->gpu_layers);
    ipc_put_u32(b, o->single_gpu);
    ipc_put_u32(b, (uint32_t)o->main_gpu);
    ipc_put_bytes(b, o->tensor_split, sizeof o->tensor_split);
    ipc_put_str(b, o->rpc_servers);
    ipc_put_u32(b, (uint32_t)o->cache_type_k);
    ipc_put_u32(b, (uint32_t)o->cache_type_v);
    ipc_put_u32(b, (uint32_t)o->flash_attn);
    ipc_put_u64(b, (uint64_t)o->cache_ram_mib);
    ipc_put_u32(b, (uint32_t)o->spec_type);
    ipc_put_str(b, o->draft_path);
    ipc_put_u32(b, (uint32_t)o->draft_max);
    ipc_put_u32(b, (uint32_t)o->draft_min);
    uint32_t p_min;
    memcpy(&p_min, &o->draft_p_min, sizeof p_min);
    ipc_put_u32(b, p_min);
    ipc_put_u32(b, (uint32_t)o->ngram_n);
    ipc_put_u32(b, (uint32_t)o->ngram_m);
    ipc_put_str(b, o->mmproj);
    ipc_put_str(b, engine_media_marker()); /* the child's projector must split on ours */
}

/* How the child ended, for the crash report (reaps it). */
static void reap(pid_t pid, char *out, size_t len) {
    int status = 0;
    pid_t r;
    do
        r = waitpid(pid, &status, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        snprintf(out, len, "ended (status unknown)");
    else if (WIFSIGNALED(status))
        snprintf(out, len, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(out, len, "exited with status %d", WEXITSTATUS(status));
}

/* Whether this process runs one thread: only then is a fork without exec safe (the copy of a
 * multi-threaded process may find a lock held by a thread that does not exist in it). */
static bool single_threaded(void) {
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return false;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n == 1;
}

/* The copy's command line, which ps shows, becomes what an exec'd engine process has (`shimmy
 * __engine 3`) instead of serve's: written over the same memory (argv's, where glibc's
 * program_invocation_name points), the rest cleared. Left as it is when it cannot be read. */
static void retitle(void) {
    static const char title[] = "shimmy\0__engine\0"
                                "3";
    char chunk[4096];
    size_t n = 0;
    ssize_t r;
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    while ((r = read(fd, chunk, sizeof chunk)) > 0)
        n += (size_t)r;
    close(fd);
    if (n < sizeof title || program_invocation_name == NULL)
        return;
    memset(program_invocation_name, 0, n);
    memcpy(program_invocation_name, title, sizeof title);
}

/* The forked engine process (start_process): the channel onto fd 3, the pipe onto stderr, then
 * the engine. Never returns. */
static void forked_child(int chan, int errw) {
    retitle();
    int c = fcntl(chan, F_DUPFD_CLOEXEC, 10), e = fcntl(errw, F_DUPFD_CLOEXEC, 10);
    if (c < 0 || e < 0 || dup2(c, 3) != 3 || dup2(e, 2) != 2)
        _exit(127);
    exit(engine_child_main(3, NULL)); /* as `shimmy __engine 3` returns from main */
}

/* The engine process as a copy of this one (fork, no exec): its libraries are linked already and
 * nothing of llama.cpp or ggml is set up in this process yet, so the copy starts where an
 * exec'd one would be after its dynamic linking. See start_process. */
static int fork_engine(pid_t *pid, int chan, int errw) {
    fflush(NULL); /* nothing buffered here is written twice */
    pid_t p = fork();
    if (p == 0)
        forked_child(chan, errw);
    if (p < 0)
        return errno;
    *pid = p;
    return 0;
}

static int spawn_engine(pid_t *pid, int chan, int errw, const char *cpu_variant) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, chan, 3);
    posix_spawn_file_actions_adddup2(&fa, errw, 2);
    char variant[32];
    snprintf(variant, sizeof variant, "%s", cpu_variant);
    char *argv[] = {"shimmy", "__engine", "3", variant[0] ? variant : NULL, NULL};
    int rc = posix_spawn(pid, "/proc/self/exe", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/* Starts an engine process with the channel on its fd 3 and its stderr on a pipe: *pid, the
 * server's end of the channel and the read end of the pipe (both close-on-exec). cpu_variant:
 * the CPU module it loads without scoring the others ("" = it scores them). by_fork: a copy of
 * this process when it has one thread (the warm process serve starts before anything else:
 * it skips the exec and dynamic linking, docs/adr/0005), else (and otherwise) `shimmy __engine
 * 3 [VARIANT]` by posix_spawn of /proc/self/exe. */
static shimmy_err start_process(pid_t *pid, int *chan, int *errpipe, const char *cpu_variant,
                                bool by_fork, char *err, size_t errlen) {
    int sv[2], ep[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return err_set(err, errlen, ERR_INTERNAL, "socketpair: %s", strerror(errno));
    if (pipe2(ep, O_CLOEXEC) != 0) {
        close(sv[0]);
        close(sv[1]);
        return err_set(err, errlen, ERR_INTERNAL, "pipe: %s", strerror(errno));
    }
    int rc = by_fork && single_threaded() ? fork_engine(pid, sv[1], ep[1])
                                          : spawn_engine(pid, sv[1], ep[1], cpu_variant);
    close(sv[1]);
    close(ep[1]);
    if (rc != 0) {
        close(sv[0]);
        close(ep[0]);
        return err_set(err, errlen, ERR_INTERNAL, "cannot start the engine process: %s",
                       strerror(rc));
    }
    *chan = sv[0];
    *errpipe = ep[0];
    return SHIMMY_OK;
}

/* ---- the warm engine process (engine_prestart) ---- */

/* One engine process started ahead of need: exec, dynamic linking and the backend modules are
 * done by the time a model load takes it (it waits for IPC_LOAD), and each take starts the next
 * (warm_refill, a while later).
 * Its stderr is not read until a model takes it (it writes nothing before IPC_LOAD unless its
 * start-up failed, which IPC_LOADED then reports). */
static struct {
    pthread_mutex_t mu;
    bool on;         /* engine_prestart was called and engine_prestart_stop not yet */
    bool hold;       /* until engine_prestart_release: a take does not start the next one yet */
    bool refill_due; /* warm_refill's thread will start the next one */
    pid_t pid;       /* 0 = none ready */
    int chan, errfd;
    char cpu[32]; /* the CPU variant the first engine process chose (remote_start_check), passed
                   * to the later ones; "" = not known yet */
} W = {PTHREAD_MUTEX_INITIALIZER, false, false, false, 0, -1, -1, ""};

/* by_fork: engine_prestart's first start, before this process has threads (start_process). */
static void warm_start_locked(bool by_fork) {
    char err[256];
    if (W.on && !W.hold && W.pid == 0 &&
        start_process(&W.pid, &W.chan, &W.errfd, W.cpu, by_fork, err, sizeof err) != SHIMMY_OK) {
        W.pid = 0;
        log_warn("engine processes: %s (each load starts its own)", err);
    }
}

/* Takes the warm process when there is one that is still alive (one that died waiting, killed
 * by someone, is reaped and not blamed on the model that would have taken it). */
static bool warm_take(pid_t *pid, int *chan, int *errpipe) {
    pthread_mutex_lock(&W.mu);
    bool got = false;
    if (W.pid > 0 && waitpid(W.pid, NULL, WNOHANG) == 0) {
        *pid = W.pid;
        *chan = W.chan;
        *errpipe = W.errfd;
        got = true;
    } else if (W.pid > 0) { /* it is gone (and now reaped) */
        close(W.chan);
        close(W.errfd);
    }
    W.pid = 0;
    pthread_mutex_unlock(&W.mu);
    return got;
}

static void *refill_main(void *unused) {
    (void)unused;
    struct timespec ts = {LIM_WARM_REFILL_DELAY_MS / 1000,
                          (long)(LIM_WARM_REFILL_DELAY_MS % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&W.mu);
    W.refill_due = false;
    warm_start_locked(false);
    pthread_mutex_unlock(&W.mu);
    return NULL;
}

/* Starts the next warm process LIM_WARM_REFILL_DELAY_MS from now (on a thread of its own), not
 * while the requests that follow a load or the server's start run. */
static void warm_refill(void) {
    pthread_mutex_lock(&W.mu);
    bool due = W.on && !W.hold && W.pid == 0 && !W.refill_due;
    W.refill_due = W.refill_due || due;
    pthread_mutex_unlock(&W.mu);
    pthread_t t;
    pthread_attr_t a;
    if (!due || pthread_attr_init(&a) != 0)
        return;
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    bool started = pthread_create(&t, &a, refill_main, NULL) == 0;
    pthread_attr_destroy(&a);
    if (!started) { /* now, then */
        pthread_mutex_lock(&W.mu);
        W.refill_due = false;
        warm_start_locked(false);
        pthread_mutex_unlock(&W.mu);
    }
}

void engine_prestart(void) {
    pthread_mutex_lock(&W.mu);
    W.on = true;
    warm_start_locked(true);
    W.hold = true;
    pthread_mutex_unlock(&W.mu);
}

void engine_prestart_release(void) {
    pthread_mutex_lock(&W.mu);
    W.hold = false;
    pthread_mutex_unlock(&W.mu);
    warm_refill();
}

void engine_prestart_stop(void) {
    pthread_mutex_lock(&W.mu);
    W.on = false;
    pid_t pid = W.pid;
    if (pid > 0) {
        close(W.chan); /* it sees the end of its channel and exits */
        close(W.errfd);
    }
    W.pid = 0;
    pthread_mutex_unlock(&W.mu);
    if (pid > 0) {
        char how[128];
        int64_t deadline = clock_mono_ns() + 2000000000LL;
        while (waitpid(pid, NULL, WNOHANG) == 0) {
            if (clock_mono_ns() > deadline) {
                kill(pid, SIGKILL);
                reap(pid, how, sizeof how);
                break;
            }
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
    }
}

/* The model's engine process: the warm one when there is one, else a new one. */
static shimmy_err start_child(rmodel *m, int *chan, int *errpipe, char *err, size_t errlen) {
    if (warm_take(&m->pid, chan, errpipe))
        return SHIMMY_OK;
    char cpu[sizeof W.cpu];
    pthread_mutex_lock(&W.mu);
    snprintf(cpu, sizeof cpu, "%s", W.cpu);
    pthread_mutex_unlock(&W.mu);
    return start_process(&m->pid, chan, errpipe, cpu, false, err, errlen);
}

/* ---- engine_start's check, in the warm engine process ---- */

/* The choices engine_start checks, as child.c's on_check reads them. */
static void put_check(buf *b, const engine_options *o) {
    ipc_put_u32(b, (uint32_t)o->gpu_backend);
    ipc_put_str(b, o->rpc_servers);
    ipc_put_u32(b, o->single_gpu);
    ipc_put_u32(b, (uint32_t)o->main_gpu);
    ipc_put_u32(b, (uint32_t)o->n_overrides);
    for (int i = 0; i < o->n_overrides; i++) {
        ipc_put_str(b, o->overrides[i].model);
        ipc_put_u32(b, o->overrides[i].set_backend);
        ipc_put_u32(b, (uint32_t)o->overrides[i].backend);
    }
}

/* Copies what the warm process has written to its stderr so far (its modules' messages, which
 * the server printed itself when it loaded them) to ours; keeps the last line that is not empty
 * in last. The pipe is left as it was. */
static void copy_early_log(int fd, char *last, size_t len) {
    char chunk[4096];
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
        return;
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0) {
        fwrite(chunk, 1, (size_t)n, stderr);
        size_t end = (size_t)n;
        while (end > 0 && (chunk[end - 1] == '\n' || chunk[end - 1] == '\r'))
            end--;
        size_t start = end;
        while (start > 0 && chunk[start - 1] != '\n')
            start--;
        if (end > start)
            snprintf(last, len, "%.*s", (int)(end - start), chunk + start);
    }
    fcntl(fd, F_SETFL, fl);
}

/* The answer to IPC_CHECK, or how the process ended when it died first (W.mu held). */
static shimmy_err check_answer(shimmy_err io, const buf *in, char *note, size_t notelen, char *err,
                               size_t errlen) {
    char last[256] = "", how[128];
    copy_early_log(W.errfd, last, sizeof last);
    if (io != SHIMMY_OK) {
        close(W.chan);
        close(W.errfd);
        kill(W.pid, SIGKILL);
        reap(W.pid, how, sizeof how);
        W.pid = 0;
        if (io == ERR_TIMEOUT)
            return err_set(err, errlen, ERR_ENGINE_CRASHED,
                           "the engine process did not finish loading the backend modules within "
                           "%d s (a GPU driver that hangs?); it was killed: %s",
                           LIM_ENGINE_CHECK_S, last[0] ? last : "it wrote nothing");
        return err_set(err, errlen, ERR_ENGINE_CRASHED,
                       "the engine process %s while loading the backend modules: %s", how, last);
    }
    ipc_rd r;
    ipc_rd_init(&r, in);
    shimmy_err rc = (shimmy_err)ipc_get_u32(&r);
    const char *e = ipc_get_str(&r), *n = ipc_get_str(&r), *cpu = ipc_get_str(&r);
    if (r.bad)
        return err_set(err, errlen, ERR_INTERNAL, "the engine process answered the check badly");
    snprintf(note, notelen, "%s", n ? n : "");
    snprintf(W.cpu, sizeof W.cpu, "%s", cpu ? cpu : "");
    return rc == SHIMMY_OK ? rc : err_set(err, errlen, rc, "%s", e ? e : "");
}

bool remote_start_check(const engine_options *o, shimmy_err *rc, char *note, size_t notelen,
                        char *err, size_t errlen) {
    pthread_mutex_lock(&W.mu);
    if (W.pid <= 0) {
        pthread_mutex_unlock(&W.mu);
        return false;
    }
    /* static: the reader's buffer is large; the child sends nothing after IPC_CHECKED until it
     * gets IPC_LOAD, so no byte is left in it for the handshake's reader */
    static ipc_reader rd;
    buf b, in;
    ipc_hdr h;
    ipc_reader_init(&rd, W.chan, false);
    buf_init(&b, LIM_IPC_PAYLOAD_BYTES);
    buf_init(&in, LIM_IPC_PAYLOAD_BYTES);
    put_check(&b, o);
    shimmy_err io = ipc_send(W.chan, NULL, IPC_CHECK, 0, b.data, b.len);
    struct pollfd p = {.fd = W.chan, .events = POLLIN};
    int ready = 1;
    while (io == SHIMMY_OK && (ready = poll(&p, 1, LIM_ENGINE_CHECK_S * 1000)) < 0 &&
           errno == EINTR)
        ;
    if (io == SHIMMY_OK && ready == 0)
        io = ERR_TIMEOUT;
    if (io == SHIMMY_OK)
        io = ipc_recv(&rd, &h, &in);
    if (io == SHIMMY_OK && h.type != IPC_CHECKED)
        io = ERR_IO;
    *rc = check_answer(io, &in, note, notelen, err, errlen);
    pthread_mutex_unlock(&W.mu);
    buf_free(&b);
    buf_free(&in);
    return true;
}

static void start_log_thread(rmodel *m, int fd) {
    log_arg *a = malloc(sizeof *a);
    m->has_log_thread = false;
    if (a == NULL) {
        close(fd);
        return;
    }
    *a = (log_arg){m, fd};
    m->has_log_thread = pthread_create(&m->log_thread, NULL, log_main, a) == 0;
    if (!m->has_log_thread) {
        free(a);
        close(fd);
    }
}

static void stop_log_thread(rmodel *m) {
    if (m->has_log_thread)
        pthread_join(m->log_thread, NULL);
    m->has_log_thread = false;
}

/* Sends the options and waits for the load's answer (no reader runs yet). */
static shimmy_err handshake(rmodel *m, int fd, char *err, size_t errlen) {
    ipc_hdr h;
    buf in;
    buf_init(&in, LIM_IPC_PAYLOAD_BYTES);
    ipc_reader_init(&m->rd, fd, false);
    shimmy_err rc = ipc_send(fd, NULL, IPC_LOAD, 0, m->load_msg.data, m->load_msg.len);
    if (rc == SHIMMY_OK)
        rc = ipc_recv(&m->rd, &h, &in);
    while (rc == SHIMMY_OK && h.type == IPC_PROGRESS) {
        float f;
        if (m->progress != NULL && in.len == sizeof f) {
            memcpy(&f, in.data, sizeof f);
            m->progress(m->progress_ctx, f);
        }
        rc = ipc_recv(&m->rd, &h, &in);
    }
    if (rc == SHIMMY_OK && h.type == IPC_LOADED) {
        ipc_rd r;
        ipc_rd_init(&r, &in);
        rc = (shimmy_err)ipc_get_u32(&r);
        const char *msg = ipc_get_str(&r);
        if (rc != SHIMMY_OK)
            err_set(err, errlen, rc, "%s", msg ? msg : "the engine process could not load it");
    } else if (rc == SHIMMY_OK) {
        rc = ERR_IO;
    }
    buf_free(&in);
    return rc;
}

static void *reader_main(void *p);
static void pass_lead(rmodel *m);

/* rmodel.cause: the model's name, how the process ended (reap) and its last words, each cut so
 * that the whole fits the 384 bytes of cause (and of engine_model_info.last_crash): 46 + 96 + 64
 * + 170 < 384. */
#define CAUSE_FMT(when) "the engine process of model '%.96s' %.64s" when ": %.170s"

/* Fails a spawn: the child is gone or told to go; reports how it ended. */
static shimmy_err spawn_failed(rmodel *m, int fd, shimmy_err rc, char *err, size_t errlen) {
    char how[128];
    close(fd);
    kill(m->pid, SIGKILL);
    reap(m->pid, how, sizeof how);
    stop_log_thread(m);
    m->pid = 0;
    if (rc == ERR_IO) {
        pthread_mutex_lock(&m->mu);
        m->crashes++;
        m->in_a_row++;
        snprintf(m->cause, sizeof m->cause, CAUSE_FMT(" while loading"), m->name, how,
                 last_words(m));
        if (m->in_a_row >= CRASHES_TO_FAIL)
            m->state = R_FAILED;
        err_set(err, errlen, ERR_ENGINE_CRASHED, "%s", m->cause);
        pthread_mutex_unlock(&m->mu);
        return ERR_ENGINE_CRASHED;
    }
    return ERR_MODEL_LOAD; /* the child's own reason is in err */
}

/* Starts a child, loads the model in it and starts its reader. spawn_mu held. */
static shimmy_err spawn(rmodel *m, char *err, size_t errlen) {
    int fd = -1, efd = -1;
    shimmy_err rc = start_child(m, &fd, &efd, err, errlen);
    if (rc != SHIMMY_OK)
        return rc;
    start_log_thread(m, efd);
    rc = handshake(m, fd, err, errlen);
    warm_refill(); /* later: not during this load, nor the requests that follow it */
    if (rc != SHIMMY_OK)
        return spawn_failed(m, fd, rc, err, errlen);
    set_channel(m, fd);
    /* a leader's read waits at most this long before it looks at its deadline (wait_input) */
    struct timeval tv = {0, LIM_IPC_LEAD_LAPSE_MS * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&m->mu);
    bool started = pthread_create(&t, &a, reader_main, m) == 0;
    if (started) {
        if (m->state != R_STOPPING)
            m->state = R_ALIVE;
        m->finished_one = false;
        m->readers++;
        m->chan_gone = false;
        m->released_ns = clock_mono_ns();
        pass_lead(m); /* a job resubmitted to this child may wait already */
    }
    pthread_mutex_unlock(&m->mu);
    pthread_attr_destroy(&a);
    if (!started) {
        set_channel(m, -1);
        return spawn_failed(m, fd, ERR_INTERNAL, err, errlen);
    }
    log_info("%s: engine process %d serves it", m->name, (int)m->pid);
    return SHIMMY_OK;
}

static shimmy_err failed_error(rmodel *m, char *err, size_t errlen) {
    return err_set(err, errlen, ERR_MODEL_LOAD,
                   "model '%s' is failed: its engine process died "
                   "%d times in a row before answering (%s); rescan (POST /v1/models/rescan) or "
                   "replace the file to try again",
                   m->name, m->in_a_row, m->cause);
}

/* A child serving the model: spawns one when the last died. */
static shimmy_err ensure_alive(rmodel *m, char *err, size_t errlen) {
    pthread_mutex_lock(&m->spawn_mu);
    pthread_mutex_lock(&m->mu);
    while (m->state == R_DYING)
        pthread_cond_wait(&m->reader_cv, &m->mu);
    int state = m->state;
    if (state == R_FAILED)
        failed_error(m, err, errlen);
    pthread_mutex_unlock(&m->mu);
    shimmy_err rc = SHIMMY_OK;
    if (state == R_STOPPING)
        rc = err_set(err, errlen, ERR_MODEL_LOAD, "model '%s' is being unloaded", m->name);
    else if (state == R_FAILED)
        rc = ERR_MODEL_LOAD;
    else if (state == R_DEAD)
        rc = spawn(m, err, errlen);
    pthread_mutex_unlock(&m->spawn_mu);
    return rc;
}

/* ---- jobs ---- */

static void job_unref(rjob *j) { /* m->mu held */
    if (--j->refs > 0)
        return;
    pthread_cond_destroy(&j->cv);
    buf_free(&j->pending);
    buf_free(&j->request);
    free(j);
}

/* Takes j out of the table and drops the table's reference; the submitter's is still held, so
 * j stays (mu held). */
static void table_remove(rmodel *m, rjob *j) {
    if (!j->in_table)
        return;
    for (rjob **p = &m->jobs; *p != NULL; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            break;
        }
    j->in_table = false;
    j->refs--;
}

/* Ends j with an error (mu held). */
static void job_fail(rmodel *m, rjob *j, shimmy_err e, const char *msg) {
    if (!j->replied) {
        j->replied = true;
        j->submit_rc = e;
        snprintf(j->err, sizeof j->err, "%s", msg);
    }
    j->st.done = true;
    j->st.finish = FINISH_ERROR;
    j->st.error = e;
    snprintf(j->st.errmsg, sizeof j->st.errmsg, "%s", msg);
    pthread_cond_broadcast(&j->cv);
    table_remove(m, j);
}

static rjob *find_job(rmodel *m, uint64_t id) {
    for (rjob *j = m->jobs; j != NULL; j = j->next)
        if (j->id == id)
            return j;
    return NULL;
}

static void on_submitted(rmodel *m, uint64_t id, const buf *in) {
    ipc_rd r;
    ipc_rd_init(&r, in);
    rjob *j = find_job(m, id);
    m->info_ns = 0;
    if (j == NULL)
        return;
    j->submit_rc = (shimmy_err)ipc_get_u32(&r);
    const char *err = ipc_get_str(&r), *param = ipc_get_str(&r);
    snprintf(j->err, sizeof j->err, "%s", err ? err : "");
    snprintf(j->param, sizeof j->param, "%s", param ? param : "");
    j->replied = true;
    pthread_cond_broadcast(&j->cv);
    if (j->submit_rc != SHIMMY_OK)
        table_remove(m, j);
}

static void on_events(rmodel *m, uint64_t id, const buf *in) {
    ipc_rd r;
    size_t n;
    ipc_rd_init(&r, in);
    rjob *j = find_job(m, id);
    m->info_ns = 0; /* a job moved: the cached status is stale */
    const void *st = ipc_get_bytes(&r, &n);
    if (j == NULL || st == NULL || n != sizeof j->st)
        return;
    memcpy(&j->st, st, n);
    if (j->st.queued_ns > 0 || j->st.completion_tokens > 0 || j->st.prompt_ns > 0)
        j->started = true;
    if (r.left > 0 && buf_append(&j->pending, r.p, r.left) != SHIMMY_OK) {
        job_fail(m, j, ERR_TOO_LARGE, "the answer is over the size limit");
        return;
    }
    pthread_cond_broadcast(&j->cv);
    if (j->st.done) {
        if (j->st.finish != FINISH_ERROR && j->st.finish != FINISH_CANCELLED)
            m->finished_one = true;
        table_remove(m, j);
    }
}

static void on_reply(rmodel *m, uint64_t id, const buf *in) {
    for (rcall *c = m->calls; c != NULL; c = c->next)
        if (c->id == id) {
            buf_reset(&c->reply);
            buf_append(&c->reply, in->data ? in->data : "", in->len);
            c->done = true;
            pthread_cond_broadcast(&c->cv);
            return;
        }
}

/* ---- the child died ---- */

/* Fails the calls and the jobs that cannot be retried; returns the ones to retry (moved out of
 * the table with their reference). mu held. */
static rjob *fail_all(rmodel *m, const char *msg, bool can_retry) {
    rjob *retry = NULL;
    for (rcall *c = m->calls; c != NULL; c = c->next) {
        c->done = true;
        c->crash = ERR_ENGINE_CRASHED;
        pthread_cond_broadcast(&c->cv);
    }
    while (m->jobs != NULL) {
        rjob *j = m->jobs;
        if (can_retry && !j->started && !j->delivered && !j->retried && j->replied &&
            j->submit_rc == SHIMMY_OK) {
            m->jobs = j->next;
            j->retried = true;
            j->next = retry;
            retry = j;
            continue;
        }
        job_fail(m, j, ERR_ENGINE_CRASHED, msg);
    }
    return retry;
}

/* Resubmits the jobs that were still queued in the child, once, to a fresh child. */
static void retry_jobs(rmodel *m, rjob *list) {
    char err[512] = "";
    shimmy_err rc = list == NULL ? SHIMMY_OK : ensure_alive(m, err, sizeof err);
    while (list != NULL) {
        rjob *j = list;
        list = j->next;
        pthread_mutex_lock(&m->mu);
        j->next = m->jobs;
        m->jobs = j;
        memset(&j->st, 0, sizeof j->st);
        buf_reset(&j->pending);
        if (rc != SHIMMY_OK)
            job_fail(m, j, ERR_ENGINE_CRASHED, err);
        pthread_mutex_unlock(&m->mu);
        if (rc == SHIMMY_OK &&
            send_frame(m, IPC_SUBMIT, j->id, j->request.data, j->request.len) == SHIMMY_OK)
            log_info("%s: request %llu resubmitted to the new engine process", m->name,
                     (unsigned long long)j->id);
    }
}

static void on_death(rmodel *m) {
    char how[128], msg[512];
    pthread_mutex_lock(&m->wmu);
    int fd = m->fd;
    m->fd = -1;
    close(fd);
    pthread_mutex_unlock(&m->wmu);
    pthread_mutex_lock(&m->mu);
    bool stopping = m->state == R_STOPPING;
    pid_t pid = m->pid;
    if (!stopping)
        m->state = R_DYING;
    pthread_mutex_unlock(&m->mu);
    if (stopping)
        return; /* engine_model_free reaps it */
    reap(pid, how, sizeof how);
    stop_log_thread(m);
    pthread_mutex_lock(&m->mu);
    m->pid = 0;
    m->crashes++;
    m->in_a_row = m->finished_one ? 1 : m->in_a_row + 1;
    snprintf(m->cause, sizeof m->cause, CAUSE_FMT(""), m->name, how, last_words(m));
    snprintf(msg, sizeof msg, "%s; the next request loads the model again", m->cause);
    if (m->state == R_DYING) /* not R_STOPPING: engine_model_free came meanwhile */
        m->state = m->in_a_row >= CRASHES_TO_FAIL ? R_FAILED : R_DEAD;
    pthread_cond_broadcast(&m->reader_cv);
    log_error("%s (crash %d, %d in a row)", m->cause, m->crashes, m->in_a_row);
    rjob *retry = fail_all(m, msg, m->state == R_DEAD);
    pthread_mutex_unlock(&m->mu);
    retry_jobs(m, retry);
}

/* ---- reading the channel (see the top) ---- */

static void dispatch(rmodel *m, const ipc_hdr *h, const buf *in) { /* mu held */
    if (h->type == IPC_SUBMITTED)
        on_submitted(m, h->id, in);
    else if (h->type == IPC_EVENTS)
        on_events(m, h->id, in);
    else if (h->type == IPC_REPLY)
        on_reply(m, h->id, in);
}

/* Wakes a waiter whose news has not come, to read the channel next (mu held). */
static void pass_lead(rmodel *m) {
    for (waiter *w = m->waiters; w != NULL; w = w->next)
        if (!w->ready(w->arg)) {
            pthread_cond_broadcast(w->cv);
            return;
        }
}

/* Waits until the channel has input (or ended), dl passes (NULL: no limit) or, for the reader
 * thread, a waiter kicks. True when there is input. A waiter reads at once, waiting in the read
 * itself (the channel's SO_RCVTIMEO, LIM_IPC_LEAD_LAPSE_MS, bounds each wait so that its deadline
 * is kept): one system call per token, not a poll and a read. The reader thread polls, for the
 * kick as well. */
static bool wait_input(rmodel *m, const struct timespec *dl, bool reader) {
    while (!reader) {
        bool late = dl != NULL && clock_deadline_passed(dl);
        if (ipc_reader_fill(&m->rd, !late))
            return true;
        if (late)
            return false; /* past the deadline: one look without waiting, then give up */
    }
    struct pollfd p[2] = {{.fd = m->rd.fd, .events = POLLIN}, {.fd = m->kick_fd, .events = POLLIN}};
    if (poll(p, reader ? 2 : 1, dl != NULL ? clock_ms_until(dl) : -1) <= 0)
        return false; /* the deadline, or EINTR: the caller looks again */
    if (reader && (p[1].revents & POLLIN) != 0) {
        uint64_t n;
        ssize_t r = read(m->kick_fd, &n, sizeof n);
        (void)r;
    }
    return (p[0].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

/* Reads the channel as the leader: waits for input as wait_input does, takes the frames that
 * came (those of one engine step come together) and hands each to its job or call; then gives
 * the channel up, to a waiter that still needs it, or marks it gone. mu held, released while
 * reading. */
static void lead(rmodel *m, const struct timespec *dl, bool reader) {
    m->leading = true;
    m->reader_leads = reader;
    pthread_mutex_unlock(&m->mu);
    shimmy_err rc = SHIMMY_OK;
    bool more = ipc_reader_buffered(&m->rd) || wait_input(m, dl, reader);
    while (more) {
        ipc_hdr h;
        rc = ipc_recv(&m->rd, &h, &m->in);
        if (rc != SHIMMY_OK)
            break;
        pthread_mutex_lock(&m->mu);
        dispatch(m, &h, &m->in);
        pthread_mutex_unlock(&m->mu);
        more = ipc_reader_buffered(&m->rd);
    }
    pthread_mutex_lock(&m->mu);
    m->leading = false;
    if (reader)
        m->reader_leads = m->kicked = false;
    m->released_ns = clock_mono_ns();
    if (rc != SHIMMY_OK) {
        m->chan_gone = true; /* the reader thread handles it */
        pthread_cond_broadcast(&m->reader_cv);
    } else {
        pass_lead(m);
    }
}

/* Waits (mu held) until w's news came, reading the channel itself when nobody else does, or
 * until dl passes (NULL: no limit). False when dl passed first. */
static bool wait_news(rmodel *m, waiter *w, const struct timespec *dl) {
    while (!w->ready(w->arg)) {
        bool late = dl != NULL && clock_deadline_passed(dl);
        if (!m->leading && !m->chan_gone) {
            lead(m, dl, false); /* at least one look, even when late */
            if (late)
                return w->ready(w->arg);
            continue;
        }
        if (late)
            return false;
        if (m->reader_leads && !m->kicked) {
            uint64_t one = 1;
            m->kicked = write(m->kick_fd, &one, sizeof one) == (ssize_t)sizeof one;
        }
        w->next = m->waiters;
        m->waiters = w;
        int rc = dl != NULL ? pthread_cond_timedwait(w->cv, &m->mu, dl)
                            : pthread_cond_wait(w->cv, &m->mu);
        for (waiter **q = &m->waiters; *q != NULL; q = &(*q)->next)
            if (*q == w) {
                *q = w->next;
                break;
            }
        if (rc == ETIMEDOUT && !m->leading)
            pass_lead(m); /* it may have been woken to read: another waiter reads instead */
    }
    return true;
}

/* Reads when nobody else does (see the top) and handles the end of the channel. */
static void *reader_main(void *p) {
    rmodel *m = p;
    pthread_mutex_lock(&m->mu);
    while (!m->chan_gone) {
        bool idle = m->jobs == NULL && m->calls == NULL;
        if (!m->leading &&
            (idle || clock_mono_ns() - m->released_ns >= LIM_IPC_LEAD_LAPSE_MS * 1000000LL)) {
            lead(m, NULL, true);
            continue;
        }
        struct timespec dl = clock_deadline_ms(LIM_IPC_LEAD_LAPSE_MS);
        pthread_cond_timedwait(&m->reader_cv, &m->mu, &dl);
    }
    pthread_mutex_unlock(&m->mu);
    on_death(m);
    pthread_mutex_lock(&m->mu);
    m->readers--;
    pthread_cond_broadcast(&m->reader_cv);
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* ---- synchronous calls ---- */

static bool call_done(const void *c) {
    return ((const rcall *)c)->done;
}

/* Sends a call and waits for its reply into *r (reply owned by c: free with buf_free). Returns
 * the call's rc, with its message in err and param. */
static shimmy_err call_for(rmodel *m, const buf *args, rcall *c, ipc_rd *r, char *err,
                           size_t errlen, char *param, size_t paramlen, int timeout_ms);

static shimmy_err call(rmodel *m, const buf *args, rcall *c, ipc_rd *r, char *err, size_t errlen,
                       char *param, size_t paramlen) {
    return call_for(m, args, c, r, err, errlen, param, paramlen, 0);
}

/* call with a deadline (timeout_ms > 0): ERR_TIMEOUT when the child does not answer in time. */
static shimmy_err call_for(rmodel *m, const buf *args, rcall *c, ipc_rd *r, char *err,
                           size_t errlen, char *param, size_t paramlen, int timeout_ms) {
    memset(c, 0, sizeof *c);
    buf_init(&c->reply, LIM_IPC_PAYLOAD_BYTES);
    shimmy_err rc = ensure_alive(m, err, errlen);
    if (rc != SHIMMY_OK)
        return rc;
    pthread_cond_init(&c->cv, NULL);
    pthread_mutex_lock(&m->mu);
    c->id = ++m->next_id;
    c->next = m->calls;
    m->calls = c;
    pthread_mutex_unlock(&m->mu);
    bool sent = send_frame(m, IPC_CALL, c->id, args->data, args->len) == SHIMMY_OK;
    struct timespec dl = clock_deadline_ms(timeout_ms);
    pthread_mutex_lock(&m->mu);
    if (!sent && !c->done) { /* no child to answer: it died before the call went out */
        c->done = true;
        c->crash = ERR_ENGINE_CRASHED;
    }
    waiter w = {.cv = &c->cv, .ready = call_done, .arg = c};
    if (!wait_news(m, &w, timeout_ms > 0 ? &dl : NULL)) {
        c->done = true; /* a late reply finds no call and is dropped */
        c->crash = ERR_TIMEOUT;
    }
    for (rcall **p = &m->calls; *p != NULL; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    if (c->crash == ERR_ENGINE_CRASHED)
        err_set(err, errlen, c->crash, "%s", m->cause);
    else if (c->crash != SHIMMY_OK)
        err_set(err, errlen, c->crash, "the engine process of model '%s' did not answer in time",
                m->name);
    pthread_mutex_unlock(&m->mu);
    pthread_cond_destroy(&c->cv);
    if (c->crash != SHIMMY_OK)
        return c->crash;
    ipc_rd_init(r, &c->reply);
    rc = (shimmy_err)ipc_get_u32(r);
    const char *e = ipc_get_str(r), *pa = ipc_get_str(r);
    if (rc != SHIMMY_OK && err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", e ? e : "");
    if (param != NULL && paramlen > 0)
        snprintf(param, paramlen, "%s", pa ? pa : "");
    return r->bad ? ERR_INTERNAL : rc;
}

static void args_init(buf *b, ipc_call_op op) {
    buf_init(b, LIM_IPC_PAYLOAD_BYTES);
    ipc_put_u32(b, op);
}

static void crash_info(rmodel *m, engine_model_info *info) { /* mu held */
    info->pid = m->state == R_ALIVE ? (int)m->pid : 0;
    info->crashes = m->crashes;
    info->failed = m->state == R_FAILED;
    snprintf(info->last_crash, sizeof info->last_crash, "%s", m->cause);
}

static void remote_get_info(engine_model *em, engine_model_info *info) {
    rmodel *m = (rmodel *)em;
    buf args;
    rcall c;
    ipc_rd r;
    size_t n;
    int64_t now = clock_mono_ns();
    pthread_mutex_lock(&m->mu);
    bool alive = m->state == R_ALIVE;
    bool fresh = now - m->info_ns < (int64_t)LIM_INFO_CACHE_MS * 1000000;
    *info = m->info;
    if (!alive) {
        info->active_slots = 0;
        info->queued = 0;
    }
    pthread_mutex_unlock(&m->mu);
    /* A dead model is not loaded again for a status page, and a busy status page asks the
     * child at most every LIM_INFO_CACHE_MS while no job moves (any frame of a job makes the
     * cached status stale). */
    if (alive && !fresh) {
        args_init(&args, IPC_CALL_INFO);
        /* a status page must not hang on a busy child: the last figures after a second */
        if (call_for(m, &args, &c, &r, NULL, 0, NULL, 0, 1000) == SHIMMY_OK) {
            const void *p = ipc_get_bytes(&r, &n);
            if (p != NULL && n == sizeof *info) {
                memcpy(info, p, n);
                pthread_mutex_lock(&m->mu);
                m->info = *info;
                m->info_ns = clock_mono_ns();
                pthread_mutex_unlock(&m->mu);
            }
        }
        buf_free(&c.reply);
        buf_free(&args);
    }
    pthread_mutex_lock(&m->mu);
    crash_info(m, info);
    pthread_mutex_unlock(&m->mu);
}

static shimmy_err remote_apply_template(engine_model *em, const char *chat_json, char **out,
                                        char *err, size_t errlen, char *param, size_t paramlen) {
    rmodel *m = (rmodel *)em;
    buf args;
    rcall c;
    ipc_rd r;
    args_init(&args, IPC_CALL_APPLY);
    ipc_put_str(&args, chat_json);
    shimmy_err rc = call(m, &args, &c, &r, err, errlen, param, paramlen);
    const char *s = rc == SHIMMY_OK ? ipc_get_str(&r) : NULL;
    if (rc == SHIMMY_OK && (s == NULL || (*out = strdup(s)) == NULL))
        rc = ERR_NOMEM;
    buf_free(&c.reply);
    buf_free(&args);
    return rc;
}

static shimmy_err remote_tokenize(engine_model *em, const char *text, bool add_special,
                                  bool parse_special, int32_t **out, size_t *n, char *err,
                                  size_t errlen) {
    rmodel *m = (rmodel *)em;
    buf args;
    rcall c;
    ipc_rd r;
    size_t bytes;
    args_init(&args, IPC_CALL_TOKENIZE);
    ipc_put_str(&args, text);
    ipc_put_u32(&args, add_special);
    ipc_put_u32(&args, parse_special);
    shimmy_err rc = call(m, &args, &c, &r, err, errlen, NULL, 0);
    const void *p = rc == SHIMMY_OK ? ipc_get_bytes(&r, &bytes) : NULL;
    if (rc == SHIMMY_OK) {
        *n = p != NULL ? bytes / sizeof **out : 0;
        *out = malloc(bytes ? bytes : 1);
        if (*out == NULL)
            rc = ERR_NOMEM;
        else if (bytes > 0)
            memcpy(*out, p, bytes);
    }
    buf_free(&c.reply);
    buf_free(&args);
    return rc;
}

/* A call whose answer is bytes appended to out. */
static shimmy_err bytes_call(rmodel *m, buf *args, buf *out, char *err, size_t errlen) {
    rcall c;
    ipc_rd r;
    size_t n;
    shimmy_err rc = call(m, args, &c, &r, err, errlen, NULL, 0);
    const void *p = rc == SHIMMY_OK ? ipc_get_bytes(&r, &n) : NULL;
    if (p != NULL && n > 0)
        rc = buf_append(out, p, n);
    buf_free(&c.reply);
    buf_free(args);
    return rc;
}

static shimmy_err remote_token_piece(engine_model *em, int32_t t, buf *out) {
    buf args;
    args_init(&args, IPC_CALL_PIECE);
    ipc_put_u32(&args, (uint32_t)t);
    return bytes_call((rmodel *)em, &args, out, NULL, 0);
}

static shimmy_err remote_detokenize(engine_model *em, const int32_t *tokens, size_t n, buf *out,
                                    char *err, size_t errlen) {
    buf args;
    args_init(&args, IPC_CALL_DETOKENIZE);
    ipc_put_bytes(&args, tokens, n * sizeof *tokens);
    return bytes_call((rmodel *)em, &args, out, err, errlen);
}

static shimmy_err remote_model_template(engine_model *em, char **source, engine_tmpl_caps *caps) {
    rmodel *m = (rmodel *)em;
    buf args;
    rcall c;
    ipc_rd r;
    size_t n;
    char err[256];
    args_init(&args, IPC_CALL_TEMPLATE);
    shimmy_err rc = call(m, &args, &c, &r, err, sizeof err, NULL, 0);
    if (rc == SHIMMY_OK) {
        const char *s = ipc_get_str(&r);
        const void *p = ipc_get_bytes(&r, &n);
        *source = strdup(s ? s : "");
        if (p != NULL && n == sizeof *caps)
            memcpy(caps, p, n);
        rc = *source != NULL ? SHIMMY_OK : ERR_NOMEM;
    }
    buf_free(&c.reply);
    buf_free(&args);
    return rc;
}

static shimmy_err remote_embed(engine_model *em, const char *const *texts, size_t n, float **out,
                               int *n_embd, int *n_tokens, char *err, size_t errlen) {
    rmodel *m = (rmodel *)em;
    buf args;
    rcall c;
    ipc_rd r;
    size_t bytes;
    args_init(&args, IPC_CALL_EMBED);
    ipc_put_u32(&args, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        ipc_put_str(&args, texts[i]);
    shimmy_err rc = call(m, &args, &c, &r, err, errlen, NULL, 0);
    if (rc == SHIMMY_OK) {
        *n_embd = (int)ipc_get_u32(&r);
        *n_tokens = (int)ipc_get_u32(&r);
        const void *p = ipc_get_bytes(&r, &bytes);
        *out = malloc(bytes ? bytes : 1);
        if (*out == NULL || r.bad)
            rc = r.bad ? ERR_INTERNAL : ERR_NOMEM;
        else if (bytes > 0)
            memcpy(*out, p, bytes);
    }
    buf_free(&c.reply);
    buf_free(&args);
    return rc;
}

/* Reads a reply of {u32 n_embd, u32 n_tokens, bytes floats} into owned *out. */
static shimmy_err read_floats(ipc_rd *r, float **out, int *n_embd, int *n_tokens) {
    size_t bytes;
    int dim = (int)ipc_get_u32(r);
    *n_tokens = (int)ipc_get_u32(r);
    if (n_embd != NULL)
        *n_embd = dim;
    const void *p = ipc_get_bytes(r, &bytes);
    if (r->bad)
        return ERR_INTERNAL;
    *out = malloc(bytes ? bytes : 1);
    if (*out == NULL)
        return ERR_NOMEM;
    if (bytes > 0)
        memcpy(*out, p, bytes);
    return SHIMMY_OK;
}

static shimmy_err remote_embed_inputs(engine_model *em, const engine_embed_input *in, size_t n,
                                      bool truncate, float **out, int *n_embd, int *n_tokens,
                                      char *err, size_t errlen) {
    rmodel *m = (rmodel *)em;
    buf args;
    rcall c;
    ipc_rd r;
    args_init(&args, IPC_CALL_EMBED_INPUTS);
    ipc_put_u32(&args, (uint32_t)n);
    ipc_put_u32(&args, truncate);
    for (size_t i = 0; i < n; i++) {
        ipc_put_str(&args, in[i].text);
        ipc_put_bytes(&args, in[i].tokens, in[i].text ? 0 : in[i].n_tokens * sizeof(int32_t));
    }
    shimmy_err rc = call(m, &args, &c, &r, err, errlen, NULL, 0);
    if (rc == SHIMMY_OK)
        rc = read_floats(&r, out, n_embd, n_tokens);
    buf_free(&c.reply);
    buf_free(&args);
    return rc;
}

static shimmy_err remote_rerank(engine_model *em, const char *query, const char *const *docs,
                                size_t n, float **scores, int *n_tokens, char *err, size_t errlen) {
    rmodel *m = (rmodel *)em;
    buf args;
    rcall c;
    ipc_rd r;
    args_init(&args, IPC_CALL_RERANK);
    ipc_put_str(&args, query);
    ipc_put_u32(&args, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        ipc_put_str(&args, docs[i]);
    shimmy_err rc = call(m, &args, &c, &r, err, errlen, NULL, 0);
    if (rc == SHIMMY_OK)
        rc = read_floats(&r, scores, NULL, n_tokens);
    buf_free(&c.reply);
    buf_free(&args);
    return rc;
}

/* ---- generation ---- */

static void put_request(buf *b, const gen_request *req) {
    gen_params p = req->params;
    ipc_put_str(b, req->prompt);
    ipc_put_str(b, req->chat_json);
    p.stop = NULL;
    p.grammar = NULL;
    p.json_schema = NULL;
    ipc_put_bytes(b, &p, sizeof p);
    ipc_put_u32(b, (uint32_t)req->params.n_stop);
    for (int i = 0; i < req->params.n_stop; i++)
        ipc_put_str(b, req->params.stop[i]);
    ipc_put_str(b, req->params.grammar);
    ipc_put_str(b, req->params.json_schema);
    ipc_put_u32(b, (uint32_t)req->n_media);
    for (int i = 0; i < req->n_media; i++) {
        ipc_put_u32(b, (uint32_t)req->media[i].kind);
        ipc_put_str(b, req->media[i].param);
        ipc_put_bytes(b, req->media[i].data, req->media[i].len);
    }
}

static shimmy_err remote_count(engine_model *em, const gen_request *req, int *n, char *err,
                               size_t errlen, char *param, size_t paramlen) {
    rmodel *m = (rmodel *)em;
    buf args;
    rcall c;
    ipc_rd r;
    args_init(&args, IPC_CALL_COUNT);
    put_request(&args, req);
    shimmy_err rc = call(m, &args, &c, &r, err, errlen, param, paramlen);
    if (rc == SHIMMY_OK) {
        *n = (int)ipc_get_u32(&r);
        if (r.bad)
            rc = err_set(err, errlen, ERR_INTERNAL, "the engine process sent a bad count");
    }
    buf_free(&c.reply);
    buf_free(&args);
    return rc;
}

static bool job_replied(const void *j) {
    return ((const rjob *)j)->replied;
}

static shimmy_err remote_submit(engine_model *em, const gen_request *req, gen_job **out, char *err,
                                size_t errlen, char *param, size_t paramlen) {
    rmodel *m = (rmodel *)em;
    shimmy_err rc = ensure_alive(m, err, errlen);
    if (rc != SHIMMY_OK)
        return rc;
    rjob *j = calloc(1, sizeof *j);
    if (j == NULL)
        return ERR_NOMEM;
    j->hdr.ops = &remote_ops;
    j->m = m;
    j->refs = 2;
    pthread_cond_init(&j->cv, NULL);
    buf_init(&j->pending, LIM_RESPONSE_BYTES + (1u << 20));
    buf_init(&j->request, LIM_IPC_PAYLOAD_BYTES);
    put_request(&j->request, req);
    pthread_mutex_lock(&m->mu);
    j->id = ++m->next_id;
    j->next = m->jobs;
    j->in_table = true;
    m->jobs = j;
    pthread_mutex_unlock(&m->mu);
    bool sent = send_frame(m, IPC_SUBMIT, j->id, j->request.data, j->request.len) == SHIMMY_OK;
    pthread_mutex_lock(&m->mu);
    if (!sent && !j->replied)
        job_fail(m, j, ERR_ENGINE_CRASHED, m->cause[0] ? m->cause : "the engine process is gone");
    waiter w = {.cv = &j->cv, .ready = job_replied, .arg = j};
    wait_news(m, &w, NULL);
    rc = j->submit_rc;
    if (rc != SHIMMY_OK) {
        snprintf(err, errlen, "%s", j->err);
        if (param != NULL && paramlen > 0)
            snprintf(param, paramlen, "%s", j->param);
        table_remove(m, j);
        job_unref(j);
    } else {
        *out = (gen_job *)j;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* Moves the pending events into ev (mu held). */
static shimmy_err take_events(rjob *j, gen_events *ev) {
    buf *b = &j->pending;
    ipc_rd r;
    shimmy_err rc = SHIMMY_OK;
    ipc_rd_init(&r, b);
    while (rc == SHIMMY_OK && r.left > 0 && !r.bad) {
        uint32_t n = ipc_get_u32(&r);
        for (uint32_t i = 0; i < n && rc == SHIMMY_OK && !r.bad; i++) {
            gen_event_kind kind = (gen_event_kind)ipc_get_u32(&r);
            int index = (int)ipc_get_u32(&r);
            const char *id = ipc_get_str(&r), *name = ipc_get_str(&r);
            size_t len;
            const char *text = ipc_get_bytes(&r, &len);
            uint32_t bits = ipc_get_u32(&r);
            float lp;
            memcpy(&lp, &bits, sizeof lp);
            if (!r.bad && (kind == GEN_EV_LOGPROB || kind == GEN_EV_LOGPROB_TOP))
                rc = gen_events_add_lp(ev, kind, text ? text : "", len, lp);
            else if (!r.bad)
                rc = gen_events_add(ev, kind, index, id, name, text ? text : "", len);
        }
    }
    buf_reset(b);
    return r.bad ? ERR_INTERNAL : rc;
}

static bool job_news(const void *p) {
    const rjob *j = p;
    return j->pending.len > 0 || j->st.done;
}

static shimmy_err remote_job_wait(gen_job *ej, int timeout_ms, gen_events *ev, gen_status *st) {
    rjob *j = (rjob *)ej;
    rmodel *m = j->m;
    struct timespec dl = clock_deadline_ms(timeout_ms);
    gen_events_clear(ev);
    pthread_mutex_lock(&m->mu);
    waiter w = {.cv = &j->cv, .ready = job_news, .arg = j};
    wait_news(m, &w, &dl);
    shimmy_err rc = take_events(j, ev);
    if (ev->n > 0)
        j->delivered = true;
    *st = j->st;
    pthread_mutex_unlock(&m->mu);
    gen_events_seal(ev);
    return rc;
}

static void send_to_job(rjob *j, ipc_type type) {
    rmodel *m = j->m;
    pthread_mutex_lock(&m->mu);
    bool live = j->in_table;
    pthread_mutex_unlock(&m->mu);
    if (live)
        send_frame(m, type, j->id, NULL, 0);
}

static void remote_job_cancel(gen_job *ej) {
    send_to_job((rjob *)ej, IPC_CANCEL);
}

static void remote_job_release(gen_job *ej) {
    rjob *j = (rjob *)ej;
    rmodel *m = j->m;
    send_to_job(j, IPC_RELEASE);
    pthread_mutex_lock(&m->mu);
    table_remove(m, j); /* no more news wanted */
    job_unref(j);
    pthread_mutex_unlock(&m->mu);
}

/* ---- the model ---- */

static void remote_model_free(engine_model *em) {
    rmodel *m = (rmodel *)em;
    pthread_mutex_lock(&m->mu);
    m->state = R_STOPPING;
    pthread_mutex_unlock(&m->mu);
    pthread_mutex_lock(&m->wmu);
    if (m->fd >= 0)
        shutdown(m->fd, SHUT_RDWR); /* the child unloads and exits; the reader ends */
    pthread_mutex_unlock(&m->wmu);
    /* A spawn under way ends first; later ones see R_STOPPING. spawn_mu is not held while the
     * reader thread ends: one handling a crash may retry jobs, which takes it. */
    pthread_mutex_lock(&m->spawn_mu);
    pthread_mutex_lock(&m->wmu);
    if (m->fd >= 0)
        shutdown(m->fd, SHUT_RDWR); /* a child that a spawn started meanwhile */
    pthread_mutex_unlock(&m->wmu);
    pthread_mutex_unlock(&m->spawn_mu);
    pthread_mutex_lock(&m->mu);
    while (m->readers > 0)
        pthread_cond_wait(&m->reader_cv, &m->mu);
    fail_all(m, "the model was unloaded", false);
    pid_t pid = m->pid;
    pthread_mutex_unlock(&m->mu);
    if (pid > 0) {
        char how[128];
        int64_t deadline = clock_mono_ns() + 2000000000LL; /* then it is killed */
        while (waitpid(pid, NULL, WNOHANG) == 0) {
            if (clock_mono_ns() > deadline) {
                kill(pid, SIGKILL);
                reap(pid, how, sizeof how);
                break;
            }
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
        }
    }
    stop_log_thread(m);
    buf_free(&m->load_msg);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->wmu);
    pthread_mutex_destroy(&m->spawn_mu);
    pthread_cond_destroy(&m->reader_cv);
    buf_free(&m->in);
    if (m->kick_fd >= 0)
        close(m->kick_fd);
    free(m);
}

shimmy_err remote_model_load(const engine_options *o, engine_model **out, char *err,
                             size_t errlen) {
    rmodel *m = calloc(1, sizeof *m);
    if (m == NULL)
        return ERR_NOMEM;
    m->hdr.ops = &remote_ops;
    m->fd = -1;
    m->state = R_DEAD;
    m->chan_gone = true;
    m->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (m->kick_fd < 0) {
        free(m);
        return err_set(err, errlen, ERR_INTERNAL, "cannot make an eventfd: %s", strerror(errno));
    }
    buf_init(&m->in, LIM_IPC_PAYLOAD_BYTES);
    snprintf(m->name, sizeof m->name, "%s", o->name ? o->name : o->path);
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->wmu, NULL);
    pthread_mutex_init(&m->spawn_mu, NULL);
    pthread_cond_init(&m->reader_cv, NULL);
    buf_init(&m->load_msg, LIM_IPC_PAYLOAD_BYTES);
    put_options(&m->load_msg, o);
    m->progress = o->progress;
    m->progress_ctx = o->progress_ctx;
    shimmy_err rc = ensure_alive(m, err, errlen);
    m->progress = NULL; /* later spawns (after a crash) show no progress */
    if (rc != SHIMMY_OK) {
        m->state = R_STOPPING;
        remote_model_free((engine_model *)m);
        return rc;
    }
    engine_model_info info;
    remote_get_info((engine_model *)m, &info);
    pthread_mutex_lock(&m->mu);
    m->info = info;
    pthread_mutex_unlock(&m->mu);
    *out = (engine_model *)m;
    return SHIMMY_OK;
}

const engine_ops remote_ops = {
    .model_free = remote_model_free,
    .get_info = remote_get_info,
    .submit = remote_submit,
    .apply_template = remote_apply_template,
    .count = remote_count,
    .tokenize = remote_tokenize,
    .token_piece = remote_token_piece,
    .detokenize = remote_detokenize,
    .model_template = remote_model_template,
    .embed = remote_embed,
    .embed_inputs = remote_embed_inputs,
    .rerank = remote_rerank,
    .job_wait = remote_job_wait,
    .job_cancel = remote_job_cancel,
    .job_release = remote_job_release,
};
