/* api/gen: see gen.h. Sinks and the accumulated answer first, then errors, then the path:
 * parse, acquire, check, submit, and the whole answer or the stream. */
#include "api/gen.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "api/api_internal.h"
#include "api/json_in.h"
#include "api/presets.h"
#include "core/clock.h"
#include "core/limits.h"
#include "core/log.h"
#include "http/stream.h"

/* ---- sinks ---- */

void api_sink_init(api_sink *s, buf *out, api_framing framing) {
    s->out = out;
    s->framing = framing;
    buf_init(&s->scratch, LIM_RESPONSE_BYTES);
}

void api_sink_free(api_sink *s) {
    buf_free(&s->scratch);
}

void api_frame_begin(api_sink *s, jsonw *w) {
    buf_reset(&s->scratch);
    jsonw_begin(w, &s->scratch);
}

static shimmy_err frame(api_sink *s, const char *event, const char *data, size_t n) {
    switch (s->framing) {
    case API_FRAME_SSE:
        return http_sse_event(s->out, event, data, n);
    case API_FRAME_NDJSON:
        return http_ndjson_line(s->out, data, n);
    default:
        return buf_append(s->out, data, n);
    }
}

shimmy_err api_frame_end_event(api_sink *s, jsonw *w, const char *event) {
    shimmy_err e = jsonw_end(w);
    return e != SHIMMY_OK ? e : frame(s, event, buf_str(&s->scratch), s->scratch.len);
}

shimmy_err api_frame_end(api_sink *s, jsonw *w) {
    return api_frame_end_event(s, w, NULL);
}

shimmy_err api_frame_text(api_sink *s, const char *text) {
    return frame(s, NULL, text, strlen(text));
}

void api_stops_own(gen_params *p, const char **own) {
    int n = p->n_stop < LIM_STOP_STRINGS ? p->n_stop : LIM_STOP_STRINGS;
    for (int i = 0; i < n; i++)
        own[i] = p->stop[i];
    p->stop = own;
    p->n_stop = n;
}

void api_random_id(char *out, size_t n, const char *prefix, size_t nbytes) {
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];
    char digits[33];
    if (nbytes > sizeof raw)
        nbytes = sizeof raw;
    if (getrandom(raw, nbytes, GRND_NONBLOCK) != (ssize_t)nbytes) {
        /* no entropy yet (early boot): ids need only be unique, not secret */
        uint64_t x = (uint64_t)clock_mono_ns() ^ (uint64_t)(uintptr_t)out;
        for (size_t i = 0; i < nbytes; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            raw[i] = (unsigned char)x;
        }
    }
    for (size_t i = 0; i < nbytes; i++) {
        digits[2 * i] = hex[raw[i] >> 4];
        digits[2 * i + 1] = hex[raw[i] & 15];
    }
    digits[2 * nbytes] = '\0';
    snprintf(out, n, "%s%s", prefix, digits);
}

/* ---- the whole answer ---- */

void api_answer_init(api_answer *a) {
    memset(a, 0, sizeof *a);
    buf_init(&a->content, LIM_RESPONSE_BYTES);
    buf_init(&a->reasoning, LIM_RESPONSE_BYTES);
    buf_init(&a->lp_text, LIM_RESPONSE_BYTES);
}

void api_answer_free(api_answer *a) {
    for (size_t i = 0; i < a->n_calls; i++) {
        free(a->calls[i].id);
        free(a->calls[i].name);
        buf_free(&a->calls[i].args);
    }
    free(a->calls);
    buf_free(&a->content);
    buf_free(&a->reasoning);
    buf_free(&a->lp_text);
    free(a->lps);
    memset(a, 0, sizeof *a);
}

/* The call for tool_index, made when its first event arrives. */
static api_tool_call *tool_call_at(api_answer *a, const gen_event *e) {
    if (e->tool_index < 0 || e->tool_index > LIM_MESSAGES)
        return NULL;
    size_t i = (size_t)e->tool_index;
    if (i < a->n_calls)
        return &a->calls[i];
    api_tool_call *v = realloc(a->calls, (i + 1) * sizeof *v);
    if (v == NULL)
        return NULL;
    a->calls = v;
    for (; a->n_calls <= i; a->n_calls++) {
        api_tool_call *c = &v[a->n_calls];
        c->id = strdup("");
        c->name = strdup("");
        buf_init(&c->args, LIM_RESPONSE_BYTES);
        if (c->id == NULL || c->name == NULL)
            return NULL;
    }
    return &v[i];
}

