/* resp_store: the OpenAI Responses API's store of finished responses, in memory and bounded.
 * Each entry is a response id with two JSON texts: the response object as it was answered (for
 * GET /v1/responses/{id}) and the conversation items that led to it and came out of it (input
 * items, then output items: what previous_response_id puts before a new input). At most
 * max_count entries and max_bytes of text (LIM_RESP_STORE_COUNT, LIM_RESP_STORE_BYTES); past
 * either, the least recently used entries (stored, read or continued) are dropped. Lookups scan
 * the list: max_count is small.
 *
 * Thread-safety: every function may be called from any thread at once (one mutex per store);
 * results are copies the caller owns, never pointers into the store. */
#ifndef SHIMMY_API_RESP_STORE_H
#define SHIMMY_API_RESP_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

typedef struct resp_store resp_store;

/* Returns an owned empty store (free with resp_store_free), or NULL when out of memory.
 * max_count 0 makes a store that keeps nothing. */
resp_store *resp_store_new(size_t max_count, size_t max_bytes);
void resp_store_free(resp_store *s);
/* The count limit of SHIMMY_RESPONSES_MAX when it holds an integer from 0 to
 * LIM_RESP_STORE_COUNT (tests set a small one), else LIM_RESP_STORE_COUNT. */
size_t resp_store_count_from_env(void);
/* Stores copies of id, response and items (all borrowed), replacing an entry with the same id,
 * as the most recently used, then drops the least recently used past the limits. Errors:
 * ERR_TOO_LARGE (one entry over max_bytes: nothing stored), ERR_NOMEM. */
shimmy_err resp_store_put(resp_store *s, const char *id, const char *response, size_t response_len,
                          const char *items, size_t items_len);
/* Looks id up and marks it most recently used. Returns false when unknown; else true with owned
 * NUL-terminated copies in *response and *items (either pointer may be NULL: not wanted), or
 * false with both NULL when a copy ran out of memory. */
bool resp_store_get(resp_store *s, const char *id, char **response, char **items);
/* Removes id. Returns false when it was not stored. */
bool resp_store_delete(resp_store *s, const char *id);
/* Entries and text bytes held now. */
size_t resp_store_count(resp_store *s);
size_t resp_store_bytes(resp_store *s);

#endif
