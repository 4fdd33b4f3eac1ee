/* models/names: served names derived from file paths (see names.h). */
#include "models/names.h"

#include <ctype.h>
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

bool names_from_path(const char *path, char *out, size_t outlen) {
    if (outlen == 0)
        return false;
    out[0] = '\0';
    if (path == NULL)
        return false;
    const char *base = base_name(path);
    size_t n = stem_len(base);
    if (n == 0 || n >= outlen)
        return false;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)base[i]);
    out[n] = '\0';
    return true;
}