/* Replaces *field with s when s is given. */
static shimmy_err set_str(char **field, const char *s) {
    if (s == NULL)
        return SHIMMY_OK;
    char *copy = strdup(s);
    if (copy == NULL)
        return ERR_NOMEM;
    free(*field);
    *field = copy;
    return SHIMMY_OK;
}

/* Keeps a log-probability event: its text in lp_text, its record in lps. */
static shimmy_err add_logprob(api_answer *a, const gen_event *e) {
    if (a->n_lps == a->cap_lps) {
        size_t cap = a->cap_lps ? a->cap_lps * 2 : 64;
        api_logprob *v = realloc(a->lps, cap * sizeof *v);
        if (v == NULL)
            return ERR_NOMEM;
        a->lps = v;
        a->cap_lps = cap;
    }
    a->lps[a->n_lps] =
        (api_logprob){e->kind == GEN_EV_LOGPROB_TOP, e->logprob, a->lp_text.len, e->len};
    shimmy_err r = buf_append(&a->lp_text, e->text, e->len);
    a->n_lps += r == SHIMMY_OK;
    return r;
}

/* {"token":..,"logprob":..,"bytes":[..] -- left open for top_logprobs. */
static void lp_token(jsonw *w, const api_answer *a, const api_logprob *l) {
    const char *text = a->lp_text.data + l->off;
    char num[32];
    snprintf(num, sizeof num, "%.7g", isfinite(l->logprob) ? (double)l->logprob : -1e30);
    jsonw_raw(w, "{\"token\":");
    jsonw_str(w, text, l->len);
    jsonw_raw(w, ",\"logprob\":");
    jsonw_raw(w, num);
    jsonw_raw(w, ",\"bytes\":[");
    for (size_t i = 0; i < l->len; i++) {
        jsonw_raw(w, i > 0 ? "," : "");
        jsonw_int(w, (unsigned char)text[i]);
    }
    jsonw_raw(w, "]");
}

void api_write_logprobs(jsonw *w, const api_answer *a) {
    jsonw_raw(w, "[");
    for (size_t i = 0; i < a->n_lps; i++) {
        const api_logprob *l = &a->lps[i];
        if (!l->top) {
            jsonw_raw(w, i > 0 ? "]}," : "");
            lp_token(w, a, l);
            jsonw_raw(w, ",\"top_logprobs\":[");
        } else {
            jsonw_raw(w, i > 0 && a->lps[i - 1].top ? "," : "");
            lp_token(w, a, l);
            jsonw_raw(w, "}");
        }
    }
    jsonw_raw(w, a->n_lps > 0 ? "]}]" : "]");
}

shimmy_err api_answer_add_event(api_answer *a, const gen_event *e) {
    if (e->kind == GEN_EV_LOGPROB || e->kind == GEN_EV_LOGPROB_TOP)
        return add_logprob(a, e);
    if (e->kind == GEN_EV_CONTENT)
        return buf_append(&a->content, e->text, e->len);
    if (e->kind == GEN_EV_REASONING)
        return buf_append(&a->reasoning, e->text, e->len);
    api_tool_call *c = tool_call_at(a, e);
    if (c == NULL)
        return ERR_NOMEM;
    shimmy_err r = set_str(&c->id, e->tool_id);
    if (r == SHIMMY_OK)
        r = set_str(&c->name, e->tool_name);
    return r == SHIMMY_OK ? buf_append(&c->args, e->text, e->len) : r;
}

shimmy_err api_answer_add(api_answer *a, const gen_events *ev) {
    for (size_t i = 0; i < ev->n; i++) {
        shimmy_err r = api_answer_add_event(a, &ev->ev[i]);
        if (r != SHIMMY_OK)
            return r;
    }
    return SHIMMY_OK;
}

/* ---- errors ---- */

void api_reply_error(http_response *res, const api_proto *p, const api_error *e) {
    api_sink s;
    buf_reset(&res->body);
    res->stream = NULL;
    res->status = p->status != NULL ? p->status(e->code) : err_get(e->code)->http_status;
    res->content_type = "application/json";
    if (e->code == ERR_OVERLOADED)
        res->retry_after_s = LIM_RETRY_AFTER_S;
    api_sink_init(&s, &res->body, API_FRAME_NONE);
    if (p->error(e, &s) != SHIMMY_OK)
        res->status = 500; /* out of memory: an empty 500 is all that is left */
    api_sink_free(&s);
}

