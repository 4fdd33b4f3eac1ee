/* engine/child: the engine process of one model (`shimmy __engine FD`, started by remote.c; ADR
 * 0005). It runs sched.c for the model the server names in its first frame and serves engine.h
 * over the channel on FD: the main thread reads frames; a submit runs on a worker thread of its
 * own, after which the engine thread itself writes the job's events after each step (send_news:
 * no thread per job to wake per token); each synchronous call runs on a worker of its own (an
 * embedding may take a while). Workers wait a while for the next task before they end. It holds no
 * listening socket and ends when the server closes the channel (or dies). When llama.cpp aborts,
 * this process ends and the server fails or retries what it was serving. It loads the backend
 * modules before it reads the first frame, so a process the server starts ahead of need (the warm
 * one, engine_prestart) has them ready when a model is named; the first warm one also answers the
 * server's start-up check of the GPU choices (IPC_CHECK, engine_start), since the server loads no
 * module itself. */
#include <dirent.h>
#if defined(__SANITIZE_ADDRESS__)
#define CHILD_LSAN
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHILD_LSAN
#endif
#endif
#ifdef CHILD_LSAN
#include <sanitizer/lsan_interface.h>
#endif
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/limits.h"
#include "core/log.h"
#include "engine/child.h"
#include "engine/ipc.h"
#include "engine/ops.h"
#include "gpu/gpu.h"

typedef struct cjob {
    uint64_t id;
    gen_job *job;
    bool released;   /* the server dropped it: stop sending */
    bool ready;      /* its SUBMITTED was sent: its EVENTS may follow */
    gen_status last; /* the status last sent */
    struct cjob *next;
} cjob;

typedef struct child {
    int fd;
    ipc_reader rd;       /* fd's reading end: the main thread's */
    pthread_mutex_t wmu; /* writes to fd */
    pthread_mutex_t mu;  /* jobs, and the news scratch below */
    cjob *jobs;
    gen_events ev; /* one job's news (send_news), under mu */
    buf out;       /* the EVENTS frames of one send_news, under mu */
    engine_model *m;
} child;

static child C;

static uint64_t early_cancel[LIM_EARLY_CANCELS];
static unsigned n_early;

static bool take_early_cancel(uint64_t id) {
    for (unsigned i = 0; i < LIM_EARLY_CANCELS; i++)
        if (early_cancel[i] == id && id != 0) {
            early_cancel[i] = 0;
            return true;
        }
    return false;
}

/* ---- jobs ---- */

static cjob *find_job(uint64_t id) {
    for (cjob *j = C.jobs; j != NULL; j = j->next)
        if (j->id == id)
            return j;
    return NULL;
}

static void put_events(buf *b, const gen_status *st, const gen_events *ev) {
    ipc_put_bytes(b, st, sizeof *st);
    ipc_put_u32(b, (uint32_t)ev->n);
    for (size_t i = 0; i < ev->n; i++) {
        const gen_event *e = &ev->ev[i];
        ipc_put_u32(b, (uint32_t)e->kind);
        ipc_put_u32(b, (uint32_t)e->tool_index);
        ipc_put_str(b, e->tool_id);
        ipc_put_str(b, e->tool_name);
        ipc_put_bytes(b, e->text, e->len);
        uint32_t bits;
        memcpy(&bits, &e->logprob, sizeof bits);
        ipc_put_u32(b, bits); /* the same binary at both ends: the float's bits */
    }
}

/* Ends the job with the reason its events could not be sent. */
static void too_large(cjob *cj, gen_status *st) {
    st->done = true;
    st->finish = FINISH_ERROR;
    st->error = ERR_TOO_LARGE;
    snprintf(st->errmsg, sizeof st->errmsg, "the answer is over the size limit");
    engine_job_cancel(cj->job);
    C.ev.n = 0;
}

