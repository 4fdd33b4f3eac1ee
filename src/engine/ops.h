/* engine/ops: how engine.h reaches the engine that serves a model. A model is served either in
 * this process (sched.c, the engine thread itself) or by a child process that runs sched.c for
 * it (remote.c, the default for `shimmy serve`: ADR 0005); both put an engine_hdr first in their
 * model and job structs, and engine.c dispatches every engine.h call through its ops.
 * Internal to engine/. */
#ifndef SHIMMY_ENGINE_OPS_H
#define SHIMMY_ENGINE_OPS_H

#include "engine/engine.h"

typedef struct engine_ops {
    void (*model_free)(engine_model *m);
    void (*get_info)(engine_model *m, engine_model_info *info);
    shimmy_err (*submit)(engine_model *m, const gen_request *req, gen_job **out, char *err,
                         size_t errlen, char *param, size_t paramlen);
    shimmy_err (*apply_template)(engine_model *m, const char *chat_json, char **out, char *err,
                                 size_t errlen, char *param, size_t paramlen);
    shimmy_err (*count)(engine_model *m, const gen_request *req, int *n, char *err, size_t errlen,
                        char *param, size_t paramlen);
    shimmy_err (*tokenize)(engine_model *m, const char *text, bool add_special, bool parse_special,
                           int32_t **out, size_t *n, char *err, size_t errlen);
    shimmy_err (*token_piece)(engine_model *m, int32_t t, buf *out);
    shimmy_err (*detokenize)(engine_model *m, const int32_t *tokens, size_t n, buf *out, char *err,
                             size_t errlen);
    shimmy_err (*model_template)(engine_model *m, char **source, engine_tmpl_caps *caps);
    shimmy_err (*embed)(engine_model *m, const char *const *texts, size_t n, float **out,
                        int *n_embd, int *n_tokens, char *err, size_t errlen);
    shimmy_err (*embed_inputs)(engine_model *m, const engine_embed_input *in, size_t n,
                               bool truncate, float **out, int *n_embd, int *n_tokens, char *err,
                               size_t errlen);
    shimmy_err (*rerank)(engine_model *m, const char *query, const char *const *docs, size_t n,
                         float **scores, int *n_tokens, char *err, size_t errlen);
    shimmy_err (*job_wait)(gen_job *job, int timeout_ms, gen_events *ev, gen_status *st);
    void (*job_cancel)(gen_job *job);
    void (*job_release)(gen_job *job);
} engine_ops;

/* The first member of every model and job struct of an engine. */
typedef struct engine_hdr {
    const engine_ops *ops;
} engine_hdr;

/* sched.c: the engine in this process. */
extern const engine_ops sched_ops;

/* Called on the engine thread where its jobs may have news for their waiters: after jobs got
 * their slots (or were dropped from the queue) and after each step, before it decodes again or
 * sleeps. An engine process (child.c) takes its jobs' news there and writes them to the server
 * itself, instead of waking a thread per job. It may call engine_job_wait (timeout 0),
 * engine_job_cancel and engine_job_release on the model's jobs, nothing else of the model; it
 * runs between steps, so it must not block for long. */
typedef void (*sched_news_fn)(void *ctx);

/* Loads a model into an engine thread of this process. news (may be NULL) and its ctx
 * (borrowed, for the model's life): see sched_news_fn. */
shimmy_err sched_model_load(const engine_options *o, sched_news_fn news, void *news_ctx,
                            engine_model **out, char *err, size_t errlen);

/* The server's media marker, taken by an engine process with its load options (a warm engine
 * process starts before the server has made its marker). Before the model loads. */
void sched_media_marker_set(const char *marker);

/* remote.c: a child process runs sched.c for the model. */
extern const engine_ops remote_ops;
shimmy_err remote_model_load(const engine_options *o, engine_model **out, char *err, size_t errlen);
/* engine_start's check run in the warm engine process: false when there is none (the caller
 * runs it here); true with its result in *rc, note and err. */
bool remote_start_check(const engine_options *o, shimmy_err *rc, char *note, size_t notelen,
                        char *err, size_t errlen);

/* start.c: the check of engine_start in the process that loaded the backend modules (this one,
 * or the warm engine process for the server). */
shimmy_err engine_check_here(const engine_options *o, char *note, size_t notelen, char *err,
                             size_t errlen);

#endif