shimmy_err api_acquire_error(const api_proto *p, const char *name, shimmy_err e, const char *msg,
                             api_error *err) {
    if (e == ERR_MODEL_NOT_FOUND &&
        strncmp(msg, REGISTRY_PULL_FAILED, strlen(REGISTRY_PULL_FAILED)) != 0)
        return api_fail(err, e, "model", "%s%.256s%s", p->not_found[0], name, p->not_found[1]);
    if (strncmp(msg, REGISTRY_PULL_FAILED, strlen(REGISTRY_PULL_FAILED)) == 0)
        return api_fail(err, e, "model", "%s", msg + strlen(REGISTRY_PULL_FAILED));
    /* a 400 from the registry is a num_ctx above --max-ctx */
    return api_fail(err, e,
                    e == ERR_UNSUPPORTED ? "model"
                    : e == ERR_BAD_PARAM ? "options.num_ctx"
                                         : NULL,
                    "%s", msg);
}

shimmy_err api_acquire_kind(registry *reg, const api_proto *p, const char *name, bool rerank,
                            int num_ctx, engine_model **out, api_error *err) {
    const model_rec *d = NULL;
    char msg[1024] = "";
    bool wrong = registry_find(reg, name, &d, NULL) && d->meta.is_reranker != rerank;
    model_rec_unref(d);
    if (wrong)
        return api_fail(err, ERR_BAD_PARAM, "model",
                        rerank
                            ? "\"%.256s\" is not a reranker: POST /v1/rerank needs a model whose "
                              "pooling type is rank (bge-reranker, Qwen3-Reranker)"
                            : "\"%.256s\" is a reranker: it serves POST /v1/rerank, not generation",
                        name);
    shimmy_err e = registry_acquire_ctx(reg, name, num_ctx, out, msg, sizeof msg);
    return e == SHIMMY_OK ? SHIMMY_OK : api_acquire_error(p, name, e, msg, err);
}

/* The error a finished job carries, or SHIMMY_OK when it ended normally: a job the server
 * cancelled is an internal error for the client that still waits. */
static shimmy_err job_error(const gen_status *st, api_error *err) {
    if (st->finish == FINISH_ERROR)
        return api_fail(err, st->error != SHIMMY_OK ? st->error : ERR_INTERNAL, NULL, "%s",
                        st->errmsg);
    if (st->finish == FINISH_CANCELLED)
        return api_fail(err, ERR_INTERNAL, NULL, "generation was cancelled by the server");
    return SHIMMY_OK;
}

/* The parameter engine_submit named for an ERR_BAD_PARAM; a refused schema without one is the
 * parameter that carried it. */
static void submit_param(const api_call *c, const char *param, api_error *err) {
    if (param[0] == '\0' && c->gen.params.json_schema != NULL && c->schema_param != NULL)
        param = c->schema_param;
    snprintf(err->param, sizeof err->param, "%s", param);
}

/* What the template must be able to do for this call: a 400 when it cannot. */
static shimmy_err check_template(engine_model *m, const api_call *c, api_error *err) {
    char *source = NULL;
    engine_tmpl_caps caps = {0};
    if (!c->need_tools && !c->need_thinking)
        return SHIMMY_OK;
    shimmy_err e = engine_model_template(m, &source, &caps);
    free(source);
    if (e != SHIMMY_OK)
        return api_fail(err, e, NULL, "the model's chat template could not be read");
    if (c->need_tools && !caps.tools)
        return api_fail(err, ERR_BAD_PARAM, "tools", "\"%.256s\" does not support tools", c->model);
    if (c->need_thinking && !caps.thinking)
        return api_fail(err, ERR_BAD_PARAM, "think", "\"%.256s\" does not support thinking",
                        c->model);
    return SHIMMY_OK;
}

/* ---- the path ---- */

/* One request from acquire to release. */
typedef struct gen_run {
    const api_proto *p;
    shimmy_app *app;      /* borrowed */
    registry *reg;        /* borrowed */
    http_note *note;      /* borrowed: the request's note for the log and metrics; may be NULL */
    http_conn *conn;      /* borrowed */
    json_t *root;         /* the body, parsed once; owned */
    api_call call;        /* owns call.wire */
    engine_model *model;  /* acquired */
    gen_job *jobs[LIM_N]; /* owned: one per choice */
    int n_jobs;
    bool done[LIM_N];      /* stream: the choice's end was written */
    gen_status sts[LIM_N]; /* each choice's last status */
    gen_events ev;         /* one wait's events; reused */
    api_sink sink;         /* streaming */
    bool started;          /* the opening frame was written */
    bool ended;            /* the last frame was written */
    int64_t wrote_ns;      /* monotonic: when the stream last wrote a frame */
    char *chat_sys;        /* owned: the chat JSON with the presets' system prompt added, or NULL */
    api_stop_fn stop;      /* NULL: the HTTP connection's hang-up stops the request */
    void *stop_ctx;
} gen_run;