/* Appends cj's news since the last call (events, a new status) to C.out as one EVENTS frame;
 * true when the job is done. mu held; never waits for the job. */
static bool take_news(cjob *cj) {
    gen_status st;
    if (engine_job_wait(cj->job, 0, &C.ev, &st) != SHIMMY_OK)
        too_large(cj, &st);
    bool news = C.ev.n > 0 || st.done || memcmp(&st, &cj->last, sizeof st) != 0;
    if (cj->released || !news)
        return st.done;
    size_t at = ipc_frame_begin(&C.out, IPC_EVENTS, cj->id);
    put_events(&C.out, &st, &C.ev);
    if (!ipc_frame_end(&C.out, at)) {
        too_large(cj, &st);
        at = ipc_frame_begin(&C.out, IPC_EVENTS, cj->id);
        put_events(&C.out, &st, &C.ev);
        ipc_frame_end(&C.out, at);
    }
    cj->last = st;
    return st.done;
}

/* The news of every job whose submit was answered, written to the server in one go (several
 * when they are large); done jobs are dropped. sched.c calls it on the engine thread after each
 * step (sched_news_fn); a submit's thread calls it once after its SUBMITTED, for news that came
 * before the job was ready. So a token travels from the engine thread straight to the channel,
 * with no thread of its own to wake (ADR 0005). */
static void send_news(void *ctx) {
    (void)ctx;
    pthread_mutex_lock(&C.mu);
    buf_reset(&C.out);
    for (cjob **p = &C.jobs; *p != NULL;) {
        cjob *cj = *p;
        bool done = cj->ready && take_news(cj);
        if (C.out.len >= LIM_IPC_READ_BYTES) { /* one read's worth: on its way */
            ipc_send_frames(C.fd, &C.wmu, &C.out);
            buf_reset(&C.out);
        }
        if (!done) {
            p = &cj->next;
            continue;
        }
        *p = cj->next;
        engine_job_release(cj->job);
        free(cj);
    }
    ipc_send_frames(C.fd, &C.wmu, &C.out);
    pthread_mutex_unlock(&C.mu);
}

/* ---- workers: submits and calls, each on a thread of its own ----
 * A thread that finished its task waits LIM_ENGINE_WORKER_IDLE_S for the next one before it ends,
 * so that a request does not pay for a thread's start and end (clone, and the kernel's release of
 * its stack at exit). A task never waits behind another: with no worker idle, a new one starts. */

typedef struct task {
    void *(*fn)(void *);
    void *arg;
    struct task *next;
} task;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    task *head, *tail;
    int queued, idle; /* tasks not yet taken; workers waiting for one */
} W = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0};

static void *worker_main(void *unused) {
    (void)unused;
    pthread_mutex_lock(&W.mu);
    for (;;) {
        while (W.head == NULL) {
            struct timespec dl = clock_deadline_ms(LIM_ENGINE_WORKER_IDLE_S * 1000);
            W.idle++;
            int rc = pthread_cond_timedwait(&W.cv, &W.mu, &dl);
            W.idle--;
            if (rc != 0 && W.head == NULL) {
                pthread_mutex_unlock(&W.mu);
                return NULL;
            }
        }
        task *t = W.head;
        W.head = t->next;
        if (W.head == NULL)
            W.tail = NULL;
        W.queued--;
        pthread_mutex_unlock(&W.mu);
        t->fn(t->arg);
        free(t);
        pthread_mutex_lock(&W.mu);
    }
}

/* Runs fn(arg) on a worker (fn frees arg). */
static void run_task(void *(*fn)(void *), void *arg) {
    task *t = malloc(sizeof *t);
    if (t == NULL) {
        log_error("engine process: out of memory for a task; exiting");
        _exit(3);
    }
    *t = (task){fn, arg, NULL};
    pthread_mutex_lock(&W.mu);
    if (W.tail != NULL)
        W.tail->next = t;
    else
        W.head = t;
    W.tail = t;
    W.queued++;
    bool start = W.queued > W.idle; /* every idle worker has a task already */
    if (!start)
        pthread_cond_signal(&W.cv);
    pthread_mutex_unlock(&W.mu);
    if (start) {
        pthread_t th;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &a, worker_main, NULL) != 0) {
            log_error("engine process: cannot start a thread; exiting");
            _exit(3);
        }
        pthread_attr_destroy(&a);
    }
}

