/* log: thread-safe leveled logging to stderr, one line per call, with a UTC timestamp; as text
 * ("TIME LEVEL message key=value ...") or as one JSON object per line (log_set_json). */
#ifndef SHIMMY_LOG_H
#define SHIMMY_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_QUIET } log_level;

/* Sets the minimum level printed (default LOG_INFO; SHIMMY_LOG=debug|info|warn|error|quiet). */
void log_set_level(log_level lvl);
log_level log_get_level(void);
/* Reads SHIMMY_LOG from the environment. */
void log_init_from_env(void);

/* Parses "debug", "info", "warn", "error", "quiet". Returns false (lvl untouched) otherwise. */
bool log_level_parse(const char *name, log_level *lvl);
/* JSON lines ({"time","level","msg", fields...}) instead of text. Set before threads start. */
void log_set_json(bool on);

void log_msg(log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One structured field: a string (str != NULL) or a number (num). Borrowed for the call. */
typedef struct log_field {
    const char *key; /* [a-z_]+ */
    const char *str; /* NULL: the field is num */
    double num;
} log_field;
/* One line: msg then the fields (text: key=value, strings quoted when they hold spaces or
 * quotes; JSON: members). */
void log_fields(log_level lvl, const char *msg, const log_field *f, size_t n);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