/* True when the request is to stop: the client hung up, or the caller's stop says so. */
static bool run_gone(gen_run *g) {
    return g->stop != NULL ? g->stop(g->stop_ctx) : http_conn_gone(g->conn);
}

/* Cancels the jobs still running and waits (up to LIM_CANCEL_CONFIRM_MS) until the engine
 * confirms each stopped: its slot is free before the caller reports the end. */
static void cancel_jobs(gen_run *g) {
    for (int i = 0; i < g->n_jobs; i++)
        engine_job_cancel(g->jobs[i]);
    int64_t deadline = clock_mono_ns() + (int64_t)LIM_CANCEL_CONFIRM_MS * 1000000;
    for (int i = 0; i < g->n_jobs; i++) {
        while (!g->sts[i].done && clock_mono_ns() < deadline)
            if (engine_job_wait(g->jobs[i], 50, &g->ev, &g->sts[i]) != SHIMMY_OK)
                break;
    }
}

static void run_free(gen_run *g) {
    if (g->note != NULL && g->n_jobs > 0 && !g->ended && g->note->outcome == NULL)
        g->note->outcome = "client_gone";
    if (!g->ended)
        cancel_jobs(g);
    for (int i = 0; i < g->n_jobs; i++)
        engine_job_release(g->jobs[i]);
    if (g->model != NULL)
        registry_release_keep(g->reg, g->model, g->call.keep_ns);
    if (g->p->free != NULL)
        g->p->free(&g->call);
    gen_events_free(&g->ev);
    api_sink_free(&g->sink);
    json_decref(g->root);
    free(g->chat_sys);
    free(g);
}

/* Submits one job per choice: choice i's seed is the request's + i. On error the jobs already
 * queued are dropped. */
static shimmy_err submit_jobs(gen_run *g, char *msg, size_t msglen, char *param, size_t plen) {
    int n = g->call.n_choices > 1 ? g->call.n_choices : 1;
    gen_request req = g->call.gen;
    if (n > LIM_N || (n > 1 && (g->p->finish == NULL || g->p->whole_n == NULL))) {
        snprintf(param, plen, "n");
        return n > LIM_N
                   ? err_set(msg, msglen, ERR_BAD_PARAM, "'n' must be between 1 and %d", LIM_N)
                   : err_set(msg, msglen, ERR_BAD_PARAM, "'n' must be 1 on this endpoint");
    }
    for (g->n_jobs = 0; g->n_jobs < n; g->n_jobs++) {
        req.params.seed = g->call.gen.params.seed + (uint32_t)g->n_jobs;
        shimmy_err e = engine_submit(g->model, &req, &g->jobs[g->n_jobs], msg, msglen, param, plen);
        if (e != SHIMMY_OK)
            return e; /* run_free cancels the others */
    }
    return SHIMMY_OK;
}

/* Acquires the model, checks the template and submits. */
static shimmy_err submit(gen_run *g, api_error *err) {
    char msg[1024] = "";
    shimmy_err e =
        api_acquire_kind(g->reg, g->p, g->call.model, false, g->call.num_ctx, &g->model, err);
    g->call.load_ns = clock_mono_ns() - g->call.t0_ns;
    if (e != SHIMMY_OK)
        return e;
    if (g->note != NULL)
        g->note->model_served = true;
    if ((e = check_template(g->model, &g->call, err)) != SHIMMY_OK)
        return e;
    char param[sizeof err->param] = "";
    e = submit_jobs(g, msg, sizeof msg, param, sizeof param);
    if (e == SHIMMY_OK)
        return SHIMMY_OK;
    api_fail(err, e, NULL, "%s", msg);
    if (e == ERR_BAD_PARAM || (e == ERR_TOO_LARGE && param[0] != '\0')) /* a media item */
        submit_param(&g->call, param, err);
    else if (e == ERR_CONTEXT_LENGTH) /* the field that carried the prompt, as OpenAI names it */
        snprintf(err->param, sizeof err->param, "%s",
                 g->call.gen.chat_json != NULL ? "messages" : "prompt");
    return e;
}

