/* openai: the handlers of POST /v1/chat/completions and POST /v1/completions. Parse (openai_wire),
 * acquire the model from the registry, submit to the engine, then either wait for the whole text
 * (polling for a vanished client) or stream it as SSE chunks. The model and the job are released
 * when the response ends: at once for a plain response, in stream_free for a stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "api/openai_wire.h"
#include "core/limits.h"
#include "core/log.h"

/* ---- acquiring and submitting ---- */

/* Finds and loads the model; on error answers res and returns the code. */
static shimmy_err acquire(registry *reg, const char *name, engine_model **m, http_response *res) {
    char err[1024] = "";
    shimmy_err e = registry_acquire(reg, name, m, err, sizeof err);
    if (e == ERR_UNSUPPORTED) {
        api_reply_error(res, e, err, "model"); /* an MLX model: the reason, 501 */
    } else if (e == ERR_MODEL_NOT_FOUND) {
        char msg[512];
        snprintf(msg, sizeof msg,
                 "The model '%.256s' does not exist (GET /v1/models lists the models)", name);
        api_reply_error(res, e, msg, "model");
    } else if (e != SHIMMY_OK) {
        api_reply_error(res, e, err, NULL);
    }
    return e;
}


/* ---- the whole answer at once ---- */

/* Waits until the job is done (or the client is gone) with the text in *text. */
static shimmy_err wait_all(const http_request *req, gen_job *job, buf *text, gen_status *st) {
    for (;;) {
        shimmy_err e = engine_job_wait(job, LIM_DISCONNECT_POLL_MS, text, st);
        if (e != SHIMMY_OK || st->done)
            return e;
        if (http_conn_gone(req->conn))
            return ERR_CANCELLED;
    }
}

static void reply_whole(const http_request *req, http_response *res, gen_job *job,
                        const oai_meta *meta) {
    buf text;
    gen_status st;
    const char *msg = NULL;
    char toobig[96];
    buf_init(&text, LIM_RESPONSE_BYTES);
    memset(&st, 0, sizeof st);
    shimmy_err e = wait_all(req, job, &text, &st);
    if (e != SHIMMY_OK) {
        engine_job_cancel(job);
        if (e == ERR_TOO_LARGE) {
            snprintf(toobig, sizeof toobig, "the response is larger than the limit of %u MiB",
                     LIM_RESPONSE_BYTES >> 20);
            msg = toobig;
        }
        api_reply_error(res, e == ERR_TOO_LARGE ? ERR_INTERNAL : e, msg, NULL);
    } else if ((e = api_job_error(&st, &msg)) != SHIMMY_OK) {
        api_reply_error(res, e, msg, NULL);
    } else {
        api_body_ready(res);
        e = oai_response(meta, buf_str(&text), text.len, finish_reason_str(st.finish), &st,
                         &res->body);
        if (e != SHIMMY_OK)
            api_reply_error(res, e, NULL, NULL);
    }
    buf_free(&text);
}

/* ---- streaming ---- */

typedef struct oai_stream {
    registry *reg;      /* borrowed */
    engine_model *model; /* acquired; released in stream_free */
    gen_job *job;       /* owned */
    http_conn *conn;    /* borrowed, for http_conn_gone */
    oai_meta meta;
    buf text;           /* text of one wait; reused */
    bool started;       /* first chunk sent */
    bool ended;         /* last chunk sent */
} oai_stream;

/* The last chunks: finish reason, usage when asked for, [DONE]; or the error of the job. */
static int stream_end(oai_stream *s, const gen_status *st, buf *out) {
    const char *msg = NULL;
    shimmy_err e = api_job_error(st, &msg);
    s->ended = true;
    if (e != SHIMMY_OK)
        return oai_sse_error(e, msg, out) == SHIMMY_OK ? 1 : -1;
    e = oai_sse_finish(&s->meta, finish_reason_str(st->finish), out);
    if (e == SHIMMY_OK && s->meta.include_usage)
        e = oai_sse_usage(&s->meta, st, out);
    if (e == SHIMMY_OK)
        e = oai_sse_done(out);
    return e == SHIMMY_OK ? 1 : -1;
}