/* ---- requests ---- */

static shimmy_err read_request(ipc_rd *r, gen_request *req, const char **stops, gen_media *media) {
    memset(req, 0, sizeof *req);
    req->prompt = ipc_get_str(r);
    req->chat_json = ipc_get_str(r);
    size_t n;
    const void *p = ipc_get_bytes(r, &n);
    if (p == NULL || n != sizeof req->params)
        return ERR_INTERNAL;
    memcpy(&req->params, p, n);
    req->params.n_stop = (int)ipc_get_u32(r);
    if (req->params.n_stop < 0 || req->params.n_stop > LIM_STOP_STRINGS + 16)
        return ERR_INTERNAL;
    for (int i = 0; i < req->params.n_stop; i++)
        stops[i] = ipc_get_str(r);
    req->params.stop = stops;
    req->params.grammar = ipc_get_str(r);
    req->params.json_schema = ipc_get_str(r);
    req->n_media = (int)ipc_get_u32(r);
    if (req->n_media < 0 || req->n_media > LIM_MEDIA_PARTS)
        return ERR_INTERNAL;
    for (int i = 0; i < req->n_media; i++) {
        media[i].kind = (gen_media_kind)ipc_get_u32(r);
        media[i].param = ipc_get_str(r);
        media[i].data = ipc_get_bytes(r, &media[i].len);
    }
    req->media = media;
    return r->bad ? ERR_INTERNAL : SHIMMY_OK;
}

typedef struct csubmit {
    uint64_t id;
    buf in;
} csubmit;

/* A submit renders and tokenizes (long for a long prompt): off the reading thread, so that the
 * server's other frames (cancels, /health's info calls) are read meanwhile. */
static void *submit_main(void *p);

/* Submits and answers; the job's news then go out with send_news. */
static void submit_run(uint64_t id, const buf *payload) {
    ipc_rd r;
    gen_request req;
    const char *stops[LIM_STOP_STRINGS + 16];
    gen_media media[LIM_MEDIA_PARTS];
    char err[512] = "", param[96] = "";
    gen_job *job = NULL;
    ipc_rd_init(&r, payload);
    cjob *cj = calloc(1, sizeof *cj);
    shimmy_err rc = cj == NULL ? ERR_NOMEM : read_request(&r, &req, stops, media);
    if (rc == SHIMMY_OK)
        rc = engine_submit(C.m, &req, &job, err, sizeof err, param, sizeof param);
    else if (rc == ERR_INTERNAL)
        snprintf(err, sizeof err, "the engine process could not read the request");
    buf out;
    buf_init(&out, 1 << 16);
    ipc_put_u32(&out, (uint32_t)rc);
    ipc_put_str(&out, err);
    ipc_put_str(&out, param);
    if (rc == SHIMMY_OK) {
        cj->id = id;
        cj->job = job;
        pthread_mutex_lock(&C.mu);
        cj->next = C.jobs;
        C.jobs = cj;
        if (take_early_cancel(id)) { /* the server dropped it while it was being submitted */
            engine_job_cancel(job);
            cj->released = true;
        }
        pthread_mutex_unlock(&C.mu);
    } else {
        free(cj);
        cj = NULL;
    }
    /* SUBMITTED goes before the first EVENTS: send_news skips the job until it is sent */
    ipc_send(C.fd, &C.wmu, IPC_SUBMITTED, id, out.data, out.len);
    buf_free(&out);
    if (cj == NULL)
        return;
    pthread_mutex_lock(&C.mu);
    cj->ready = true;
    pthread_mutex_unlock(&C.mu);
    send_news(NULL); /* what the engine did with it before it was ready */
}

