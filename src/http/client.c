/* http/client: see client.h. libcurl is opened with dlopen on the first request, not linked
 * (core/netlib.h): it brings 20 more shared libraries (TLS, Kerberos, LDAP, SSH, ...) whose
 * loading and symbol binding every process start paid (about 11.6 M of 22.6 M instructions of the
 * dynamic loader's work), the server and each model's engine process included, for the few
 * commands that make outgoing requests (discover --server, run, pull). */
#include "http/client.h"

#include "core/netlib.h"

#include <stdint.h>
#include <stdio.h>

/* A new easy handle into *out. Errors: ERR_IO (libcurl cannot be loaded: the loader's reason),
 * ERR_NOMEM. */
static shimmy_err easy_new(CURL **out, char *err, size_t errlen) {
    if (!netlib_curl_load(err, errlen))
        return ERR_IO;
    *out = NL_CURL.easy_init();
    return *out != NULL ? SHIMMY_OK : err_set(err, errlen, ERR_NOMEM, "cannot start libcurl");
}

static size_t on_body(char *p, size_t size, size_t n, void *ctx) {
    return buf_append(ctx, p, size * n) == SHIMMY_OK ? size * n : 0;
}

shimmy_err http_client_post(const char *url, const char *body, int timeout_s, buf *resp,
                            long *status, char *err, size_t errlen) {
    CURL *c;
    shimmy_err e0 = easy_new(&c, err, errlen);
    if (e0 != SHIMMY_OK)
        return e0;
    NL_CURL.easy_setopt(c, CURLOPT_URL, url);
    NL_CURL.easy_setopt(c, CURLOPT_POST, 1L);
    NL_CURL.easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    NL_CURL.easy_setopt(c, CURLOPT_TIMEOUT, (long)timeout_s);
    NL_CURL.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    NL_CURL.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    NL_CURL.easy_setopt(c, CURLOPT_WRITEDATA, resp);
    CURLcode rc = NL_CURL.easy_perform(c);
    shimmy_err e = SHIMMY_OK;
    if (rc != CURLE_OK)
        e = err_set(err, errlen, ERR_IO, "%s: %s", url, NL_CURL.easy_strerror(rc));
    else
        NL_CURL.easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    NL_CURL.easy_cleanup(c);
    return e;
}

/* ---- streaming requests ---- */

static size_t on_piece(char *p, size_t size, size_t n, void *ctx) {
    const http_client_req *r = ctx;
    if (r->abort != NULL && *r->abort)
        return 0;
    if (r->on_data != NULL && !r->on_data(r->ctx, p, size * n))
        return 0;
    return size * n;
}

/* libcurl calls this at least once a second, also while no byte arrives. */
static int on_progress(void *ctx, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)dt, (void)dn, (void)ut, (void)un;
    const http_client_req *r = ctx;
    return r->abort != NULL && *r->abort;
}

static void req_setup(CURL *c, const http_client_req *r, struct curl_slist **hdrs) {
    char auth[1024];
    NL_CURL.easy_setopt(c, CURLOPT_URL, r->url);
    if (r->body != NULL) {
        NL_CURL.easy_setopt(c, CURLOPT_POSTFIELDS, r->body);
        *hdrs = NL_CURL.slist_append(*hdrs, "Content-Type: application/json");
    }
    if (r->bearer != NULL &&
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", r->bearer) < (int)sizeof auth)
        *hdrs = NL_CURL.slist_append(*hdrs, auth);
    NL_CURL.easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    NL_CURL.easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    NL_CURL.easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)r->connect_timeout_s);
    NL_CURL.easy_setopt(c, CURLOPT_TIMEOUT, (long)r->timeout_s);
    /* a redirect may lead to http(s) only (libcurl's default allows FTP too); a libcurl too old
     * to be told so (before 7.85) follows none */
    if (r->max_redirects > 0 &&
        NL_CURL.easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") == CURLE_OK) {
        NL_CURL.easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        NL_CURL.easy_setopt(c, CURLOPT_MAXREDIRS, (long)r->max_redirects);
    }
    NL_CURL.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    NL_CURL.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_piece);
    NL_CURL.easy_setopt(c, CURLOPT_WRITEDATA, (void *)r);
    NL_CURL.easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    NL_CURL.easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    NL_CURL.easy_setopt(c, CURLOPT_XFERINFODATA, (void *)r);
}

shimmy_err http_client_do(const http_client_req *r, long *status, char *err, size_t errlen) {
    *status = 0;
    CURL *c;
    shimmy_err e0 = easy_new(&c, err, errlen);
    if (e0 != SHIMMY_OK)
        return e0;
    struct curl_slist *hdrs = NULL;
    req_setup(c, r, &hdrs);
    CURLcode rc = NL_CURL.easy_perform(c);
    shimmy_err e = SHIMMY_OK;
    if (rc == CURLE_ABORTED_BY_CALLBACK || rc == CURLE_WRITE_ERROR)
        e = err_set(err, errlen, ERR_CANCELLED, "cancelled");
    else if (rc != CURLE_OK)
        e = err_set(err, errlen, ERR_IO, "%s: %s", r->url, NL_CURL.easy_strerror(rc));
    NL_CURL.easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    NL_CURL.slist_free_all(hdrs);
    NL_CURL.easy_cleanup(c);
    return e;
}
