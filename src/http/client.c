/* http/client: see client.h. libcurl is opened with dlopen on the first request, not linked:
 * it brings 20 more shared libraries (TLS, Kerberos, LDAP, SSH, ...) whose loading and symbol
 * binding every process start paid (about 11.6 M of 22.6 M instructions of the dynamic loader's
 * work), the server and each model's engine process included, for the two subcommands that make
 * outgoing requests (discover --server, run). Only its types and constants come from its header. */
#include "http/client.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

/* The libcurl functions used here, resolved once (the soname of libcurl 7.16 and later). */
static struct {
    CURLcode (*global_init)(long flags);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *c, CURLoption opt, ...);
    CURLcode (*easy_perform)(CURL *c);
    CURLcode (*easy_getinfo)(CURL *c, CURLINFO info, ...);
    void (*easy_cleanup)(CURL *c);
    const char *(*easy_strerror)(CURLcode rc);
    struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
    void (*slist_free_all)(struct curl_slist *l);
    char why[256]; /* why it could not be opened, "" when it was */
} CU;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void *sym(void *h, const char *name) {
    void *p = dlsym(h, name);
    if (p == NULL && CU.why[0] == '\0')
        snprintf(CU.why, sizeof CU.why, "libcurl.so.4 has no %s", name);
    return p;
}

static void curl_start(void) {
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *e = dlerror();
        snprintf(CU.why, sizeof CU.why, "%s (install libcurl4)", e ? e : "libcurl.so.4 not found");
        return;
    }
    *(void **)&CU.global_init = sym(h, "curl_global_init");
    *(void **)&CU.easy_init = sym(h, "curl_easy_init");
    *(void **)&CU.easy_setopt = sym(h, "curl_easy_setopt");
    *(void **)&CU.easy_perform = sym(h, "curl_easy_perform");
    *(void **)&CU.easy_getinfo = sym(h, "curl_easy_getinfo");
    *(void **)&CU.easy_cleanup = sym(h, "curl_easy_cleanup");
    *(void **)&CU.easy_strerror = sym(h, "curl_easy_strerror");
    *(void **)&CU.slist_append = sym(h, "curl_slist_append");
    *(void **)&CU.slist_free_all = sym(h, "curl_slist_free_all");
    if (CU.why[0] == '\0')
        CU.global_init(CURL_GLOBAL_DEFAULT);
}

/* A new easy handle into *out. Errors: ERR_IO (libcurl cannot be loaded: the loader's reason),
 * ERR_NOMEM. */
static shimmy_err easy_new(CURL **out, char *err, size_t errlen) {
    pthread_once(&curl_once, curl_start);
    if (CU.why[0] != '\0')
        return err_set(err, errlen, ERR_IO, "cannot load libcurl: %s", CU.why);
    *out = CU.easy_init();
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
    CU.easy_setopt(c, CURLOPT_URL, url);
    CU.easy_setopt(c, CURLOPT_POST, 1L);
    CU.easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    CU.easy_setopt(c, CURLOPT_TIMEOUT, (long)timeout_s);
    CU.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CU.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    CU.easy_setopt(c, CURLOPT_WRITEDATA, resp);
    CURLcode rc = CU.easy_perform(c);
    shimmy_err e = SHIMMY_OK;
    if (rc != CURLE_OK)
        e = err_set(err, errlen, ERR_IO, "%s: %s", url, CU.easy_strerror(rc));
    else
        CU.easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    CU.easy_cleanup(c);
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
    CU.easy_setopt(c, CURLOPT_URL, r->url);
    if (r->body != NULL) {
        CU.easy_setopt(c, CURLOPT_POSTFIELDS, r->body);
        *hdrs = CU.slist_append(*hdrs, "Content-Type: application/json");
    }
    if (r->bearer != NULL && snprintf(auth, sizeof auth, "Authorization: Bearer %s", r->bearer) <
                                 (int)sizeof auth)
        *hdrs = CU.slist_append(*hdrs, auth);
    CU.easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    CU.easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    CU.easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)r->connect_timeout_s);
    CU.easy_setopt(c, CURLOPT_TIMEOUT, (long)r->timeout_s);
    CU.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CU.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_piece);
    CU.easy_setopt(c, CURLOPT_WRITEDATA, (void *)r);
    CU.easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    CU.easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    CU.easy_setopt(c, CURLOPT_XFERINFODATA, (void *)r);
}

shimmy_err http_client_do(const http_client_req *r, long *status, char *err, size_t errlen) {
    *status = 0;
    CURL *c;
    shimmy_err e0 = easy_new(&c, err, errlen);
    if (e0 != SHIMMY_OK)
        return e0;
    struct curl_slist *hdrs = NULL;
    req_setup(c, r, &hdrs);
    CURLcode rc = CU.easy_perform(c);
    shimmy_err e = SHIMMY_OK;
    if (rc == CURLE_ABORTED_BY_CALLBACK || rc == CURLE_WRITE_ERROR)
        e = err_set(err, errlen, ERR_CANCELLED, "cancelled");
    else if (rc != CURLE_OK)
        e = err_set(err, errlen, ERR_IO, "%s: %s", r->url, CU.easy_strerror(rc));
    CU.easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    CU.slist_free_all(hdrs);
    CU.easy_cleanup(c);
    return e;
}