/* Empty prompt: load the model, or unload it with keep_alive 0 (Ollama's run and stop). */
static shimmy_err load_only(gen_run *g, http_response *res, api_error *err) {
    char msg[1024] = "";
    bool unload = g->call.keep_ns == 0;
    shimmy_err e = unload ? registry_unload(g->reg, g->call.model)
                          : registry_acquire_ctx(g->reg, g->call.model, g->call.num_ctx, &g->model,
                                                 msg, sizeof msg);
    g->call.load_ns = clock_mono_ns() - g->call.t0_ns;
    if (e == ERR_MODEL_NOT_FOUND && unload)
        e = SHIMMY_OK; /* nothing loaded under that name: nothing to unload */
    if (e != SHIMMY_OK)
        return api_acquire_error(g->p, g->call.model, e, msg, err);
    api_sink s;
    api_sink_init(&s, &res->body, API_FRAME_NONE);
    e = g->p->loaded(&g->call, unload, &s);
    api_sink_free(&s);
    return e;
}

/* Notes the job's progress for the request log and the metrics. */
static void note_status(gen_run *g, const gen_status *st) {
    http_note *n = g->note;
    if (n == NULL)
        return;
    n->prompt_tokens = st->prompt_tokens;
    n->cached_tokens = st->cached_tokens;
    n->output_tokens = st->completion_tokens;
    if (n->first_ns == 0 && st->completion_tokens > 0)
        n->first_ns = clock_mono_ns();
    if (st->done && n->gen_end_ns == 0) {
        n->gen_end_ns = clock_mono_ns();
        n->outcome = finish_reason_str(st->finish);
    }
}

/* The choices' statuses as one: the prompt once, every choice's output; done when all are;
 * the first unusual finish (error, cancel, length) when there is one. */
static void sum_status(const gen_run *g, gen_status *sum) {
    *sum = g->sts[0];
    for (int i = 1; i < g->n_jobs; i++) {
        const gen_status *st = &g->sts[i];
        sum->completion_tokens += st->completion_tokens;
        sum->draft_tokens += st->draft_tokens;
        sum->draft_accepted += st->draft_accepted;
        sum->done = sum->done && st->done;
        sum->gen_ns = st->gen_ns > sum->gen_ns ? st->gen_ns : sum->gen_ns;
        if (sum->finish == FINISH_STOP || sum->finish == FINISH_TOOL_CALLS)
            *sum = (gen_status){.done = sum->done,
                                .finish = st->finish,
                                .error = st->error,
                                .prompt_tokens = sum->prompt_tokens,
                                .cached_tokens = sum->cached_tokens,
                                .completion_tokens = sum->completion_tokens,
                                .draft_tokens = sum->draft_tokens,
                                .draft_accepted = sum->draft_accepted,
                                .queued_ns = sum->queued_ns,
                                .prompt_ns = sum->prompt_ns,
                                .gen_ns = sum->gen_ns};
        if (st->finish == FINISH_ERROR)
            snprintf(sum->errmsg, sizeof sum->errmsg, "%s", st->errmsg);
    }
}

/* engine_job_wait on choice i (its events into g->ev, the writers' c->choice = i), noted. */
static shimmy_err job_wait_i(gen_run *g, int i, int timeout_ms, gen_status *st) {
    shimmy_err e = engine_job_wait(g->jobs[i], timeout_ms, &g->ev, st);
    g->call.choice = i;
    if (e != SHIMMY_OK)
        return e;
    g->sts[i] = *st;
    gen_status sum;
    sum_status(g, &sum);
    note_status(g, &sum);
    return e;
}

static shimmy_err job_wait(gen_run *g, int timeout_ms, gen_status *st) {
    return job_wait_i(g, 0, timeout_ms, st);
}

/* The drain timed out (SIGTERM, --drain-timeout): the request ends with an error now. */
static bool server_stopping(const gen_run *g) {
    return g->app != NULL && atomic_load(&g->app->stopping);
}

/* Waits until choice i is done (or the client is gone) with everything in *a. */
static shimmy_err wait_all(gen_run *g, int i, api_answer *a, gen_status *st) {
    for (;;) {
        shimmy_err e = job_wait_i(g, i, LIM_DISCONNECT_POLL_MS, st);
        if (e == SHIMMY_OK)
            e = api_answer_add(a, &g->ev);
        if (e != SHIMMY_OK || st->done)
            return e;
        if (run_gone(g))
            return ERR_CANCELLED;
        if (server_stopping(g))
            return ERR_SHUTTING_DOWN;
    }
}