static void on_cancel(uint64_t id, bool release) {
    pthread_mutex_lock(&C.mu);
    cjob *cj = find_job(id);
    if (cj != NULL) {
        engine_job_cancel(cj->job);
        if (release)
            cj->released = true;
    } else {
        early_cancel[n_early++ % LIM_EARLY_CANCELS] = id;
    }
    pthread_mutex_unlock(&C.mu);
}

static void *submit_main(void *p) {
    csubmit *cs = p;
    submit_run(cs->id, &cs->in);
    buf_free(&cs->in);
    free(cs);
    return NULL;
}

static void on_submit(uint64_t id, const buf *payload) {
    csubmit *cs = calloc(1, sizeof *cs);
    if (cs == NULL) { /* no memory for a thread's state: submit here */
        submit_run(id, payload);
        return;
    }
    cs->id = id;
    buf_init(&cs->in, LIM_IPC_PAYLOAD_BYTES);
    buf_append(&cs->in, payload->data ? payload->data : "", payload->len);
    run_task(submit_main, cs);
}

/* ---- synchronous calls ---- */

typedef struct ccall {
    uint64_t id;
    buf in;
} ccall;

static shimmy_err call_tokenize(ipc_rd *r, buf *out, char *err, size_t errlen) {
    const char *text = ipc_get_str(r);
    bool add = ipc_get_u32(r) != 0, parse = ipc_get_u32(r) != 0;
    int32_t *t = NULL;
    size_t n = 0;
    if (r->bad || text == NULL)
        return ERR_INTERNAL;
    shimmy_err rc = engine_tokenize(C.m, text, add, parse, &t, &n, err, errlen);
    if (rc == SHIMMY_OK)
        ipc_put_bytes(out, t, n * sizeof *t);
    free(t);
    return rc;
}

static shimmy_err call_embed(ipc_rd *r, buf *out, char *err, size_t errlen) {
    uint32_t n = ipc_get_u32(r);
    if (n > LIM_MESSAGES * 16u)
        return ERR_INTERNAL;
    const char **texts = calloc(n ? n : 1, sizeof *texts);
    if (texts == NULL)
        return ERR_NOMEM;
    for (uint32_t i = 0; i < n; i++)
        texts[i] = ipc_get_str(r);
    float *v = NULL;
    int dim = 0, n_tokens = 0;
    shimmy_err rc =
        r->bad ? ERR_INTERNAL : engine_embed(C.m, texts, n, &v, &dim, &n_tokens, err, errlen);
    if (rc == SHIMMY_OK) {
        ipc_put_u32(out, (uint32_t)dim);
        ipc_put_u32(out, (uint32_t)n_tokens);
        ipc_put_bytes(out, v, (size_t)n * (size_t)dim * sizeof *v);
    }
    free(v);
    free(texts);
    return rc;
}

static void put_floats(buf *out, const float *v, size_t n, int dim, int n_tokens) {
    ipc_put_u32(out, (uint32_t)dim);
    ipc_put_u32(out, (uint32_t)n_tokens);
    ipc_put_bytes(out, v, n * (size_t)dim * sizeof *v);
}

static shimmy_err call_embed_inputs(ipc_rd *r, buf *out, char *err, size_t errlen) {
    uint32_t n = ipc_get_u32(r);
    bool truncate = ipc_get_u32(r) != 0;
    if (n > LIM_MESSAGES * 16u)
        return ERR_INTERNAL;
    engine_embed_input *in = calloc(n ? n : 1, sizeof *in);
    if (in == NULL)
        return ERR_NOMEM;
    for (uint32_t i = 0; i < n; i++) {
        size_t bytes = 0;
        in[i].text = ipc_get_str(r);
        in[i].tokens = ipc_get_bytes(r, &bytes);
        in[i].n_tokens = bytes / sizeof(int32_t);
    }
    float *v = NULL;
    int dim = 0, n_tokens = 0;
    shimmy_err rc =
        r->bad ? ERR_INTERNAL
               : engine_embed_inputs(C.m, in, n, truncate, &v, &dim, &n_tokens, err, errlen);
    if (rc == SHIMMY_OK)
        put_floats(out, v, n, dim, n_tokens);
    free(v);
    free(in);
    return rc;
}

