/* core/ini: a small INI reader for shimmy's config file (docs/adr/0007). `[section]` headers and
 * `key = value` lines; `#` or `;` starts a comment line; keys are lower-cased with '_' read as
 * '-' (so `top_p` and `top-p` are one key); a value may be wrapped in double quotes. Every item
 * keeps its line number for error messages. No I/O beyond ini_read_file. */
#ifndef SHIMMY_INI_H
#define SHIMMY_INI_H

#include <stddef.h>

#include "core/err.h"

typedef struct ini_item {
    int line;    /* 1-based */
    int section; /* index into ini_file.sections; -1 = before any header (global) */
    char *key;   /* owned, normalised */
    char *value; /* owned, trimmed, quotes removed */
} ini_item;

typedef struct ini_section {
    int line;
    char *name; /* owned, trimmed: "*", a model name or an fnmatch glob */
} ini_section;

typedef struct ini_file {
    ini_section *sections; /* owned */
    size_t n_sections;
    ini_item *items; /* owned, in file order */
    size_t n_items;
} ini_file;

/* Called once per syntax error: line (1-based) and a message (static or the caller's). */
typedef void (*ini_report_fn)(void *ud, int line, const char *msg);

/* Parses text (NUL-terminated; borrowed) into *out (initialised here; free with ini_free even
 * on error). Returns the number of syntax errors, each also given to report (may be NULL);
 * lines in error are skipped, the rest is kept. -1 when out of memory. */
int ini_parse(const char *text, ini_file *out, ini_report_fn report, void *ud);

/* Reads the file at path (at most LIM_CONFIG_BYTES) into an owned NUL-terminated string.
 * Errors: ERR_IO (message in err), ERR_TOO_LARGE, ERR_NOMEM. */
shimmy_err ini_read_file(const char *path, char **out, char *err, size_t errlen);

/* The section name of item i ("*" for the items before any header). Borrowed from f. */
const char *ini_item_section(const ini_file *f, const ini_item *it);

void ini_free(ini_file *f);

#endif