/* The whole answer of n > 1 choices, through the row's whole_n. */
static shimmy_err reply_whole_n(gen_run *g, http_response *res, api_error *err) {
    api_answer a[LIM_N];
    gen_status sum;
    api_sink s;
    shimmy_err e = SHIMMY_OK;
    for (int i = 0; i < g->n_jobs; i++)
        api_answer_init(&a[i]);
    for (int i = 0; i < g->n_jobs && e == SHIMMY_OK; i++)
        e = wait_all(g, i, &a[i], &g->sts[i]);
    sum_status(g, &sum);
    if (e == ERR_TOO_LARGE)
        e = api_fail(err, ERR_INTERNAL, NULL, "the response is larger than the limit of %u MiB",
                     LIM_RESPONSE_BYTES >> 20);
    else if (e != SHIMMY_OK)
        api_fail(err, e, NULL, "%s", "");
    else
        e = job_error(&sum, err);
    if (e == SHIMMY_OK) {
        g->ended = true;
        api_sink_init(&s, &res->body, API_FRAME_NONE);
        if ((e = g->p->whole_n(&g->call, a, g->sts, g->n_jobs, &sum, &s)) != SHIMMY_OK)
            api_fail(err, e, NULL, "%s", "");
        api_sink_free(&s);
    }
    for (int i = 0; i < g->n_jobs; i++)
        api_answer_free(&a[i]);
    return e;
}

static shimmy_err reply_whole(gen_run *g, http_response *res, api_error *err) {
    api_answer a;
    gen_status st;
    api_sink s;
    if (g->n_jobs > 1)
        return reply_whole_n(g, res, err);
    memset(&st, 0, sizeof st);
    api_answer_init(&a);
    shimmy_err e = wait_all(g, 0, &a, &st);
    if (e == ERR_TOO_LARGE)
        e = api_fail(err, ERR_INTERNAL, NULL, "the response is larger than the limit of %u MiB",
                     LIM_RESPONSE_BYTES >> 20);
    else if (e != SHIMMY_OK)
        api_fail(err, e, NULL, "%s", "");
    else
        e = job_error(&st, err);
    if (e == SHIMMY_OK) {
        g->ended = true;
        api_sink_init(&s, &res->body, API_FRAME_NONE);
        if ((e = g->p->whole(&g->call, &a, &st, &s)) != SHIMMY_OK)
            api_fail(err, e, NULL, "%s", "");
        api_sink_free(&s);
    }
    api_answer_free(&a);
    return e;
}

/* An error after the stream began: one error frame ends it. */
static int stream_fail(gen_run *g, const api_error *err) {
    g->ended = true;
    if (g->p->stream_error != NULL)
        return g->p->stream_error(&g->call, err, &g->sink) == SHIMMY_OK ? 1 : -1;
    return g->p->error(err, &g->sink) == SHIMMY_OK ? 1 : -1;
}

static int stream_done(gen_run *g, const gen_status *st) {
    api_error err;
    api_error_clear(&err);
    if (job_error(st, &err) != SHIMMY_OK)
        return stream_fail(g, &err);
    g->ended = true;
    return g->p->end(&g->call, st, &g->sink) == SHIMMY_OK ? 1 : -1;
}

static int choice_done(gen_run *g, int i, const gen_status *st);

/* The opening frame, once the prompt's size is known (a wait that does not block). */
static int stream_open(gen_run *g, gen_status *st) {
    g->started = true;
    g->wrote_ns = clock_mono_ns();
    memset(st, 0, sizeof *st);
    if (job_wait(g, 0, st) == SHIMMY_OK)
        g->call.prompt_tokens = st->prompt_tokens;
    if (g->p->start(&g->call, &g->sink) != SHIMMY_OK)
        return -1;
    if (g->ev.n > 0 && g->p->events(&g->call, &g->ev, &g->sink) != SHIMMY_OK)
        return -1;
    if (st->done && g->n_jobs > 1)
        return choice_done(g, 0, st);
    return st->done ? stream_done(g, st) : 0;
}

/* Nothing to send for a while: the row's keep-alive frame, if it has one. */
static bool stream_idle(gen_run *g) {
    int64_t now = clock_mono_ns();
    if (g->p->idle == NULL || now - g->wrote_ns < (int64_t)LIM_STREAM_IDLE_MS * 1000000)
        return false;
    g->wrote_ns = now;
    return g->p->idle(&g->call, &g->sink) == SHIMMY_OK;
}

/* Choice i ended (n > 1): its finish frame, or the stream's error frame. Returns 0, or what
 * stream_next returns to end the stream. */
