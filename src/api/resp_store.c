/* resp_store: see resp_store.h. A doubly linked list in recency order (head: most recent)
 * under one mutex; each entry holds its id and both texts in one allocation. */
#include "api/resp_store.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"

typedef struct entry {
    struct entry *prev, *next;
    size_t bytes;   /* id + response + items, the store's accounting */
    char *response; /* into the same allocation */
    size_t response_len;
    char *items; /* into the same allocation */
    size_t items_len;
    char id[]; /* NUL-terminated, followed by response and items */
} entry;

struct resp_store {
    pthread_mutex_t mu;
    entry *head, *tail;
    size_t count, bytes;
    size_t max_count, max_bytes;
};

resp_store *resp_store_new(size_t max_count, size_t max_bytes) {
    resp_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return NULL;
    }
    s->max_count = max_count;
    s->max_bytes = max_bytes;
    return s;
}

void resp_store_free(resp_store *s) {
    if (s == NULL)
        return;
    for (entry *e = s->head, *next; e != NULL; e = next) {
        next = e->next;
        free(e);
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

size_t resp_store_count_from_env(void) {
    const char *v = getenv("SHIMMY_RESPONSES_MAX");
    char *end = NULL;
    long n;
    if (v == NULL || *v == '\0')
        return LIM_RESP_STORE_COUNT;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < 0 || n > LIM_RESP_STORE_COUNT)
        return LIM_RESP_STORE_COUNT;
    return (size_t)n;
}

/* ---- the list (the mutex held) ---- */

static void unlink_entry(resp_store *s, entry *e) {
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        s->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        s->tail = e->prev;
    e->prev = e->next = NULL;
    s->count--;
    s->bytes -= e->bytes;
}

static void push_front(resp_store *s, entry *e) {
    e->prev = NULL;
    e->next = s->head;
    if (s->head != NULL)
        s->head->prev = e;
    s->head = e;
    if (s->tail == NULL)
        s->tail = e;
    s->count++;
    s->bytes += e->bytes;
}

static entry *find(resp_store *s, const char *id) {
    for (entry *e = s->head; e != NULL; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

static void drop_lru(resp_store *s) {
    while (s->tail != NULL && (s->count > s->max_count || s->bytes > s->max_bytes)) {
        entry *e = s->tail;
        unlink_entry(s, e);
        free(e);
    }
}

/* ---- entries ---- */

static entry *entry_new(const char *id, const char *response, size_t response_len,
                        const char *items, size_t items_len) {
    size_t id_len = strlen(id), bytes = id_len + response_len + items_len + 3;
    entry *e = malloc(sizeof *e + bytes);
    if (e == NULL)
        return NULL;
    memset(e, 0, sizeof *e);
    e->bytes = bytes;
    memcpy(e->id, id, id_len + 1);
    e->response = e->id + id_len + 1;
    memcpy(e->response, response, response_len);
    e->response[response_len] = '\0';
    e->response_len = response_len;
    e->items = e->response + response_len + 1;
    memcpy(e->items, items, items_len);
    e->items[items_len] = '\0';
    e->items_len = items_len;
    return e;
}

shimmy_err resp_store_put(resp_store *s, const char *id, const char *response, size_t response_len,
                          const char *items, size_t items_len) {
    entry *e, *old;
    if (strlen(id) + response_len + items_len + 3 > s->max_bytes || s->max_count == 0)
        return ERR_TOO_LARGE;
    if ((e = entry_new(id, response, response_len, items, items_len)) == NULL)
        return ERR_NOMEM;
    pthread_mutex_lock(&s->mu);
    if ((old = find(s, id)) != NULL) {
        unlink_entry(s, old);
        free(old);
    }
    push_front(s, e);
    drop_lru(s);
    pthread_mutex_unlock(&s->mu);
    return SHIMMY_OK;
}

static char *copy(const char *text, size_t len) {
    char *out = malloc(len + 1);
    if (out != NULL) {
        memcpy(out, text, len);
        out[len] = '\0';
    }
    return out;
}

bool resp_store_get(resp_store *s, const char *id, char **response, char **items) {
    char *r = NULL, *i = NULL;
    bool ok = false;
    pthread_mutex_lock(&s->mu);
    entry *e = find(s, id);
    if (e != NULL) {
        unlink_entry(s, e);
        push_front(s, e);
        r = response != NULL ? copy(e->response, e->response_len) : NULL;
        i = items != NULL ? copy(e->items, e->items_len) : NULL;
        ok = (response == NULL || r != NULL) && (items == NULL || i != NULL);
    }
    pthread_mutex_unlock(&s->mu);
    if (!ok) {
        free(r);
        free(i);
        r = i = NULL;
    }
    if (response != NULL)
        *response = r;
    if (items != NULL)
        *items = i;
    return ok;
}

bool resp_store_delete(resp_store *s, const char *id) {
    pthread_mutex_lock(&s->mu);
    entry *e = find(s, id);
    if (e != NULL) {
        unlink_entry(s, e);
        free(e);
    }
    pthread_mutex_unlock(&s->mu);
    return e != NULL;
}

size_t resp_store_count(resp_store *s) {
    pthread_mutex_lock(&s->mu);
    size_t n = s->count;
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t resp_store_bytes(resp_store *s) {
    pthread_mutex_lock(&s->mu);
    size_t n = s->bytes;
    pthread_mutex_unlock(&s->mu);
    return n;
}