static shimmy_err call_rerank(ipc_rd *r, buf *out, char *err, size_t errlen) {
    const char *query = ipc_get_str(r);
    uint32_t n = ipc_get_u32(r);
    if (n > LIM_MESSAGES * 16u)
        return ERR_INTERNAL;
    const char **docs = calloc(n ? n : 1, sizeof *docs);
    if (docs == NULL)
        return ERR_NOMEM;
    for (uint32_t i = 0; i < n; i++)
        docs[i] = ipc_get_str(r);
    float *v = NULL;
    int n_tokens = 0;
    shimmy_err rc = r->bad || query == NULL
                        ? ERR_INTERNAL
                        : engine_rerank(C.m, query, docs, n, &v, &n_tokens, err, errlen);
    if (rc == SHIMMY_OK)
        put_floats(out, v, n, 1, n_tokens);
    free(v);
    free(docs);
    return rc;
}

static shimmy_err call_run(uint32_t op, ipc_rd *r, buf *out, char *err, size_t errlen, char *param,
                           size_t paramlen) {
    shimmy_err rc = SHIMMY_OK;
    char *s = NULL;
    size_t n = 0;
    switch (op) {
    case IPC_CALL_INFO: {
        engine_model_info info;
        engine_model_get_info(C.m, &info);
        ipc_put_bytes(out, &info, sizeof info);
        return SHIMMY_OK;
    }
    case IPC_CALL_APPLY:
        rc = engine_apply_template(C.m, ipc_get_str(r), &s, err, errlen, param, paramlen);
        ipc_put_str(out, rc == SHIMMY_OK ? s : NULL);
        break;
    case IPC_CALL_TOKENIZE:
        return call_tokenize(r, out, err, errlen);
    case IPC_CALL_PIECE: {
        buf p;
        buf_init(&p, 1 << 16);
        rc = engine_token_piece(C.m, (int32_t)ipc_get_u32(r), &p);
        ipc_put_bytes(out, p.data, p.len);
        buf_free(&p);
        return rc;
    }
    case IPC_CALL_DETOKENIZE: {
        const int32_t *t = ipc_get_bytes(r, &n);
        buf p;
        buf_init(&p, LIM_RESPONSE_BYTES);
        rc = engine_detokenize(C.m, t, n / sizeof *t, &p, err, errlen);
        ipc_put_bytes(out, p.data, p.len);
        buf_free(&p);
        return rc;
    }
    case IPC_CALL_TEMPLATE: {
        engine_tmpl_caps caps;
        rc = engine_model_template(C.m, &s, &caps);
        ipc_put_str(out, s);
        ipc_put_bytes(out, &caps, sizeof caps);
        break;
    }
    case IPC_CALL_EMBED:
        return call_embed(r, out, err, errlen);
    case IPC_CALL_EMBED_INPUTS:
        return call_embed_inputs(r, out, err, errlen);
    case IPC_CALL_RERANK:
        return call_rerank(r, out, err, errlen);
    case IPC_CALL_COUNT: {
        gen_request req;
        const char *stops[LIM_STOP_STRINGS + 16];
        gen_media media[LIM_MEDIA_PARTS];
        int count = 0;
        if ((rc = read_request(r, &req, stops, media)) == SHIMMY_OK)
            rc = engine_count(C.m, &req, &count, err, errlen, param, paramlen);
        ipc_put_u32(out, (uint32_t)count);
        return rc;
    }
    default:
        rc = ERR_INTERNAL;
    }
    free(s);
    return rc;
}