static int choice_done(gen_run *g, int i, const gen_status *st) {
    api_error err;
    api_error_clear(&err);
    if (job_error(st, &err) != SHIMMY_OK)
        return stream_fail(g, &err);
    g->done[i] = true;
    g->call.choice = i;
    return g->p->finish(&g->call, st, &g->sink) == SHIMMY_OK ? 0 : -1;
}

/* One round over the choices still running (n > 1): each one's news, written with its index;
 * a choice that ended gets its finish frame; the last one the end. Blocks on the first running
 * choice when no choice had news. Returns 1 at the end, -1 on a write error, else 0. */
static int stream_round(gen_run *g, bool *wrote) {
    gen_status st;
    api_error err;
    int first = -1, left = 0;
    for (int pass = 0; pass < 2 && !*wrote; pass++) {
        for (int i = 0; i < g->n_jobs; i++) {
            if (g->done[i] || (pass == 1 && i != first))
                continue;
            first = first < 0 ? i : first;
            int timeout = pass == 1 ? LIM_DISCONNECT_POLL_MS : 0;
            if (job_wait_i(g, i, timeout, &st) != SHIMMY_OK) {
                api_fail(&err, ERR_INTERNAL, NULL, "the engine could not deliver the text");
                return stream_fail(g, &err);
            }
            if (g->ev.n > 0 && g->p->events(&g->call, &g->ev, &g->sink) != SHIMMY_OK)
                return -1;
            *wrote = *wrote || g->ev.n > 0 || st.done;
            int r = st.done ? choice_done(g, i, &st) : 0;
            if (r != 0)
                return r;
        }
    }
    for (int i = 0; i < g->n_jobs; i++)
        left += !g->done[i];
    if (left > 0)
        return 0;
    gen_status sum;
    sum_status(g, &sum);
    g->call.choice = -1;
    return stream_done(g, &sum);
}

/* stream_next for n > 1 choices. */
static int stream_next_n(gen_run *g, buf *out) {
    size_t start = out->len;
    api_error err;
    for (;;) {
        bool wrote = false;
        if (run_gone(g))
            return -1;
        if (server_stopping(g)) {
            api_fail(&err, ERR_SHUTTING_DOWN, NULL,
                     "the server is shutting down: the drain "
                     "timeout passed before the answer was complete");
            return stream_fail(g, &err);
        }
        int r = stream_round(g, &wrote);
        if (r != 0 || out->len > start) {
            g->wrote_ns = clock_mono_ns();
            return r;
        }
        if (stream_idle(g))
            return 0;
    }
}

static int stream_next(void *ctx, buf *out) {
    gen_run *g = ctx;
    if (g->n_jobs > 1 && g->started && !g->ended) {
        g->sink.out = out;
        return stream_next_n(g, out);
    }
    size_t start = out->len;
    gen_status st;
    api_error err;
    g->sink.out = out;
    if (g->ended)
        return 1;
    if (!g->started) {
        int r = stream_open(g, &st);
        if (r != 0 || out->len > start)
            return r; /* the client sees the response begin before the first token */
    }
    for (;;) {
        if (run_gone(g))
            return -1;
        if (server_stopping(g)) {
            api_fail(&err, ERR_SHUTTING_DOWN, NULL,
                     "the server is shutting down: the drain "
                     "timeout passed before the answer was complete");
            if (g->note != NULL)
                g->note->outcome = "shutdown";
            return stream_fail(g, &err);
        }
        if (job_wait(g, LIM_DISCONNECT_POLL_MS, &st) != SHIMMY_OK) {
            log_warn("api: stream of '%s': engine wait failed", g->call.model);
            api_fail(&err, ERR_INTERNAL, NULL, "the engine could not deliver the text");
            return stream_fail(g, &err);
        }
        if (g->ev.n > 0 && g->p->events(&g->call, &g->ev, &g->sink) != SHIMMY_OK)
            return -1;
        if (st.done)
            return stream_done(g, &st);
        if (out->len > start) {
            g->wrote_ns = clock_mono_ns();
            return 0;
        }
        if (stream_idle(g))
            return 0;
    }
}

static void stream_free(void *ctx) {
    run_free(ctx);
}

