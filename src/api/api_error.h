/* api/api_error: the one client-error struct of the API layer. A code from core/err.h (which
 * gives the HTTP status and the OpenAI type/code), the parameter at fault and the message. Each
 * protocol writes it in its own shape ({"error":{...}} for OpenAI, {"error":"..."} for Ollama).
 *
 * Thread-safety: plain data; one thread at a time. */
#ifndef SHIMMY_API_ERROR_H
#define SHIMMY_API_ERROR_H

#include "core/err.h"

typedef struct api_error {
    shimmy_err code;
    char param[96];    /* "" = none, e.g. "messages[2].content[0].type" */
    char message[512]; /* "" = the table's message */
} api_error;

/* Clears e (code SHIMMY_OK, no param, no message). */
void api_error_clear(api_error *e);
/* Fills e with code, param (NULL = none) and the formatted message, and returns code, so that
 * error paths read `return api_fail(err, ERR_BAD_PARAM, "tools", "...", ...);`. */
shimmy_err api_fail(api_error *e, shimmy_err code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The message to show: e->message, or the table's when empty. Borrowed from e or static. */
const char *api_error_message(const api_error *e);

#endif
