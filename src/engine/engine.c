/* engine/engine: engine.h's per-model and per-job calls, dispatched to the engine that serves
 * the model (engine/ops.h): in this process (sched.c) or in the model's child process
 * (remote.c). engine_model_load chooses by engine_options.isolate. */
#include "engine/ops.h"

static const engine_ops *model_ops(engine_model *m) {
    return ((engine_hdr *)m)->ops;
}
static const engine_ops *job_ops(gen_job *j) {
    return ((engine_hdr *)j)->ops;
}

/* The media path: libmtmd loads engine_options.mmproj (llama_backend.c, ADR 0011). */
bool engine_supports_media(void) {
    return true;
}

shimmy_err engine_model_load(const engine_options *o, engine_model **out, char *err,
                             size_t errlen) {
    return o->isolate ? remote_model_load(o, out, err, errlen)
                      : sched_model_load(o, NULL, NULL, out, err, errlen);
}

void engine_model_free(engine_model *m) {
    if (m != NULL)
        model_ops(m)->model_free(m);
}

void engine_model_get_info(engine_model *m, engine_model_info *info) {
    model_ops(m)->get_info(m, info);
}

/* The field at fault goes to the caller's param, or to scratch when the caller has none: the
 * backends always get a buffer, emptied. */
static char *param_buf(char *param, size_t *paramlen, char *scratch, size_t n) {
    if (param == NULL || *paramlen == 0) {
        param = scratch;
        *paramlen = n;
    }
    param[0] = '\0';
    return param;
}

shimmy_err engine_submit(engine_model *m, const gen_request *req, gen_job **out, char *err,
                         size_t errlen, char *param, size_t paramlen) {
    char scratch[8];
    param = param_buf(param, &paramlen, scratch, sizeof scratch);
    return model_ops(m)->submit(m, req, out, err, errlen, param, paramlen);
}

shimmy_err engine_apply_template(engine_model *m, const char *chat_json, char **out, char *err,
                                 size_t errlen, char *param, size_t paramlen) {
    return model_ops(m)->apply_template(m, chat_json, out, err, errlen, param, paramlen);
}

shimmy_err engine_count(engine_model *m, const gen_request *req, int *n, char *err, size_t errlen,
                        char *param, size_t paramlen) {
    char scratch[8];
    param = param_buf(param, &paramlen, scratch, sizeof scratch);
    return model_ops(m)->count(m, req, n, err, errlen, param, paramlen);
}

shimmy_err engine_tokenize(engine_model *m, const char *text, bool add_special, bool parse_special,
                           int32_t **out, size_t *n, char *err, size_t errlen) {
    return model_ops(m)->tokenize(m, text, add_special, parse_special, out, n, err, errlen);
}

shimmy_err engine_token_piece(engine_model *m, int32_t t, buf *out) {
    return model_ops(m)->token_piece(m, t, out);
}

shimmy_err engine_detokenize(engine_model *m, const int32_t *tokens, size_t n, buf *out, char *err,
                             size_t errlen) {
    return model_ops(m)->detokenize(m, tokens, n, out, err, errlen);
}

shimmy_err engine_model_template(engine_model *m, char **source, engine_tmpl_caps *caps) {
    return model_ops(m)->model_template(m, source, caps);
}

shimmy_err engine_embed(engine_model *m, const char *const *texts, size_t n, float **out,
                        int *n_embd, int *n_tokens, char *err, size_t errlen) {
    return model_ops(m)->embed(m, texts, n, out, n_embd, n_tokens, err, errlen);
}

shimmy_err engine_embed_inputs(engine_model *m, const engine_embed_input *in, size_t n,
                               bool truncate, float **out, int *n_embd, int *n_tokens, char *err,
                               size_t errlen) {
    return model_ops(m)->embed_inputs(m, in, n, truncate, out, n_embd, n_tokens, err, errlen);
}

shimmy_err engine_rerank(engine_model *m, const char *query, const char *const *docs, size_t n,
                         float **scores, int *n_tokens, char *err, size_t errlen) {
    return model_ops(m)->rerank(m, query, docs, n, scores, n_tokens, err, errlen);
}

shimmy_err engine_job_wait(gen_job *job, int timeout_ms, gen_events *ev, gen_status *st) {
    return job_ops(job)->job_wait(job, timeout_ms, ev, st);
}

void engine_job_cancel(gen_job *job) {
    job_ops(job)->job_cancel(job);
}

void engine_job_release(gen_job *job) {
    if (job != NULL)
        job_ops(job)->job_release(job);
}
