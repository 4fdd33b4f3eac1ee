/* api/rerank: POST /v1/rerank and /rerank in llama-server's Jina/Cohere shape. Request: model,
 * query (string), documents (strings or {"text": string}), top_n (how many results to keep;
 * default all), return_documents (each result carries {"text"}). Answer: {model, object "list",
 * usage, results:[{index, relevance_score, document?}]} sorted by score, best first (ties by
 * index). Scores are the reranker's (engine_rerank), unnormalised as llama-server gives them.
 * Errors are OpenAI's shape, each 400 naming its field. */
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "api/json_in.h"
#include "api/jsonw.h"
#include "api/rerank.h"
#include "core/limits.h"

/* documents[i]: a string, or an object whose "text" is one (Cohere, Jina). */
static const char *doc_text(const json_t *d) {
    if (json_is_object(d))
        d = json_object_get(d, "text");
    return json_string_value(d);
}

static shimmy_err parse_documents(rerank_request *r, api_error *err) {
    const json_t *docs = api_json_opt(r->root, "documents");
    if (docs == NULL)
        return api_fail(err, ERR_BAD_PARAM, "documents", "'documents' is required");
    if (!json_is_array(docs) || json_array_size(docs) == 0)
        return api_fail(err, ERR_BAD_PARAM, "documents",
                        "'documents' must be a non-empty array "
                        "of strings");
    if (json_array_size(docs) > LIM_MESSAGES)
        return api_fail(err, ERR_BAD_PARAM, "documents",
                        "'documents' holds more than %d "
                        "documents",
                        LIM_MESSAGES);
    r->n = json_array_size(docs);
    r->docs = calloc(r->n, sizeof *r->docs);
    if (r->docs == NULL)
        return api_fail(err, ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < r->n; i++) {
        r->docs[i] = doc_text(json_array_get(docs, i));
        if (r->docs[i] == NULL) {
            char p[48];
            snprintf(p, sizeof p, "documents[%zu]", i);
            return api_fail(err, ERR_BAD_PARAM, p, "'%s' must be a string or {\"text\": string}",
                            p);
        }
    }
    return SHIMMY_OK;
}

static shimmy_err parse_fields(rerank_request *r, api_error *err) {
    const json_t *model = api_json_opt(r->root, "model");
    const json_t *query = api_json_opt(r->root, "query");
    const json_t *ret = api_json_opt(r->root, "return_documents");
    double top_n = 0;
    if (model == NULL)
        return api_fail(err, ERR_BAD_PARAM, "model", "'model' is required");
    if (!json_is_string(model) || json_string_length(model) == 0)
        return api_fail(err, ERR_BAD_PARAM, "model", "'model' must be a non-empty string");
    r->model = json_string_value(model);
    if (query == NULL)
        return api_fail(err, ERR_BAD_PARAM, "query", "'query' is required");
    if (!json_is_string(query))
        return api_fail(err, ERR_BAD_PARAM, "query", "'query' must be a string");
    r->query = json_string_value(query);
    if (ret != NULL && !json_is_boolean(ret))
        return api_fail(err, ERR_BAD_PARAM, "return_documents",
                        "'return_documents' must be a boolean");
    r->return_documents = json_is_true(ret);
    shimmy_err e = api_json_num(r->root, "top_n", "top_n", true, 1, INT32_MAX, &top_n, err);
    r->top_n = (size_t)top_n;
    return e;
}

shimmy_err rerank_parse(const char *body, size_t len, rerank_request *r, api_error *err) {
    memset(r, 0, sizeof *r);
    api_error_clear(err);
    shimmy_err e = api_json_load_object(body, len, &r->root, err->message, sizeof err->message);
    if (e != SHIMMY_OK)
        return err->code = e;
    if ((e = parse_fields(r, err)) == SHIMMY_OK)
        e = parse_documents(r, err);
    if (e != SHIMMY_OK)
        rerank_request_free(r);
    return e;
}

void rerank_request_free(rerank_request *r) {
    free(r->docs);
    json_decref(r->root);
    memset(r, 0, sizeof *r);
}

/* ---- the answer ---- */

typedef struct ranked {
    size_t index;
    float score;
} ranked;

static int by_score(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return x->index < y->index ? -1 : x->index > y->index;
}

void rerank_write(jsonw *w, const rerank_request *r, const float *scores, int n_tokens) {
    ranked *order = malloc(r->n * sizeof *order);
    size_t keep = r->top_n > 0 && r->top_n < r->n ? r->top_n : r->n;
    char num[32];
    jsonw_raw(w, "{\"model\":");
    jsonw_cstr(w, r->model);
    jsonw_raw(w, ",\"object\":\"list\",\"usage\":{\"prompt_tokens\":");
    jsonw_int(w, n_tokens);
    jsonw_raw(w, ",\"total_tokens\":");
    jsonw_int(w, n_tokens);
    jsonw_raw(w, "},\"results\":[");
    for (size_t i = 0; order != NULL && i < r->n; i++)
        order[i] = (ranked){i, scores[i]};
    if (order != NULL)
        qsort(order, r->n, sizeof *order, by_score);
    for (size_t i = 0; order != NULL && i < keep; i++) {
        jsonw_raw(w, i ? ",{\"index\":" : "{\"index\":");
        jsonw_int(w, (int64_t)order[i].index);
        snprintf(num, sizeof num, "%.9g", (double)order[i].score);
        jsonw_raw(w, ",\"relevance_score\":");
        jsonw_raw(w, num);
        if (r->return_documents) {
            jsonw_raw(w, ",\"document\":{\"text\":");
            jsonw_cstr(w, r->docs[order[i].index]);
            jsonw_raw(w, "}");
        }
        jsonw_raw(w, "}");
    }
    jsonw_raw(w, "]}");
    free(order);
}

void api_handle_rerank(const http_request *req, http_response *res) {
    shimmy_app *app = req->app;
    rerank_request r;
    api_error ae;
    if (rerank_parse(req->body, req->body_len, &r, &ae) != SHIMMY_OK) {
        api_reply_error(res, &oai_chat_proto, &ae);
        return;
    }
    engine_model *m = NULL;
    float *scores = NULL;
    int n_tokens = 0;
    char msg[1024] = "";
    shimmy_err e = api_acquire_kind(app->models, &oai_chat_proto, r.model, true, 0, &m, &ae);
    if (e == SHIMMY_OK && (e = engine_rerank(m, r.query, r.docs, r.n, &scores, &n_tokens, msg,
                                             sizeof msg)) != SHIMMY_OK)
        api_fail(&ae, e,
                 e == ERR_CONTEXT_LENGTH ? "documents"
                 : e == ERR_BAD_PARAM    ? "model"
                                         : NULL,
                 "%s", msg);
    if (e == SHIMMY_OK) {
        jsonw w;
        jsonw_begin(&w, &res->body);
        rerank_write(&w, &r, scores, n_tokens);
        if (jsonw_end(&w) != SHIMMY_OK) {
            api_fail(&ae, ERR_INTERNAL, NULL, "the response is too large");
            api_reply_error(res, &oai_chat_proto, &ae);
        }
    } else {
        api_reply_error(res, &oai_chat_proto, &ae);
    }
    if (m != NULL)
        registry_release(app->models, m);
    free(scores);
    rerank_request_free(&r);
}
