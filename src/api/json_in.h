/* api/json_in: reading request bodies, shared by the OpenAI and Ollama parsers: the body as a
 * JSON object, and the parts of a chat that both pass to the engine (tools, schemas, the chat
 * JSON itself). */
#ifndef SHIMMY_API_JSON_IN_H
#define SHIMMY_API_JSON_IN_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "api/api_error.h"
#include "core/err.h"

/* Parses body as a JSON object, refusing nesting deeper than LIM_JSON_DEPTH before jansson's
 * recursive parser sees it. Returns owned *out, or ERR_BAD_JSON with a message naming the line
 * and column. */
shimmy_err api_json_load_object(const char *body, size_t len, json_t **out, char *msg,
                                size_t msglen);

/* A present, non-null member (clients often send "key": null for "not given"); borrowed. */
json_t *api_json_opt(const json_t *obj, const char *key);

/* Checks `tools` (borrowed): an array of {"type":"function","function":{"name": non-empty
 * string, "description": string, "parameters": object}}. *n = the number of tools. Errors:
 * ERR_BAD_PARAM naming the field ("tools[1].function.name"). */
shimmy_err api_check_tools(const json_t *tools, size_t *n, api_error *err);
/* True when a tool named name is in tools (checked by api_check_tools). */
bool api_tools_have(const json_t *tools, const char *name);

/* Reads the number obj[key] (absent or null: *out unchanged) into *out: an integer (5 or 5.0)
 * when integer, and within [lo, hi]. Errors: ERR_BAD_PARAM naming param ("'param' must be an
 * integer between lo and hi"). */
shimmy_err api_json_num(const json_t *obj, const char *key, const char *param, bool integer,
                        double lo, double hi, double *out, api_error *err);

/* Compact JSON text of v (borrowed). Returns owned *out. Errors: ERR_NOMEM. */
shimmy_err api_json_text(const json_t *v, char **out, api_error *err);

#endif
