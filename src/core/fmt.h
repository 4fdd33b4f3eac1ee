/* core/fmt: human-readable numbers for tables and API fields. */
#ifndef SHIMMY_FMT_H
#define SHIMMY_FMT_H

#include <stddef.h>
#include <stdint.h>

/* "1.1 MiB": binary units, one decimal above bytes ("512 B"). */
void fmt_bytes(uint64_t n, char *out, size_t outlen);
/* "292.8K", "1.2B": decimal units, as parameter counts are quoted ("512" below 1000). */
void fmt_count(uint64_t n, char *out, size_t outlen);

#endif
