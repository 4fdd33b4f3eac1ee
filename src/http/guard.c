/* http/guard: Host, Origin and API key checks (see guard.h). */
#include "http/guard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/limits.h"

/* The host part of a Host header or of an origin's authority ("[::1]:8080" -> "::1",
 * "Box.LAN.:80" -> "box.lan"), lowercased, into out. False when it does not fit or is empty. */
static bool host_part(const char *hostport, size_t len, char *out, size_t outlen) {
    const char *h = hostport;
    size_t n = len;
    if (n > 0 && h[0] == '[') {
        const char *end = memchr(h, ']', n);
        if (end == NULL || (end + 1 < h + n && end[1] != ':'))
            return false;
        h++;
        n = (size_t)(end - h);
    } else {
        const char *colon = memchr(h, ':', n);
        if (colon != NULL) {
            if (memchr(colon + 1, ':', n - (size_t)(colon + 1 - h)) != NULL)
                return false; /* a bare IPv6 address is not a valid Host */
            n = (size_t)(colon - h);
        }
        if (n > 1 && h[n - 1] == '.')
            n--; /* "localhost." is "localhost" */
    }
    if (n == 0 || n >= outlen)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    out[n] = '\0';
    return true;
}

static bool is_ip_literal(const char *h) {
    unsigned char addr[16];
    return inet_pton(AF_INET, h, addr) == 1 || inet_pton(AF_INET6, h, addr) == 1;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* h (lowercase host) against one --allowed-host entry: "*", an exact name, or ".suffix". */
static bool host_entry_match(const char *entry, const char *h) {
    if (strcmp(entry, "*") == 0)
        return true;
    if (entry[0] == '.')
        return ends_with(h, entry) || strcasecmp(h, entry + 1) == 0;
    return strcasecmp(entry, h) == 0;
}

static bool is_own_hostname(const char *h) {
    char name[LIM_HOST_BYTES];
    if (gethostname(name, sizeof name) != 0)
        return false;
    name[sizeof name - 1] = '\0';
    return name[0] != '\0' && strcasecmp(name, h) == 0;
}

bool guard_host_ok(const http_trust *t, const char *host, const char *bound_host) {
    char h[LIM_HOST_BYTES], b[LIM_HOST_BYTES];
    if (host == NULL || !host_part(host, strlen(host), h, sizeof h))
        return false;
    if (is_ip_literal(h) || strcmp(h, "localhost") == 0 || ends_with(h, ".localhost"))
        return true;
    if (bound_host != NULL && host_part(bound_host, strlen(bound_host), b, sizeof b) &&
        strcmp(b, h) == 0)
        return true;
    for (size_t i = 0; t != NULL && i < t->n_hosts; i++)
        if (host_entry_match(t->hosts[i], h))
            return true;
    return is_own_hostname(h);
}

/* A page served from this machine's loopback: http(s)://localhost|127.0.0.1|[::1][:port]. */
static bool origin_is_loopback(const char *origin) {
    const char *rest;
    if (strncasecmp(origin, "http://", 7) == 0)
        rest = origin + 7;
    else if (strncasecmp(origin, "https://", 8) == 0)
        rest = origin + 8;
    else
        return false;
    if (strchr(rest, '/') != NULL)
        return false;
    char h[LIM_HOST_BYTES];
    if (!host_part(rest, strlen(rest), h, sizeof h))
        return false;
    return strcmp(h, "localhost") == 0 || strcmp(h, "127.0.0.1") == 0 || strcmp(h, "::1") == 0;
}

/* Origin equals scheme://Host of this request. */
static bool origin_is_same(const char *origin, const char *host, bool tls) {
    const char *scheme = tls ? "https://" : "http://";
    size_t n = strlen(scheme);
    return host != NULL && strncasecmp(origin, scheme, n) == 0 && strcasecmp(origin + n, host) == 0;
}

guard_origin guard_origin_check(const http_trust *t, const char *origin, const char *host,
                                bool tls) {
    if (origin == NULL)
        return GUARD_ORIGIN_NONE;
    if (origin_is_same(origin, host, tls))
        return GUARD_ORIGIN_SAME;
    for (size_t i = 0; t != NULL && i < t->n_origins; i++)
        if (strcmp(t->origins[i], "*") == 0 || strcasecmp(t->origins[i], origin) == 0)
            return GUARD_ORIGIN_ALLOWED;
    return origin_is_loopback(origin) ? GUARD_ORIGIN_ALLOWED : GUARD_ORIGIN_FOREIGN;
}

/* Constant time in the length of key. */
static bool key_equal(const char *key, const char *presented, size_t plen) {
    size_t klen = strlen(key);
    unsigned diff = klen != plen;
    for (size_t i = 0; i < klen; i++) {
        unsigned char p = i < plen ? (unsigned char)presented[i] : 0;
        diff |= (unsigned)(p ^ (unsigned char)key[i]);
    }
    return diff == 0;
}

bool guard_key_ok(const char *const *keys, size_t n, const char *presented) {
    if (presented == NULL)
        return false;
    size_t plen = strlen(presented);
    bool ok = false;
    for (size_t i = 0; i < n; i++)
        ok |= key_equal(keys[i], presented, plen); /* no early exit */
    return ok && plen > 0;
}

const char *guard_presented_key(const char *authorization, const char *x_api_key) {
    if (authorization != NULL && strncasecmp(authorization, "Bearer ", 7) == 0) {
        const char *k = authorization + 7;
        while (*k == ' ')
            k++;
        return k;
    }
    return x_api_key;
}

static shimmy_err keys_add(guard_keys *k, const char *s, size_t n) {
    char **grown = realloc(k->keys, (k->n + 1) * sizeof *grown);
    if (grown == NULL)
        return ERR_NOMEM;
    k->keys = grown;
    char *copy = malloc(n + 1);
    if (copy == NULL)
        return ERR_NOMEM;
    memcpy(copy, s, n);
    copy[n] = '\0';
    k->keys[k->n++] = copy;
    return SHIMMY_OK;
}

/* One line of a keys file: trimmed; skipped when blank or a comment. */
static shimmy_err keys_line(guard_keys *k, const char *line) {
    const char *s = line;
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || s[0] == '#')
        return SHIMMY_OK;
    return keys_add(k, s, n);
}

