/* http/guard: who may talk to the server. Pure checks over header values, used by server.c
 * before any route runs: the Host header against DNS rebinding, the Origin header against the
 * allow-list (browser safety), API keys (constant-time), and the reading of a keys file. Knows
 * nothing of libmicrohttpd; see docs/SECURITY.md for the policy these checks implement. */
#ifndef SHIMMY_HTTP_GUARD_H
#define SHIMMY_HTTP_GUARD_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

/* The trust settings of a server (from `shimmy serve` flags). All strings borrowed for the
 * server's life. */
typedef struct http_trust {
    const char *const *origins; /* --cors-origin: exact origins ("https://app.example"), or "*" */
    size_t n_origins;
    const char *const *hosts; /* --allowed-host: names ("box.lan"), ".suffix", or "*" */
    size_t n_hosts;
    const char *const *keys; /* --api-key / SHIMMY_API_KEY values; none: no key needed */
    size_t n_keys;
    bool auth_health;     /* the open paths need a key too */
    const char *tls_cert; /* PEM file paths: both or neither */
    const char *tls_key;
} http_trust;

typedef enum {
    GUARD_ORIGIN_NONE,    /* no Origin header: not a cross-site browser request */
    GUARD_ORIGIN_SAME,    /* the server's own page (Origin matches Host) */
    GUARD_ORIGIN_ALLOWED, /* another origin on the allow-list (or a loopback page by default) */
    GUARD_ORIGIN_FOREIGN  /* anything else: refused */
} guard_origin;

/* True when the Host header value (borrowed; "name[:port]", "[v6]:port") names this server:
 * an IP literal (a rebinding attack always carries a DNS name), "localhost" or "*.localhost",
 * bound_host, this machine's hostname, or a --allowed-host entry. NULL host: false. */
bool guard_host_ok(const http_trust *t, const char *host, const char *bound_host);

/* Classifies the Origin header (origin may be NULL) of a request whose Host header is host
 * (may be NULL) arriving over https when tls. */
guard_origin guard_origin_check(const http_trust *t, const char *origin, const char *host,
                                bool tls);

/* True when the presented key (borrowed, may be NULL) equals one of keys[0..n). Takes time that
 * depends only on the stored keys, never on where the presented one first differs. */
bool guard_key_ok(const char *const *keys, size_t n, const char *presented);

/* The key of an "Authorization: Bearer KEY" value (borrowed; NULL when absent or another
 * scheme), else the x-api-key value. Returns a pointer into the borrowed strings or NULL. */
const char *guard_presented_key(const char *authorization, const char *x_api_key);

/* A set of keys read from a file (one per line; blank lines and lines starting with '#'
 * skipped; surrounding white space trimmed). */
typedef struct guard_keys {
    char **keys; /* owned */
    size_t n;
} guard_keys;

/* Reads path into *out (replacing nothing: out is filled fresh). Errors: ERR_IO (cannot read,
 * with the reason), ERR_USAGE (no key in the file, a line over 4096 bytes), ERR_NOMEM. */
shimmy_err guard_keys_read(const char *path, guard_keys *out, char *err, size_t errlen);
void guard_keys_free(guard_keys *k);

#endif
