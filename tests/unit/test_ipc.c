/* Unit tests for engine/ipc (the engine-process channel's framing) over a real socketpair: a
 * frame round-trips; frames written together (ipc_send_frames) come back one by one and in order
 * from one buffered read; a payload larger than the read buffer, and one written a byte at a
 * time, arrive whole; a stream that ends inside a frame is ERR_IO; an oversized length is
 * refused; payload cursors turn an overrun into a sticky error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/ipc.h"

static void pair(int sv[2]) {
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

static void test_one_frame(void **state) {
    (void)state;
    int sv[2];
    pair(sv);
    assert_int_equal(ipc_send(sv[0], NULL, IPC_EVENTS, 42, "hello", 5), SHIMMY_OK);
    assert_int_equal(ipc_send(sv[0], NULL, IPC_CANCEL, 43, NULL, 0), SHIMMY_OK);
    ipc_reader *r = malloc(sizeof *r);
    ipc_reader_init(r, sv[1], false);
    ipc_hdr h;
    buf in;
    buf_init(&in, LIM_IPC_PAYLOAD_BYTES);
    assert_int_equal(ipc_recv(r, &h, &in), SHIMMY_OK);
    assert_int_equal(h.type, IPC_EVENTS);
    assert_int_equal(h.id, 42);
    assert_int_equal(h.len, 5);
    assert_memory_equal(in.data, "hello", 5);
    assert_int_equal(ipc_recv(r, &h, &in), SHIMMY_OK);
    assert_int_equal(h.type, IPC_CANCEL);
    assert_int_equal(h.id, 43);
    assert_int_equal(in.len, 0);
    close(sv[0]);
    assert_int_equal(ipc_recv(r, &h, &in), ERR_IO); /* the end of the stream */
    buf_free(&in);
    free(r);
    close(sv[1]);
}

static void test_frames_together(void **state) {
    (void)state;
    int sv[2];
    pair(sv);
    buf out;
    buf_init(&out, 1 << 20);
    for (uint32_t i = 0; i < 100; i++) {
        size_t at = ipc_frame_begin(&out, IPC_EVENTS, 1000 + i);
        ipc_put_u32(&out, i);
        ipc_put_str(&out, i % 2 ? "odd" : NULL);
        assert_true(ipc_frame_end(&out, at));
    }
    assert_int_equal(ipc_send_frames(sv[0], NULL, &out), SHIMMY_OK);
    close(sv[0]);
    ipc_reader *r = malloc(sizeof *r);
    ipc_reader_init(r, sv[1], false);
    ipc_hdr h;
    buf in;
    buf_init(&in, LIM_IPC_PAYLOAD_BYTES);
    for (uint32_t i = 0; i < 100; i++) {
        assert_int_equal(ipc_recv(r, &h, &in), SHIMMY_OK);
        assert_int_equal(h.type, IPC_EVENTS);
        assert_int_equal(h.id, 1000 + i);
        ipc_rd rd;
        ipc_rd_init(&rd, &in);
        assert_int_equal(ipc_get_u32(&rd), i);
        const char *s = ipc_get_str(&rd);
        if (i % 2)
            assert_string_equal(s, "odd");
        else
            assert_null(s);
        assert_false(rd.bad);
        assert_int_equal(rd.left, 0);
    }
    assert_int_equal(ipc_recv(r, &h, &in), ERR_IO);
    buf_free(&in);
    buf_free(&out);
    free(r);
    close(sv[1]);
}

typedef struct big_arg {
    int fd;
    const char *p;
    size_t n;
    bool bytewise;
} big_arg;

static void *writer(void *p) {
    big_arg *a = p;
    if (a->bytewise) { /* a header and payload that arrive in pieces */
        ipc_hdr h = {.len = (uint32_t)a->n, .type = IPC_REPLY, .id = 7};
        for (size_t i = 0; i < sizeof h; i++)
            (void)!write(a->fd, (const char *)&h + i, 1);
        for (size_t i = 0; i < a->n; i++)
            (void)!write(a->fd, a->p + i, 1);
    } else {
        ipc_send(a->fd, NULL, IPC_REPLY, 7, a->p, a->n);
    }
    return NULL;
}

