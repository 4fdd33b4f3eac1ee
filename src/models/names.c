/* models/names: served names derived from file paths (see names.h). */
#include "models/names.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static size_t stem_len(const char *base) {
    size_t n = strlen(base);
    if (n >= 5 && strcasecmp(base + n - 5, ".gguf") == 0)
        return n - 5;
    return n;
}

bool names_is_gguf(const char *path) {
    const char *base = base_name(path);
    size_t n = strlen(base);
    return n > 5 && strcasecmp(base + n - 5, ".gguf") == 0;
}

/* Length of "-NNNNN-of-MMMMM" at the end of stem[0..n), or 0; fills part and count. */
static size_t split_suffix(const char *stem, size_t n, int *part, int *count) {
    /* "-00001-of-00003": 5 digits each in llama.cpp's gguf-split */
    const size_t len = 15;
    if (n <= len)
        return 0;
    const char *p = stem + n - len;
    if (p[0] != '-' || strncmp(p + 6, "-of-", 4) != 0)
        return 0;
    int a = 0, b = 0;
    for (int i = 0; i < 5; i++) {
        if (!isdigit((unsigned char)p[1 + i]) || !isdigit((unsigned char)p[10 + i]))
            return 0;
        a = a * 10 + (p[1 + i] - '0');
        b = b * 10 + (p[10 + i] - '0');
    }
    if (a < 1 || b < 1 || a > b)
        return 0;
    *part = a;
    *count = b;
    return len;
}

bool names_split_part(const char *path, int *part, int *count) {
    const char *base = base_name(path);
    return split_suffix(base, stem_len(base), part, count) > 0;
}

bool names_split_sibling(const char *path, int part, char *out, size_t outlen) {
    int p, c;
    const char *base = base_name(path);
    size_t n = stem_len(base);
    if (split_suffix(base, n, &p, &c) == 0 || part < 1 || part > 99999)
        return false;
    size_t at = (size_t)(base - path) + n - 15;
    if (snprintf(out, outlen, "%s", path) >= (int)outlen)
        return false;
    char digits[8];
    snprintf(digits, sizeof digits, "%05d", part);
    memcpy(out + at + 1, digits, 5);
    return true;
}

void names_lower(char *s) {
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

bool names_from_path(const char *path, char *out, size_t outlen) {
    if (outlen == 0)
        return false;
    out[0] = '\0';
    if (path == NULL)
        return false;
    const char *base = base_name(path);
    size_t n = stem_len(base);
    int part, count;
    n -= split_suffix(base, n, &part, &count);
    if (n == 0 || n >= outlen)
        return false;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)base[i]);
    out[n] = '\0';
    return true;
}
