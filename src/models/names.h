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

/* When path's stem ends in llama.cpp's split suffix "-NNNNN-of-MMMMM", sets *part (1-based) and
 * *count and returns true; names_from_path drops that suffix, so a split model is named once. */
bool names_split_part(const char *path, int *part, int *count);

/* Writes path with its split suffix set to part (same digit widths) into out. Returns false when
 * path is not a split part or out is too small. */
bool names_split_sibling(const char *path, int part, char *out, size_t outlen);

/* Lowercases s in place (ASCII). */
void names_lower(char *s);

#endif
