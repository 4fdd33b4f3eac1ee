/* api/api_error: see api_error.h. */
#include "api/api_error.h"

#include <stdarg.h>
#include <stdio.h>

void api_error_clear(api_error *e) {
    e->code = SHIMMY_OK;
    e->param[0] = '\0';
    e->message[0] = '\0';
}

shimmy_err api_fail(api_error *e, shimmy_err code, const char *param, const char *fmt, ...) {
    va_list ap;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return code;
}

const char *api_error_message(const api_error *e) {
    return e->message[0] != '\0' ? e->message : err_get(e->code)->message;
}
