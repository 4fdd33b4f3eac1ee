/* api/json_in: reading request bodies, shared by the OpenAI and Ollama parsers. */
#ifndef SHIMMY_API_JSON_IN_H
#define SHIMMY_API_JSON_IN_H

#include <stddef.h>

#include <jansson.h>

#include "core/err.h"

/* Parses body as a JSON object, refusing nesting deeper than LIM_JSON_DEPTH before jansson's
 * recursive parser sees it. Returns owned *out, or ERR_BAD_JSON with a message naming the line
 * and column. */
shimmy_err api_json_load_object(const char *body, size_t len, json_t **out, char *msg,
                                size_t msglen);

/* A present, non-null member (clients often send "key": null for "not given"); borrowed. */
json_t *api_json_opt(const json_t *obj, const char *key);

#endif