static void *on_call(void *arg) {
    ccall *c = arg;
    ipc_rd r;
    char err[1024] = "", param[96] = "";
    buf res, out;
    buf_init(&res, LIM_IPC_PAYLOAD_BYTES);
    buf_init(&out, LIM_IPC_PAYLOAD_BYTES);
    ipc_rd_init(&r, &c->in);
    uint32_t op = ipc_get_u32(&r);
    shimmy_err rc = call_run(op, &r, &res, err, sizeof err, param, sizeof param);
    ipc_put_u32(&out, (uint32_t)rc);
    ipc_put_str(&out, err);
    ipc_put_str(&out, param);
    buf_append(&out, res.data ? res.data : "", res.len);
    ipc_send(C.fd, &C.wmu, IPC_REPLY, c->id, out.data, out.len);
    buf_free(&res);
    buf_free(&out);
    buf_free(&c->in);
    free(c);
    return NULL;
}

/* ---- start-up ---- */

static void read_options(ipc_rd *r, engine_options *o) {
    engine_options_default(o);
    o->path = ipc_get_str(r);
    o->name = ipc_get_str(r);
    o->n_parallel = (int)ipc_get_u32(r);
    o->n_ctx = (int)ipc_get_u32(r);
    o->n_threads = (int)ipc_get_u32(r);
    o->template_override = ipc_get_str(r);
    o->template_text = ipc_get_str(r);
    o->queue_max = (int)ipc_get_u32(r);
    o->lora_path = ipc_get_str(r);
    uint32_t scale = ipc_get_u32(r);
    memcpy(&o->lora_scale, &scale, sizeof scale);
    o->gpu_backend = (gpu_backend)ipc_get_u32(r);
    o->gpu_layers_mode = (gpu_layers_mode)ipc_get_u32(r);
    o->gpu_layers = (int)ipc_get_u32(r);
    o->single_gpu = ipc_get_u32(r) != 0;
    o->main_gpu = (int)ipc_get_u32(r);
    size_t n;
    const void *ts = ipc_get_bytes(r, &n);
    if (ts != NULL && n == sizeof o->tensor_split)
        memcpy(o->tensor_split, ts, n);
    o->rpc_servers = ipc_get_str(r);
    o->cache_type_k = (engine_kv_type)ipc_get_u32(r);
    o->cache_type_v = (engine_kv_type)ipc_get_u32(r);
    o->flash_attn = (engine_flash_attn)ipc_get_u32(r);
    o->cache_ram_mib = (int64_t)ipc_get_u64(r);
    o->spec_type = (engine_spec_type)ipc_get_u32(r);
    o->draft_path = ipc_get_str(r);
    o->draft_max = (int)ipc_get_u32(r);
    o->draft_min = (int)ipc_get_u32(r);
    uint32_t p_min = ipc_get_u32(r);
    memcpy(&o->draft_p_min, &p_min, sizeof p_min);
    o->ngram_n = (int)ipc_get_u32(r);
    o->ngram_m = (int)ipc_get_u32(r);
    o->mmproj = ipc_get_str(r);
    const char *marker = ipc_get_str(r);
    if (marker != NULL)
        sched_media_marker_set(marker);
}

/* Closes every descriptor but 0-2 and keep: nothing of the server (its listening socket, its
 * clients) stays open here. */
static void close_others(int keep) {
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return;
    int dfd = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end == '\0' && end != e->d_name && fd > 2 && fd != keep && fd != dfd)
            close((int)fd);
    }
    closedir(d);
}

/* Sends the load's progress to the server, each whole percent once. */
static void send_progress(void *ctx, float fraction) {
    static int last = -1;
    (void)ctx;
    int pct = (int)(fraction * 100.0f);
    if (pct == last)
        return;
    last = pct;
    ipc_send(C.fd, &C.wmu, IPC_PROGRESS, 0, &fraction, sizeof fraction);
}

