/* engine/pcache: a model's host-RAM prompt cache. When a slot is about to be reused for another
 * prompt, the KV state of what it holds is saved here with the tokens it covers; a later request
 * whose prompt shares a longer prefix with a saved state than with any slot gets it restored into
 * a slot and evaluates only the rest (llama-server's --cache-ram). Entries are moved out when
 * restored (the slot holds them again), the least recently used are dropped past the budget, and
 * an entry that another one extends is dropped. Bytes are counted exactly (the size of each saved
 * state plus its tokens).
 *
 * Thread-safety: one per model, used by its engine thread only; pcache_stats may be read by any
 * thread holding the caller's lock (the engine copies the stats under the model's mutex). */
#ifndef SHIMMY_ENGINE_PCACHE_H
#define SHIMMY_ENGINE_PCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef int32_t pc_token;

typedef struct pc_entry {
    pc_token *tokens; /* owned: the tokens the state covers */
    int n_tokens;
    void *data;         /* owned: the state (be_seq_save) */
    size_t size;        /* bytes of data */
    uint64_t last_used; /* engine step of the save */
    struct pc_entry *next;
} pc_entry;

typedef struct pcache {
    pc_entry *head;
    uint64_t budget; /* bytes; 0 = the cache is off */
    uint64_t bytes;  /* held now: states + tokens */
    int n_entries;
} pcache;

void pcache_init(pcache *c, uint64_t budget_bytes);
void pcache_free(pcache *c);
/* The entry sharing the longest prefix with t[0..n), with that length in *lcp; NULL when none
 * shares any token. Borrowed: valid until the next put or take. */
pc_entry *pcache_best(pcache *c, const pc_token *t, int n, int *lcp);
/* Whether saving t[0..n) would add anything: false when an entry already covers it (holds these
 * tokens or more after them) or the cache is off. */
bool pcache_wants(const pcache *c, const pc_token *t, int n);
/* Stores a saved state of t[0..n) (copies t; takes data even on failure). Drops the entries it
 * covers, then the least recently used past the budget. Returns false (data freed) when the
 * state alone is over the budget or memory runs out. */
bool pcache_put(pcache *c, const pc_token *t, int n, void *data, size_t size, uint64_t step);
/* Removes e from the cache; the caller owns e (free with pcache_entry_free). */
void pcache_take(pcache *c, pc_entry *e);
void pcache_entry_free(pc_entry *e);

#endif
