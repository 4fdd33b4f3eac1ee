/* api_internal: what the files of api/ share and nobody else sees — the handlers that the route
 * table in routes.c names, and the helpers that fill an http_response. */
#ifndef SHIMMY_API_INTERNAL_H
#define SHIMMY_API_INTERNAL_H

#include "api/api.h"
#include "api/gen.h"

/* ollama.c: Ollama's API (/api/...), the embeddings endpoints and the model rescan */
void oll_handle_version(const http_request *req, http_response *res);
void oll_handle_tags(const http_request *req, http_response *res);
void oll_handle_show(const http_request *req, http_response *res);
void oll_handle_ps(const http_request *req, http_response *res);
void oll_handle_embed(const http_request *req, http_response *res);
void oll_handle_embeddings(const http_request *req, http_response *res);
void oll_handle_unsupported(const http_request *req, http_response *res);
void oll_handle_rescan(const http_request *req, http_response *res);
/* POST /api/pull (models/pull.h; NDJSON progress unless "stream": false, then a rescan) and
 * DELETE /api/delete (only what shimmy pulled). */
void oll_handle_pull(const http_request *req, http_response *res);
void oll_handle_delete(const http_request *req, http_response *res);
void oll_handle_v1_embeddings(const http_request *req, http_response *res);

/* inspect.c: POST /apply-template, /tokenize, /detokenize (llama-server's shapes) */
void api_handle_apply_template(const http_request *req, http_response *res);
void api_handle_tokenize(const http_request *req, http_response *res);
void api_handle_detokenize(const http_request *req, http_response *res);

/* rerank.c: POST /v1/rerank and /rerank (llama-server's Jina/Cohere shape) */
void api_handle_rerank(const http_request *req, http_response *res);

/* responses_wire.c: GET and DELETE /v1/responses/{id} (and /responses/{id}) on the server's
 * response store (shimmy_app.responses) */
void resp_handle_get(const http_request *req, http_response *res);
void resp_handle_delete(const http_request *req, http_response *res);

#endif
