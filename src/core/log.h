/* log: thread-safe leveled logging to stderr, one line per call, with a UTC timestamp. */
#ifndef SHIMMY_LOG_H
#define SHIMMY_LOG_H

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_QUIET } log_level;

/* Sets the minimum level printed (default LOG_INFO; SHIMMY_LOG=debug|info|warn|error|quiet). */
void log_set_level(log_level lvl);
log_level log_get_level(void);
/* Reads SHIMMY_LOG from the environment. */
void log_init_from_env(void);

void log_msg(log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