/* Parses the body into g; on error fills err. */
static shimmy_err parse(gen_run *g, const http_request *req, api_error *err) {
    shimmy_err e =
        api_json_load_object(req->body, req->body_len, &g->root, err->message, sizeof err->message);
    if (e != SHIMMY_OK)
        return err->code = e;
    int64_t t0 = g->call.t0_ns;
    e = g->p->parse(req->app, g->root, &g->call, err);
    g->call.t0_ns = t0; /* the parser fills the call from zero */
    char served[256];
    if (g->note != NULL && g->call.model != NULL) /* an alias counts as its model */
        snprintf(g->note->model, sizeof g->note->model, "%s",
                 api_model_served_name(g->app, g->call.model, served, sizeof served));
    if (e == SHIMMY_OK && g->call.gen.chat_json != NULL &&
        (g->chat_sys = api_presets_add_system(g->app, g->call.model, g->call.gen.chat_json)) !=
            NULL)
        g->call.gen.chat_json = g->chat_sys; /* the presets' system prompt (api/presets.h) */
    return e;
}

static gen_run *run_new(const http_request *req, const api_proto *p) {
    shimmy_app *app = req->app;
    gen_run *g = calloc(1, sizeof *g);
    if (g == NULL)
        return NULL;
    g->p = p;
    g->app = app;
    g->note = req->note;
    g->reg = app->models;
    g->conn = req->conn;
    g->call.t0_ns = clock_mono_ns();
    gen_events_init(&g->ev);
    api_sink_init(&g->sink, NULL, p->framing);
    return g;
}

/* Hands g to the response as a stream (the server frees it). */
static void stream(gen_run *g, http_response *res) {
    res->status = 200;
    res->content_type = g->p->content_type;
    res->stream = stream_next;
    res->stream_ctx = g;
    res->stream_free = stream_free;
}

void api_gen_serve(const http_request *req, http_response *res, const api_proto *p) {
    api_gen_serve_stop(req, res, p, NULL, NULL);
}

void api_gen_serve_stop(const http_request *req, http_response *res, const api_proto *p,
                        api_stop_fn stop, void *stop_ctx) {
    api_error err;
    api_error_clear(&err);
    gen_run *g = run_new(req, p);
    if (g != NULL)
        g->stop = stop, g->stop_ctx = stop_ctx;
    if (g == NULL) {
        api_fail(&err, ERR_NOMEM, NULL, "out of memory");
        api_reply_error(res, p, &err);
        return;
    }
    shimmy_err e = parse(g, req, &err);
    if (e == SHIMMY_OK && g->call.load_only)
        e = load_only(g, res, &err);
    else if (e == SHIMMY_OK && (e = submit(g, &err)) == SHIMMY_OK && g->call.stream) {
        stream(g, res);
        return;
    } else if (e == SHIMMY_OK)
        e = reply_whole(g, res, &err);
    if (e != SHIMMY_OK)
        api_reply_error(res, p, &err);
    run_free(g);
}

/* ---- token counts ---- */

/* Acquires the model, counts the request's prompt tokens as engine_submit would (its media
 * included: engine_count) and answers through p->counted. */
static shimmy_err count(gen_run *g, http_response *res, api_error *err) {
    char msg[1024] = "", param[sizeof err->param] = "";
    int n = 0;
    shimmy_err e = registry_acquire(g->reg, g->call.model, &g->model, msg, sizeof msg);
    if (e != SHIMMY_OK)
        return api_acquire_error(g->p, g->call.model, e, msg, err);
    if ((e = check_template(g->model, &g->call, err)) != SHIMMY_OK)
        return e;
    e = engine_count(g->model, &g->call.gen, &n, msg, sizeof msg, param, sizeof param);
    if (e != SHIMMY_OK) {
        api_fail(err, e, NULL, "%s", msg);
        if (e == ERR_BAD_PARAM || (e == ERR_TOO_LARGE && param[0] != '\0')) /* a media item */
            submit_param(&g->call, param, err);
        return e;
    }
    api_sink s;
    api_sink_init(&s, &res->body, API_FRAME_NONE);
    if ((e = g->p->counted(&g->call, n, &s)) != SHIMMY_OK)
        api_fail(err, e, NULL, "%s", "");
    api_sink_free(&s);
    return e;
}

void api_count_serve(const http_request *req, http_response *res, const api_proto *p) {
    api_error err;
    api_error_clear(&err);
    gen_run *g = run_new(req, p);
    if (g == NULL) {
        api_fail(&err, ERR_NOMEM, NULL, "out of memory");
        api_reply_error(res, p, &err);
        return;
    }
    shimmy_err e = parse(g, req, &err);
    if (e == SHIMMY_OK)
        e = count(g, res, &err);
    if (e != SHIMMY_OK)
        api_reply_error(res, p, &err);
    run_free(g);
}