static void big(bool bytewise, size_t n) {
    int sv[2];
    pair(sv);
    char *p = malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)(i * 7 + 3);
    big_arg a = {sv[0], p, n, bytewise};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, writer, &a), 0);
    ipc_reader *r = malloc(sizeof *r);
    ipc_reader_init(r, sv[1], bytewise); /* both ways of waiting */
    ipc_hdr h;
    buf in;
    buf_init(&in, LIM_IPC_PAYLOAD_BYTES);
    assert_int_equal(ipc_recv(r, &h, &in), SHIMMY_OK);
    assert_int_equal(h.type, IPC_REPLY);
    assert_int_equal(h.id, 7);
    assert_int_equal(in.len, n);
    assert_memory_equal(in.data, p, n);
    pthread_join(t, NULL);
    buf_free(&in);
    free(r);
    free(p);
    close(sv[0]);
    close(sv[1]);
}

static void test_large_payload(void **state) {
    (void)state;
    big(false, 3 * LIM_IPC_READ_BYTES + 123); /* past the read buffer and the socket's */
}

static void test_in_pieces(void **state) {
    (void)state;
    big(true, 1000);
}

static void test_truncated(void **state) {
    (void)state;
    int sv[2];
    pair(sv);
    ipc_hdr h = {.len = 10, .type = IPC_EVENTS, .id = 1};
    assert_int_equal(write(sv[0], &h, sizeof h), (ssize_t)sizeof h);
    assert_int_equal(write(sv[0], "abc", 3), 3); /* 7 bytes short */
    close(sv[0]);
    ipc_reader *r = malloc(sizeof *r);
    ipc_reader_init(r, sv[1], false);
    buf in;
    buf_init(&in, LIM_IPC_PAYLOAD_BYTES);
    assert_int_equal(ipc_recv(r, &h, &in), ERR_IO);
    buf_free(&in);
    free(r);
    close(sv[1]);
}

static void test_oversized(void **state) {
    (void)state;
    int sv[2];
    pair(sv);
    ipc_hdr h = {.len = LIM_IPC_PAYLOAD_BYTES + 1, .type = IPC_EVENTS, .id = 1};
    assert_int_equal(write(sv[0], &h, sizeof h), (ssize_t)sizeof h);
    ipc_reader *r = malloc(sizeof *r);
    ipc_reader_init(r, sv[1], false);
    buf in;
    buf_init(&in, LIM_IPC_PAYLOAD_BYTES);
    assert_int_equal(ipc_recv(r, &h, &in), ERR_TOO_LARGE);
    assert_int_equal(ipc_send(sv[0], NULL, IPC_EVENTS, 1, "x", LIM_IPC_PAYLOAD_BYTES + 1),
                     ERR_TOO_LARGE); /* refused before anything is written */
    buf_free(&in);
    free(r);
    close(sv[0]);
    close(sv[1]);
}

static void test_frame_end_empty(void **state) {
    (void)state;
    buf out;
    buf_init(&out, 1 << 10);
    size_t at = ipc_frame_begin(&out, IPC_CANCEL, 9);
    assert_true(ipc_frame_end(&out, at));
    assert_int_equal(out.len, sizeof(ipc_hdr));
    ipc_hdr h;
    memcpy(&h, out.data, sizeof h);
    assert_int_equal(h.len, 0);
    assert_int_equal(h.type, IPC_CANCEL);
    assert_int_equal(h.id, 9);
    buf_free(&out);
}

static void test_cursor_overrun(void **state) {
    (void)state;
    buf b;
    buf_init(&b, 1 << 10);
    ipc_put_u32(&b, 5);
    ipc_put_bytes(&b, "ab", 2);
    ipc_rd r;
    ipc_rd_init(&r, &b);
    assert_int_equal(ipc_get_u32(&r), 5);
    size_t n;
    assert_memory_equal(ipc_get_bytes(&r, &n), "ab", 2);
    assert_int_equal(n, 2);
    assert_int_equal(ipc_get_u64(&r), 0); /* past the end */
    assert_true(r.bad);
    assert_null(ipc_get_str(&r)); /* sticky */
    buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_frame),       cmocka_unit_test(test_frames_together),
        cmocka_unit_test(test_large_payload),   cmocka_unit_test(test_in_pieces),
        cmocka_unit_test(test_truncated),       cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_frame_end_empty), cmocka_unit_test(test_cursor_overrun),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
