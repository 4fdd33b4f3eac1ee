/* engine/pcache: see pcache.h. A list: a cache holds tens of entries at most (each is a whole
 * conversation's KV state), so a linear scan costs nothing next to one decode step. */
#include "engine/pcache.h"

#include <stdlib.h>
#include <string.h>

static uint64_t entry_bytes(const pc_entry *e) {
    return (uint64_t)e->size + (uint64_t)e->n_tokens * sizeof *e->tokens;
}

void pcache_init(pcache *c, uint64_t budget_bytes) {
    memset(c, 0, sizeof *c);
    c->budget = budget_bytes;
}

void pcache_entry_free(pc_entry *e) {
    if (e == NULL)
        return;
    free(e->tokens);
    free(e->data);
    free(e);
}

void pcache_free(pcache *c) {
    while (c->head != NULL) {
        pc_entry *e = c->head;
        c->head = e->next;
        pcache_entry_free(e);
    }
    c->bytes = 0;
    c->n_entries = 0;
}

static int common_prefix(const pc_token *a, int na, const pc_token *b, int nb) {
    int n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

pc_entry *pcache_best(pcache *c, const pc_token *t, int n, int *lcp) {
    pc_entry *best = NULL;
    *lcp = 0;
    for (pc_entry *e = c->head; e != NULL; e = e->next) {
        int k = common_prefix(e->tokens, e->n_tokens, t, n);
        if (k > *lcp) {
            *lcp = k;
            best = e;
        }
    }
    return best;
}

bool pcache_wants(const pcache *c, const pc_token *t, int n) {
    if (c->budget == 0 || n <= 0)
        return false;
    for (const pc_entry *e = c->head; e != NULL; e = e->next)
        if (e->n_tokens >= n && common_prefix(e->tokens, e->n_tokens, t, n) == n)
            return false;
    return true;
}

void pcache_take(pcache *c, pc_entry *e) {
    for (pc_entry **p = &c->head; *p != NULL; p = &(*p)->next) {
        if (*p == e) {
            *p = e->next;
            e->next = NULL;
            c->bytes -= entry_bytes(e);
            c->n_entries--;
            return;
        }
    }
}

/* Drops entries that the new one covers: their tokens are a prefix of the new tokens. */
static void drop_covered(pcache *c, const pc_token *t, int n) {
    pc_entry **p = &c->head;
    while (*p != NULL) {
        pc_entry *e = *p;
        if (e->n_tokens <= n && common_prefix(e->tokens, e->n_tokens, t, n) == e->n_tokens) {
            pcache_take(c, e);
            pcache_entry_free(e);
            continue; /* *p is the next entry now */
        }
        p = &e->next;
    }
}

static void drop_lru(pcache *c) {
    pc_entry *lru = c->head;
    for (pc_entry *e = c->head; e != NULL; e = e->next)
        if (e->last_used < lru->last_used)
            lru = e;
    pcache_take(c, lru);
    pcache_entry_free(lru);
}

bool pcache_put(pcache *c, const pc_token *t, int n, void *data, size_t size, uint64_t step) {
    pc_entry *e = calloc(1, sizeof *e);
    pc_token *copy = malloc((size_t)(n > 0 ? n : 1) * sizeof *copy);
    if (e == NULL || copy == NULL || c->budget == 0) {
        free(e);
        free(copy);
        free(data);
        return false;
    }
    memcpy(copy, t, (size_t)n * sizeof *copy);
    *e = (pc_entry){.tokens = copy, .n_tokens = n, .data = data, .size = size, .last_used = step};
    if (entry_bytes(e) > c->budget) {
        pcache_entry_free(e);
        return false;
    }
    drop_covered(c, t, n);
    while (c->head != NULL && c->bytes + entry_bytes(e) > c->budget)
        drop_lru(c);
    e->next = c->head;
    c->head = e;
    c->bytes += entry_bytes(e);
    c->n_entries++;
    return true;
}
