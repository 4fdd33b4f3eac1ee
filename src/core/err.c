/* err: the error table (see err.h). */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>

static const err_info table[ERR__COUNT] = {
    [SHIMMY_OK] = {"ok", 200, NULL, NULL, "ok"},
    [ERR_BAD_JSON] = {"bad_json", 400, "invalid_request_error", "invalid_json",
                      "request body is not valid JSON"},
    [ERR_BAD_PARAM] = {"bad_param", 400, "invalid_request_error", "invalid_value",
                       "invalid parameter"},
    [ERR_CONTEXT_LENGTH] = {"context_length", 400, "invalid_request_error",
                            "context_length_exceeded", "the prompt does not fit the context"},
    [ERR_MODEL_NOT_FOUND] = {"model_not_found", 404, "invalid_request_error", "model_not_found",
                             "model not found"},
    [ERR_NOT_FOUND] = {"not_found", 404, "invalid_request_error", "not_found", "no such route"},
    [ERR_METHOD] = {"method_not_allowed", 405, "invalid_request_error", "method_not_allowed",
                    "method not allowed"},
    [ERR_TOO_LARGE] = {"too_large", 413, "invalid_request_error", "request_too_large",
                       "request body too large"},
    [ERR_OVERLOADED] = {"overloaded", 503, "server_error", "server_overloaded",
                        "server is overloaded, retry later"},
    [ERR_MODEL_LOAD] = {"model_load", 500, "server_error", "model_load_failed",
                        "model could not be loaded"},
    [ERR_INTERNAL] = {"internal", 500, "server_error", "internal_error", "internal error"},
    [ERR_NOMEM] = {"nomem", 500, "server_error", "out_of_memory", "out of memory"},
    [ERR_IO] = {"io", 500, "server_error", "io_error", "input/output error"},
    [ERR_USAGE] = {"usage", 400, "invalid_request_error", NULL, "usage error"},
    [ERR_CANCELLED] = {"cancelled", 499, "invalid_request_error", "cancelled", "request cancelled"},
    [ERR_UNSUPPORTED] = {"unsupported", 501, "invalid_request_error", "model_not_supported",
                         "this model's format is not supported by this build"},
    [ERR_UNAUTHORIZED] = {"unauthorized", 401, "invalid_request_error", "invalid_api_key",
                          "a valid API key is required"},
    [ERR_FORBIDDEN] = {"forbidden", 403, "invalid_request_error", "forbidden", "request refused"},
    [ERR_BAD_REQUEST] = {"bad_request", 400, "invalid_request_error", "bad_request",
                         "malformed HTTP request"},
    [ERR_NOT_IMPLEMENTED] = {"not_implemented", 501, "invalid_request_error", "not_implemented",
                             "not implemented"},
    [ERR_TIMEOUT] = {"timeout", 408, "invalid_request_error", "request_timeout",
                     "request timed out"},
    [ERR_ENGINE_CRASHED] = {"engine_crashed", 503, "server_error", "engine_crashed",
                            "the model's engine process died; the next request loads it again"},
    [ERR_SHUTTING_DOWN] = {"shutting_down", 503, "server_error", "server_shutting_down",
                           "the server is shutting down"},
};

const err_info *err_get(shimmy_err e) {
    if ((int)e < 0 || e >= ERR__COUNT || table[e].name == NULL)
        return &table[ERR_INTERNAL];
    return &table[e];
}

shimmy_err err_set(char *buf, size_t len, shimmy_err e, const char *fmt, ...) {
    if (buf != NULL && len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, len, fmt, ap);
        va_end(ap);
    }
    return e;
}
