/* engine/events: gen_events (engine.h), the list of what a job produced since the last wait.
 * Strings live in one buf; events keep offsets while they are added (the buf may move) and get
 * their pointers when the list is complete (gen_events_seal). */
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "engine/llama_chat.h"

#define NO_STRING ((size_t)-1)

void gen_events_init(gen_events *e) {
    memset(e, 0, sizeof *e);
    buf_init(&e->strings, LIM_RESPONSE_BYTES);
}

void gen_events_free(gen_events *e) {
    free(e->ev);
    buf_free(&e->strings);
    memset(e, 0, sizeof *e);
}

void gen_events_clear(gen_events *e) {
    e->n = 0;
    buf_reset(&e->strings);
}

static shimmy_err put(gen_events *e, const char *s, size_t n, size_t *off) {
    if (s == NULL) {
        *off = NO_STRING;
        return SHIMMY_OK;
    }
    *off = e->strings.len;
    shimmy_err rc = buf_append(&e->strings, s, n);
    return rc == SHIMMY_OK ? buf_append(&e->strings, "", 1) : rc; /* NUL-terminated */
}

shimmy_err gen_events_add(gen_events *e, gen_event_kind kind, int tool_index, const char *id,
                          const char *name, const char *text, size_t len) {
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 16;
        gen_event *ev = realloc(e->ev, cap * sizeof *ev);
        if (ev == NULL)
            return ERR_NOMEM;
        e->ev = ev;
        e->cap = cap;
    }
    gen_event *v = &e->ev[e->n];
    memset(v, 0, sizeof *v);
    v->kind = kind;
    v->tool_index = tool_index;
    v->len = len;
    size_t mark = e->strings.len;
    shimmy_err rc = put(e, id, id ? strlen(id) : 0, &v->off_id);
    if (rc == SHIMMY_OK)
        rc = put(e, name, name ? strlen(name) : 0, &v->off_name);
    if (rc == SHIMMY_OK)
        rc = put(e, text ? text : "", len, &v->off_text);
    if (rc != SHIMMY_OK) {
        e->strings.len = mark;
        return rc;
    }
    /* Consecutive text of one kind is one event. */
    if (e->n > 0 && (kind == GEN_EV_CONTENT || kind == GEN_EV_REASONING) &&
        e->ev[e->n - 1].kind == kind) {
        gen_event *p = &e->ev[e->n - 1];
        /* the previous text ends right before this event's strings (its NUL at mark - 1) */
        if (p->off_text + p->len + 1 == mark) {
            memmove(e->strings.data + mark - 1, e->strings.data + v->off_text, len + 1);
            e->strings.len = mark + len;
            p->len += len;
            return SHIMMY_OK;
        }
    }
    e->n++;
    return SHIMMY_OK;
}

shimmy_err gen_events_add_lp(gen_events *e, gen_event_kind kind, const char *text, size_t len,
                             float logprob) {
    shimmy_err rc = gen_events_add(e, kind, 0, NULL, NULL, text, len);
    if (rc == SHIMMY_OK)
        e->ev[e->n - 1].logprob = logprob;
    return rc;
}

shimmy_err gen_events_append(gen_events *dst, const gen_events *src) {
    for (size_t i = 0; i < src->n; i++) {
        const gen_event *v = &src->ev[i];
        const char *s = src->strings.data;
        shimmy_err rc = gen_events_add(
            dst, v->kind, v->tool_index, v->off_id == NO_STRING ? NULL : s + v->off_id,
            v->off_name == NO_STRING ? NULL : s + v->off_name, s + v->off_text, v->len);
        if (rc != SHIMMY_OK)
            return rc;
        dst->ev[dst->n - 1].logprob = v->logprob;
    }
    return SHIMMY_OK;
}

void gen_events_seal(gen_events *e) {
    for (size_t i = 0; i < e->n; i++) {
        gen_event *v = &e->ev[i];
        v->tool_id = v->off_id == NO_STRING ? NULL : e->strings.data + v->off_id;
        v->tool_name = v->off_name == NO_STRING ? NULL : e->strings.data + v->off_name;
        v->text = e->strings.data + v->off_text;
    }
}
