/* engine/ipc: see ipc.h. */
#include "engine/ipc.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define NULL_LEN UINT32_MAX

/* Writes iov[0..n) whole: one sendmsg unless the socket takes only part of it. */
static shimmy_err send_all(int fd, struct iovec *iov, int n) {
    while (n > 0) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return ERR_IO;
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return SHIMMY_OK;
}

shimmy_err ipc_send(int fd, pthread_mutex_t *mu, ipc_type type, uint64_t id, const void *payload,
                    size_t len) {
    if (len > LIM_IPC_PAYLOAD_BYTES)
        return ERR_TOO_LARGE;
    ipc_hdr h = {.len = (uint32_t)len, .type = (uint16_t)type, .id = id};
    struct iovec iov[2] = {{.iov_base = &h, .iov_len = sizeof h},
                           {.iov_base = (void *)payload, .iov_len = len}};
    if (mu != NULL)
        pthread_mutex_lock(mu);
    shimmy_err rc = send_all(fd, iov, len > 0 ? 2 : 1);
    if (mu != NULL)
        pthread_mutex_unlock(mu);
    return rc;
}

size_t ipc_frame_begin(buf *b, ipc_type type, uint64_t id) {
    size_t at = b->len;
    ipc_hdr h = {.len = 0, .type = (uint16_t)type, .id = id};
    buf_append(b, (const char *)&h, sizeof h);
    return at;
}

bool ipc_frame_end(buf *b, size_t at) {
    size_t len = b->len - at - sizeof(ipc_hdr);
    if (b->len < at + sizeof(ipc_hdr) || len > LIM_IPC_PAYLOAD_BYTES) {
        b->len = at;
        return false;
    }
    uint32_t len32 = (uint32_t)len;
    memcpy(b->data + at + offsetof(ipc_hdr, len), &len32, sizeof len32);
    return true;
}

shimmy_err ipc_send_frames(int fd, pthread_mutex_t *mu, const buf *b) {
    if (b->len == 0)
        return SHIMMY_OK;
    struct iovec iov = {.iov_base = b->data, .iov_len = b->len};
    if (mu != NULL)
        pthread_mutex_lock(mu);
    shimmy_err rc = send_all(fd, &iov, 1);
    if (mu != NULL)
        pthread_mutex_unlock(mu);
    return rc;
}

void ipc_reader_init(ipc_reader *r, int fd, bool poll_first) {
    r->fd = fd;
    r->poll_first = poll_first;
    r->off = r->len = 0;
}

bool ipc_reader_fill(ipc_reader *r, bool wait) {
    if (r->off < r->len)
        return true;
    ssize_t k;
    do
        k = recv(r->fd, r->data, sizeof r->data, wait ? 0 : MSG_DONTWAIT);
    while (k < 0 && errno == EINTR);
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return false;
    r->off = 0;
    r->len = k > 0 ? (size_t)k : 0;
    return true; /* data; or 0 / an error, which the next read sees again */
}

/* Takes n bytes from the stream into dst, or appended to b when dst is NULL. */
static shimmy_err reader_take(ipc_reader *r, char *dst, buf *b, size_t n) {
    while (n > 0) {
        if (r->off == r->len) {
            struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
            if (r->poll_first && poll(&pfd, 1, -1) < 0 && errno != EINTR)
                return ERR_IO;
            ssize_t k = read(r->fd, r->data, sizeof r->data);
            if (k < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
                continue; /* EAGAIN: SO_RCVTIMEO passed in the middle of a frame */
            if (k <= 0)
                return ERR_IO;
            r->off = 0;
            r->len = (size_t)k;
        }
        size_t m = r->len - r->off < n ? r->len - r->off : n;
        if (dst != NULL) {
            memcpy(dst, r->data + r->off, m);
            dst += m;
        } else {
            shimmy_err rc = buf_append(b, r->data + r->off, m);
            if (rc != SHIMMY_OK)
                return rc;
        }
        r->off += m;
        n -= m;
    }
    return SHIMMY_OK;
}

shimmy_err ipc_recv(ipc_reader *r, ipc_hdr *h, buf *payload) {
    buf_reset(payload);
    shimmy_err rc = reader_take(r, (char *)h, NULL, sizeof *h);
    if (rc != SHIMMY_OK)
        return rc;
    if (h->len > LIM_IPC_PAYLOAD_BYTES)
        return ERR_TOO_LARGE;
    return reader_take(r, NULL, payload, h->len);
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
