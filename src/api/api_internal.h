/* api_internal: what the files of api/ share and nobody else sees — the handlers that the route
 * table in routes.c names, and the helpers that fill an http_response. */
#ifndef SHIMMY_API_INTERNAL_H
#define SHIMMY_API_INTERNAL_H

#include "api/api.h"

/* openai.c */
void oai_handle_chat(const http_request *req, http_response *res);
void oai_handle_completions(const http_request *req, http_response *res);

/* ollama.c: Ollama's API (/api/...), the embeddings endpoints and the model rescan */
void oll_handle_version(const http_request *req, http_response *res);
void oll_handle_tags(const http_request *req, http_response *res);
void oll_handle_show(const http_request *req, http_response *res);
void oll_handle_ps(const http_request *req, http_response *res);
void oll_handle_generate(const http_request *req, http_response *res);
void oll_handle_chat(const http_request *req, http_response *res);
void oll_handle_embed(const http_request *req, http_response *res);
void oll_handle_embeddings(const http_request *req, http_response *res);
void oll_handle_unsupported(const http_request *req, http_response *res);
void oll_handle_rescan(const http_request *req, http_response *res);
void oll_handle_v1_embeddings(const http_request *req, http_response *res);

/* routes.c: a JSON error answer with the status from err.h's table (503 adds Retry-After).
 * msg NULL = the table's message; param NULL = null. */
void api_reply_error(http_response *res, shimmy_err e, const char *msg, const char *param);
/* The error a finished job carries (with its message in *msg), or SHIMMY_OK when it ended
 * normally: a job the server cancelled is an internal error for the client that still waits. */
shimmy_err api_job_error(const gen_status *st, const char **msg);
/* Makes sure res->body can hold a response (the server may hand it over unset). */
void api_body_ready(http_response *res);

#endif