/* Loads the model the server names; init_rc/init_err: how the backend modules loaded (before
 * the first frame: a warm process has them ready when the server sends it a model). */
static shimmy_err load(const buf *payload, shimmy_err init_rc, const char *init_err, char *err,
                       size_t errlen) {
    ipc_rd r;
    engine_options o;
    ipc_rd_init(&r, payload);
    read_options(&r, &o);
    if (r.bad || o.path == NULL)
        return err_set(err, errlen, ERR_INTERNAL, "the engine process could not read its options");
    shimmy_err rc = init_rc;
    if (rc != SHIMMY_OK)
        err_set(err, errlen, rc, "%s", init_err);
    if (rc == SHIMMY_OK && o.rpc_servers != NULL)
        rc = gpu_add_rpc(o.rpc_servers, true, err, errlen); /* a dead server: use what is left */
    o.progress = send_progress;
    if (rc == SHIMMY_OK)
        rc = sched_model_load(&o, send_news, NULL, &C.m, err, errlen);
    return rc;
}

/* engine_start's check for the server of this (warm) process: its GPU choices, on the modules
 * loaded here (init_rc/init_err: how they loaded). They travel as remote.c's put_check writes
 * them. Answers IPC_CHECKED: the result, the note, and the CPU variant loaded (the server passes
 * it to the engine processes it starts later). */
static void on_check(const buf *payload, shimmy_err init_rc, const char *init_err) {
    static model_gpu_override ov[LIM_MODELS];
    static char err[8192], note[2048];
    ipc_rd r;
    engine_options o;
    ipc_rd_init(&r, payload);
    engine_options_default(&o);
    o.isolate = true;
    o.gpu_backend = (gpu_backend)ipc_get_u32(&r);
    o.rpc_servers = ipc_get_str(&r);
    o.single_gpu = ipc_get_u32(&r) != 0;
    o.main_gpu = (int)ipc_get_u32(&r);
    uint32_t n = ipc_get_u32(&r);
    for (uint32_t i = 0; i < n && i < LIM_MODELS; i++) {
        ov[i] = (model_gpu_override){.model = ipc_get_str(&r)};
        ov[i].set_backend = ipc_get_u32(&r) != 0;
        ov[i].backend = (gpu_backend)ipc_get_u32(&r);
    }
    o.overrides = ov;
    o.n_overrides = (int)(n < LIM_MODELS ? n : LIM_MODELS);
    note[0] = '\0';
    shimmy_err rc = init_rc;
    if (rc != SHIMMY_OK)
        err_set(err, sizeof err, rc, "%s", init_err);
    else if (r.bad || n > LIM_MODELS)
        rc = err_set(err, sizeof err, ERR_INTERNAL, "the engine process could not read the check");
    else
        rc = engine_check_here(&o, note, sizeof note, err, sizeof err);
    buf out;
    buf_init(&out, LIM_IPC_PAYLOAD_BYTES);
    ipc_put_u32(&out, (uint32_t)rc);
    ipc_put_str(&out, rc != SHIMMY_OK ? err : "");
    ipc_put_str(&out, note);
    ipc_put_str(&out, gpu_cpu_variant());
    fflush(stderr); /* what the modules printed is in the pipe before the answer */
    ipc_send(C.fd, &C.wmu, IPC_CHECKED, 0, out.data, out.len);
    buf_free(&out);
}

/* The signals the server handles are not this process's: Ctrl-C's SIGINT, a hang-up and a
 * service manager's SIGTERM go to the whole process group, and the server then drains its
 * requests and closes the channel, which ends this process. A write to a peer that went away (an
 * RPC server) must fail with EPIPE for ggml to report, not end the process with SIGPIPE. Set here
 * rather than inherited: the warm engine process starts before the server sets its own. */
