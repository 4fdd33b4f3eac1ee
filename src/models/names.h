/* models/names: how a model file's path becomes the name it is served under. Shared by the
 * registry and by store discovery so that every source names models the same way. */
#ifndef SHIMMY_NAMES_H
#define SHIMMY_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* Writes the served name for path into out: the file's base name, lowercased, with a trailing
 * ".gguf" (any case) removed. "dir/My-Model.Q4_K_M.GGUF" → "my-model.q4_k_m". Borrows path.
 * Returns false (out = "") when the name would be empty or does not fit in outlen. */
bool names_from_path(const char *path, char *out, size_t outlen);

/* True when path's base name ends in ".gguf" (any case). */
bool names_is_gguf(const char *path);

#endif