shimmy_err guard_keys_read(const char *path, guard_keys *out, char *err, size_t errlen) {
    shimmy_err e = SHIMMY_OK;
    out->keys = NULL;
    out->n = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return err_set(err, errlen, ERR_IO, "%s: %s", path, strerror(errno));
    char line[LIM_KEY_LINE_BYTES + 2];
    int lineno = 0;
    while (e == SHIMMY_OK && fgets(line, sizeof line, f) != NULL) {
        lineno++;
        size_t n = strlen(line);
        if (n > LIM_KEY_LINE_BYTES && line[n - 1] != '\n') {
            e = err_set(err, errlen, ERR_USAGE, "%s:%d: line longer than %d bytes", path, lineno,
                        LIM_KEY_LINE_BYTES);
            break;
        }
        e = keys_line(out, line);
        if (e == ERR_NOMEM)
            err_set(err, errlen, e, "out of memory");
    }
    if (e == SHIMMY_OK && ferror(f))
        e = err_set(err, errlen, ERR_IO, "%s: read error", path);
    if (e == SHIMMY_OK && out->n == 0)
        e = err_set(err, errlen, ERR_USAGE, "%s: no API key in the file", path);
    fclose(f);
    if (e != SHIMMY_OK)
        guard_keys_free(out);
    return e;
}

void guard_keys_free(guard_keys *k) {
    for (size_t i = 0; i < k->n; i++)
        free(k->keys[i]);
    free(k->keys);
    k->keys = NULL;
    k->n = 0;
}