static void child_signals(void) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int engine_child_main(int fd, const char *cpu_variant) {
    child_signals();
    /* No PR_SET_PDEATHSIG: it fires when the server thread that spawned this process ends (any
     * connection thread may spawn). When the server goes, the channel reaches its end, and this
     * process unloads and exits. */
    close_others(fd);
    /* A peer that went away (the server, an RPC server) is an error on the write, not a silent
     * death: the warm engine process (engine_prestart) starts before serve ignores SIGPIPE, so
     * it did not inherit that. */
    signal(SIGPIPE, SIG_IGN);
    /* ggml's abort attaches gdb for a backtrace, which takes seconds while the server's clients
     * wait; a user who wants it sets GGML_NO_BACKTRACE= (empty) or 0 themselves. */
    setenv("GGML_NO_BACKTRACE", "1", 0);
    C.fd = fd;
    pthread_mutex_init(&C.wmu, NULL);
    pthread_mutex_init(&C.mu, NULL);
    gen_events_init(&C.ev);
    buf_init(&C.out, LIM_IPC_PAYLOAD_BYTES + LIM_IPC_READ_BYTES); /* a whole frame after a part */
    buf in;
    ipc_hdr h;
    char err[1024] = "", init_err[1024] = "";
    /* The backend modules before the model is named: this process may be the warm one
     * (engine_prestart), started before any model is asked for. */
    if (cpu_variant != NULL)
        gpu_cpu_variant_use(cpu_variant);
    shimmy_err init_rc = engine_global_init(NULL, init_err, sizeof init_err);
    buf_init(&in, LIM_IPC_PAYLOAD_BYTES);
    ipc_reader_init(&C.rd, fd, true); /* its engine thread writes to fd */
    for (;;) {
        if (ipc_recv(&C.rd, &h, &in) != SHIMMY_OK)
            return 1;
        if (h.type != IPC_CHECK)
            break;
        on_check(&in, init_rc, init_err);
    }
    if (h.type != IPC_LOAD)
        return 1;
    shimmy_err rc = load(&in, init_rc, init_err, err, sizeof err);
    buf out;
    buf_init(&out, 1 << 16);
    ipc_put_u32(&out, (uint32_t)rc);
    ipc_put_str(&out, err);
    ipc_send(fd, &C.wmu, IPC_LOADED, 0, out.data, out.len);
    buf_free(&out);
    if (rc != SHIMMY_OK)
        return 1;
    while (ipc_recv(&C.rd, &h, &in) == SHIMMY_OK) {
        if (h.type == IPC_SUBMIT) {
            on_submit(h.id, &in);
        } else if (h.type == IPC_CANCEL || h.type == IPC_RELEASE) {
            on_cancel(h.id, h.type == IPC_RELEASE);
        } else if (h.type == IPC_CALL) {
            ccall *c = calloc(1, sizeof *c);
            if (c == NULL)
                break;
            c->id = h.id;
            buf_init(&c->in, LIM_IPC_PAYLOAD_BYTES);
            buf_append(&c->in, in.data ? in.data : "", in.len);
            run_task(on_call, c);
        }
    }
    /* The server closed the channel: unload and go. The engine's shutdown ends the jobs; those
     * it did not report done are dropped here. _exit skips destructors that other threads may
     * still use. */
    engine_model_free(C.m);
    pthread_mutex_lock(&C.mu);
    while (C.jobs != NULL) {
        cjob *cj = C.jobs;
        C.jobs = cj->next;
        engine_job_release(cj->job);
        free(cj);
    }
    pthread_mutex_unlock(&C.mu);
#ifdef CHILD_LSAN
    /* _exit skips the leak check an ASan build runs at exit: run it here (a report goes to the
     * server's log, where the integration harness looks for it) */
    __lsan_do_leak_check();
#endif
    _exit(0);
}
