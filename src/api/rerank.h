/* api/rerank: the reranking API (POST /v1/rerank, /rerank) in llama-server's Jina/Cohere shape:
 * the body parser and the answer writer, without I/O, so that they are unit-tested alone;
 * api_handle_rerank (api_internal.h) joins them to the engine.
 *
 * Thread-safety: reentrant; a request belongs to one thread. */
#ifndef SHIMMY_API_RERANK_H
#define SHIMMY_API_RERANK_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "api/api_error.h"
#include "api/jsonw.h"

typedef struct rerank_request {
    const char *model;     /* borrowed from root */
    const char *query;     /* borrowed from root */
    const char **docs;     /* owned array of texts borrowed from root */
    size_t n;              /* documents */
    size_t top_n;          /* results to keep; 0 = all */
    bool return_documents; /* each result carries {"text": document} */
    json_t *root;          /* owned: the body */
} rerank_request;

/* Parses a body. On error returns the code with err filled (param names the field:
 * "documents[2]", "top_n", ...) and nothing to free; on success free r with
 * rerank_request_free. Errors: ERR_BAD_JSON, ERR_BAD_PARAM, ERR_NOMEM. */
shimmy_err rerank_parse(const char *body, size_t len, rerank_request *r, api_error *err);
void rerank_request_free(rerank_request *r);

/* The answer for scores[0..r->n) (one per document) and the tokens evaluated: results sorted by
 * score, best first, ties by index, the first top_n kept. Appends through w. */
void rerank_write(jsonw *w, const rerank_request *r, const float *scores, int n_tokens);

#endif