static int stream_next(void *ctx, buf *out) {
    oai_stream *s = ctx;
    size_t start = out->len;
    gen_status st;
    if (s->ended)
        return 1;
    if (!s->started) {
        s->started = true;
        if (oai_sse_first(&s->meta, out) != SHIMMY_OK)
            return -1;
        if (out->len > start)
            return 0; /* the client sees the response begin before the first token */
    }
    for (;;) {
        if (http_conn_gone(s->conn))
            return -1;
        buf_reset(&s->text);
        shimmy_err e = engine_job_wait(s->job, LIM_DISCONNECT_POLL_MS, &s->text, &st);
        if (e != SHIMMY_OK) {
            log_warn("openai: stream %s: engine wait failed: %s", s->meta.id, err_get(e)->name);
            s->ended = true;
            return oai_sse_error(ERR_INTERNAL, "the engine could not deliver the text", out) ==
                           SHIMMY_OK ? 1 : -1;
        }
        if (s->text.len > 0 && oai_sse_text(&s->meta, s->text.data, s->text.len, out) != SHIMMY_OK)
            return -1;
        if (st.done)
            return stream_end(s, &st, out);
        if (out->len > start)
            return 0;
    }
}

static void stream_free(void *ctx) {
    oai_stream *s = ctx;
    if (!s->ended)
        engine_job_cancel(s->job);
    engine_job_release(s->job);
    registry_release(s->reg, s->model);
    buf_free(&s->text);
    free(s);
}

/* Hands the job to a stream; on failure releases it and answers the error. */
static void reply_stream(const http_request *req, http_response *res, registry *reg,
                         engine_model *m, gen_job *job, const oai_meta *meta) {
    oai_stream *s = calloc(1, sizeof *s);
    if (s == NULL) {
        engine_job_release(job);
        registry_release(reg, m);
        api_reply_error(res, ERR_NOMEM, NULL, NULL);
        return;
    }
    s->reg = reg;
    s->model = m;
    s->job = job;
    s->conn = req->conn;
    s->meta = *meta;
    buf_init(&s->text, LIM_RESPONSE_BYTES);
    res->status = 200;
    res->content_type = "text/event-stream";
    res->stream = stream_next;
    res->stream_ctx = s;
    res->stream_free = stream_free;
}

/* ---- the handlers ---- */

static void handle(const http_request *req, http_response *res, bool chat) {
    shimmy_app *app = req->app;
    gen_params defaults;
    oai_request r;
    oai_error oe;
    engine_model *m = NULL;
    gen_job *job = NULL;
    oai_meta meta;
    char err[512] = "";
    gen_params_default(&defaults);
    shimmy_err e = chat ? oai_parse_chat(req->body, req->body_len, &defaults, &r, &oe)
                        : oai_parse_completion(req->body, req->body_len, &defaults, &r, &oe);
    if (e != SHIMMY_OK) {
        api_reply_error(res, e, oe.message, oe.param);
        return;
    }
    if (acquire(app->models, r.model, &m, res) != SHIMMY_OK)
        goto out;
    e = engine_submit(m, &r.gen, &job, err, sizeof err);
    if (e != SHIMMY_OK) {
        registry_release(app->models, m);
        api_reply_error(res, e, err, NULL);
        goto out;
    }
    oai_meta_init(&meta, chat, r.model, r.include_usage);
    if (r.stream) {
        reply_stream(req, res, app->models, m, job, &meta); /* takes m and job */
    } else {
        reply_whole(req, res, job, &meta);
        engine_job_release(job);
        registry_release(app->models, m);
    }
out:
    oai_request_free(&r);
}

void oai_handle_chat(const http_request *req, http_response *res) { handle(req, res, true); }

void oai_handle_completions(const http_request *req, http_response *res) {
    handle(req, res, false);
}
