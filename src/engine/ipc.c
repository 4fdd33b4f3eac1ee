/* engine/ipc: see ipc.h. */
#include "engine/ipc.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NULL_LEN UINT32_MAX

static shimmy_err write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return ERR_IO;
        p += w;
        n -= (size_t)w;
    }
    return SHIMMY_OK;
}

static shimmy_err read_all(int fd, char *p, size_t n) {
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return ERR_IO;
        p += r;
        n -= (size_t)r;
    }
    return SHIMMY_OK;
}

shimmy_err ipc_send(int fd, pthread_mutex_t *mu, ipc_type type, uint64_t id, const void *payload,
                    size_t len) {
    if (len > LIM_IPC_PAYLOAD_BYTES)
        return ERR_TOO_LARGE;
    ipc_hdr h = {.len = (uint32_t)len, .type = (uint16_t)type, .id = id};
    if (mu != NULL)
        pthread_mutex_lock(mu);
    shimmy_err rc = write_all(fd, (const char *)&h, sizeof h);
    if (rc == SHIMMY_OK && len > 0)
        rc = write_all(fd, payload, len);
    if (mu != NULL)
        pthread_mutex_unlock(mu);
    return rc;
}

shimmy_err ipc_recv(int fd, ipc_hdr *h, buf *payload) {
    buf_reset(payload);
    shimmy_err rc = read_all(fd, (char *)h, sizeof *h);
    if (rc != SHIMMY_OK)
        return rc;
    if (h->len > LIM_IPC_PAYLOAD_BYTES)
        return ERR_TOO_LARGE;
    char chunk[16384];
    size_t left = h->len;
    while (left > 0 && rc == SHIMMY_OK) {
        size_t n = left < sizeof chunk ? left : sizeof chunk;
        rc = read_all(fd, chunk, n);
        if (rc == SHIMMY_OK)
            rc = buf_append(payload, chunk, n);
        left -= n;
    }
    return rc;
}

void ipc_put_u32(buf *b, uint32_t v) {
    buf_append(b, (const char *)&v, sizeof v);
}
void ipc_put_u64(buf *b, uint64_t v) {
    buf_append(b, (const char *)&v, sizeof v);
}

void ipc_put_bytes(buf *b, const void *p, size_t n) {
    ipc_put_u32(b, (uint32_t)n);
    if (n > 0)
        buf_append(b, p, n);
}

void ipc_put_str(buf *b, const char *s) {
    if (s == NULL) {
        ipc_put_u32(b, NULL_LEN);
        return;
    }
    size_t n = strlen(s);
    ipc_put_u32(b, (uint32_t)n);
    buf_append(b, s, n + 1); /* with its NUL: read back in place */
}

void ipc_rd_init(ipc_rd *r, const buf *payload) {
    r->p = payload->data;
    r->left = payload->len;
    r->bad = false;
}

static const char *take(ipc_rd *r, size_t n) {
    if (r->bad || n > r->left) {
        r->bad = true;
        return NULL;
    }
    const char *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

uint32_t ipc_get_u32(ipc_rd *r) {
    uint32_t v = 0;
    const char *p = take(r, sizeof v);
    if (p != NULL)
        memcpy(&v, p, sizeof v);
    return v;
}

uint64_t ipc_get_u64(ipc_rd *r) {
    uint64_t v = 0;
    const char *p = take(r, sizeof v);
    if (p != NULL)
        memcpy(&v, p, sizeof v);
    return v;
}

const void *ipc_get_bytes(ipc_rd *r, size_t *n) {
    uint32_t len = ipc_get_u32(r);
    *n = len;
    const char *p = take(r, len);
    if (p == NULL)
        *n = 0;
    return p;
}

const char *ipc_get_str(ipc_rd *r) {
    uint32_t len = ipc_get_u32(r);
    if (r->bad || len == NULL_LEN)
        return NULL;
    const char *p = take(r, (size_t)len + 1);
    if (p == NULL || p[len] != '\0') {
        r->bad = true;
        return NULL;
    }
    return p;
}
