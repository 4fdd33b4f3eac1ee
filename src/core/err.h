/* err: the one error enum of shimmy, and the table that maps each code to a user-facing
 * HTTP status and the API error type/code. Append only: codes are never renumbered.
 * Functions return a shimmy_err; detail text goes into a caller-provided buffer. */
#ifndef SHIMMY_ERR_H
#define SHIMMY_ERR_H

#include <stddef.h>

typedef enum {
    SHIMMY_OK = 0,
    ERR_BAD_JSON,        /* body is not valid JSON / not an object */
    ERR_BAD_PARAM,       /* a parameter has the wrong type or an out-of-range value */
    ERR_CONTEXT_LENGTH,  /* prompt does not fit the context window */
    ERR_MODEL_NOT_FOUND, /* requested model is unknown */
    ERR_NOT_FOUND,       /* unknown route */
    ERR_METHOD,          /* route exists, method does not */
    ERR_TOO_LARGE,       /* request body over the limit */
    ERR_OVERLOADED,      /* request queue full */
    ERR_MODEL_LOAD,      /* model file could not be loaded */
    ERR_INTERNAL,        /* a real internal failure (always with a message) */
    ERR_NOMEM,           /* allocation failed */
    ERR_IO,              /* file or socket I/O failed */
    ERR_USAGE,           /* command-line usage error */
    ERR_CANCELLED,       /* the client went away */
    ERR_UNSUPPORTED,     /* the model exists but this build cannot serve it (e.g. MLX) */
    ERR_UNAUTHORIZED,    /* no API key, or a wrong one, on a route that needs one */
    ERR_FORBIDDEN,       /* Host or Origin not allowed (DNS rebinding, cross-site request) */
    ERR_BAD_REQUEST,     /* malformed HTTP framing (Content-Length, Host, request target) */
    ERR_NOT_IMPLEMENTED, /* an HTTP feature shimmy does not take (Transfer-Encoding gzip) */
    ERR_TIMEOUT,         /* the client sent nothing for too long in the middle of a request */
    ERR_ENGINE_CRASHED,  /* the model's engine process died (llama.cpp aborted) mid-request */
    ERR_SHUTTING_DOWN,   /* the server is draining (SIGTERM): no new requests, or drain timeout */
    ERR__COUNT
} shimmy_err;

typedef struct err_info {
    const char *name;        /* stable identifier, e.g. "bad_param" */
    int http_status;         /* status an API answers with */
    const char *openai_type; /* OpenAI error.type */
    const char *openai_code; /* OpenAI error.code or NULL */
    const char *message;     /* generic message when no detail is given */
} err_info;

/* Returns the table row for e (never NULL; unknown codes map to ERR_INTERNAL). */
const err_info *err_get(shimmy_err e);

/* Writes a formatted detail message into buf (always NUL-terminated) and returns e, so that
 * error paths read `return err_set(buf, len, ERR_BAD_PARAM, "...", ...);`. buf may be NULL. */
shimmy_err err_set(char *buf, size_t len, shimmy_err e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
