/* engine/ipc: the framed channel between the server and a model's engine process (remote.c,
 * child.c; ADR 0005). A frame is a fixed header {payload length, type, request id} and the
 * payload, written whole under the writer's lock and read whole by one reader. Payloads are
 * built with the put functions and read back with an ipc_rd cursor that turns any overrun into a
 * sticky error instead of a read past the end. Both ends are the same binary on the same
 * machine, so plain structs (gen_status, engine_model_info) travel as their bytes.
 *
 * Thread-safety: ipc_send may be called from any thread with the same mutex; ipc_recv by one
 * thread per descriptor. */
#ifndef SHIMMY_ENGINE_IPC_H
#define SHIMMY_ENGINE_IPC_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/limits.h"

typedef enum {
    IPC_LOAD = 1,  /* server -> engine: the options of the model to load */
    IPC_LOADED,    /* engine -> server: the load's result */
    IPC_SUBMIT,    /* server -> engine, id = job: a generation request */
    IPC_SUBMITTED, /* engine -> server: engine_submit's result */
    IPC_EVENTS,    /* engine -> server: a job's status and its new events */
    IPC_CANCEL,    /* server -> engine: engine_job_cancel */
    IPC_RELEASE,   /* server -> engine: the server dropped the job */
    IPC_CALL,      /* server -> engine, id = call: a synchronous call (ipc_call_op) */
    IPC_REPLY,     /* engine -> server: its result */
    IPC_PROGRESS,  /* engine -> server, before IPC_LOADED: the load's progress (a float) */
    IPC_CHECK,     /* server -> warm engine, before IPC_LOAD: engine_start's check of the GPU
                    * choices (they travel as in remote.c's put_check) */
    IPC_CHECKED    /* engine -> server: its result, the note, and the CPU variant it loaded */
} ipc_type;

typedef enum {
    IPC_CALL_INFO = 1,
    IPC_CALL_APPLY,
    IPC_CALL_TOKENIZE,
    IPC_CALL_PIECE,
    IPC_CALL_DETOKENIZE,
    IPC_CALL_TEMPLATE,
    IPC_CALL_EMBED,
    IPC_CALL_EMBED_INPUTS,
    IPC_CALL_RERANK,
    IPC_CALL_COUNT
} ipc_call_op;

typedef struct ipc_hdr {
    uint32_t len;  /* payload bytes */
    uint16_t type; /* ipc_type */
    uint16_t pad;
    uint64_t id; /* job or call id; 0 for IPC_LOAD/IPC_LOADED */
} ipc_hdr;

/* Writes one frame (header, then payload[0..len)) whole with one system call (more only when
 * the socket takes part of it), under mu (may be NULL). Errors: ERR_IO (the other end is gone),
 * ERR_TOO_LARGE (len past LIM_IPC_PAYLOAD_BYTES). Never raises SIGPIPE. */
shimmy_err ipc_send(int fd, pthread_mutex_t *mu, ipc_type type, uint64_t id, const void *payload,
                    size_t len);

/* Several frames written at once (one system call for all of them): ipc_frame_begin appends a
 * header to b and returns where it starts, the payload is appended with the put functions, and
 * ipc_frame_end sets the header's length (false when the payload is past
 * LIM_IPC_PAYLOAD_BYTES: the frame is taken out of b again). ipc_send_frames writes b whole,
 * under mu (may be NULL); errors as ipc_send. */
size_t ipc_frame_begin(buf *b, ipc_type type, uint64_t id);
bool ipc_frame_end(buf *b, size_t at);
shimmy_err ipc_send_frames(int fd, pthread_mutex_t *mu, const buf *b);

/* The reading end of a channel: frames are read through a buffer, so that the frames that
 * arrived together (a header and its payload, the frames of one engine step) take one read.
 * One thread at a time. */
typedef struct ipc_reader {
    int fd;
    bool poll_first; /* waits in poll(POLLIN), not in read: see ipc_reader_init */
    size_t off, len; /* unread bytes: data[off..len) */
    char data[LIM_IPC_READ_BYTES];
} ipc_reader;

/* poll_first: wait for data in poll(POLLIN) before each read. A thread blocked in read on a
 * socket is woken (for nothing) each time the peer takes bytes that other threads wrote to the
 * same socket; poll wakes only for input. Costs one more system call per read: for an end that
 * mostly writes (an engine process: its main thread reads a frame per request while its engine
 * thread writes one per token). */
void ipc_reader_init(ipc_reader *r, int fd, bool poll_first);
/* Reads one frame into *h and payload (reset first). Errors: ERR_IO (end of stream or a read
 * error), ERR_TOO_LARGE (a payload past LIM_IPC_PAYLOAD_BYTES: the stream is unusable). */
shimmy_err ipc_recv(ipc_reader *r, ipc_hdr *h, buf *payload);
/* Bytes read from the descriptor and not yet taken: ipc_recv has (part of) a frame without
 * waiting for the descriptor. */
static inline bool ipc_reader_buffered(const ipc_reader *r) {
    return r->off < r->len;
}
/* Fills an empty buffer with one read: waiting as the descriptor's SO_RCVTIMEO lets it (wait), or
 * not at all. True when ipc_recv has something to take without waiting for it (data, or the end
 * of the stream or an error, which ipc_recv then reports); false when nothing came in time. A
 * read that times out inside ipc_recv (a frame in pieces) is retried there. */
bool ipc_reader_fill(ipc_reader *r, bool wait);

/* ---- payloads ---- */

void ipc_put_u32(buf *b, uint32_t v);
void ipc_put_u64(buf *b, uint64_t v);
void ipc_put_bytes(buf *b, const void *p, size_t n); /* length-prefixed */
void ipc_put_str(buf *b, const char *s);             /* NULL travels as NULL */

typedef struct ipc_rd {
    const char *p;
    size_t left;
    bool bad; /* a read went past the end: every later read gives 0/NULL */
} ipc_rd;

void ipc_rd_init(ipc_rd *r, const buf *payload);
uint32_t ipc_get_u32(ipc_rd *r);
uint64_t ipc_get_u64(ipc_rd *r);
/* Borrowed from the payload; *n its length. NULL when bad. */
const void *ipc_get_bytes(ipc_rd *r, size_t *n);
/* Borrowed, NUL-terminated; NULL when it was NULL or the payload is bad. */
const char *ipc_get_str(ipc_rd *r);

#endif
