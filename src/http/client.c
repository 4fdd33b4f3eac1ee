/* http/client: see client.h. */
#include "http/client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_start(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static size_t on_body(char *p, size_t size, size_t n, void *ctx) {
    return buf_append(ctx, p, size * n) == SHIMMY_OK ? size * n : 0;
}

shimmy_err http_client_post(const char *url, const char *body, int timeout_s, buf *resp,
                            long *status, char *err, size_t errlen) {
    pthread_once(&curl_once, curl_start);
    CURL *c = curl_easy_init();
    if (c == NULL)
        return err_set(err, errlen, ERR_NOMEM, "cannot start libcurl");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)timeout_s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    CURLcode rc = curl_easy_perform(c);
    shimmy_err e = SHIMMY_OK;
    if (rc != CURLE_OK)
        e = err_set(err, errlen, ERR_IO, "%s: %s", url, curl_easy_strerror(rc));
    else
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
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
    curl_easy_setopt(c, CURLOPT_URL, r->url);
    if (r->body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body);
        *hdrs = curl_slist_append(*hdrs, "Content-Type: application/json");
    }
    if (r->bearer != NULL && snprintf(auth, sizeof auth, "Authorization: Bearer %s", r->bearer) <
                                 (int)sizeof auth)
        *hdrs = curl_slist_append(*hdrs, auth);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)r->connect_timeout_s);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)r->timeout_s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_piece);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, (void *)r);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)r);
}

shimmy_err http_client_do(const http_client_req *r, long *status, char *err, size_t errlen) {
    pthread_once(&curl_once, curl_start);
    *status = 0;
    CURL *c = curl_easy_init();
    if (c == NULL)
        return err_set(err, errlen, ERR_NOMEM, "cannot start libcurl");
    struct curl_slist *hdrs = NULL;
    req_setup(c, r, &hdrs);
    CURLcode rc = curl_easy_perform(c);
    shimmy_err e = SHIMMY_OK;
    if (rc == CURLE_ABORTED_BY_CALLBACK || rc == CURLE_WRITE_ERROR)
        e = err_set(err, errlen, ERR_CANCELLED, "cancelled");
    else if (rc != CURLE_OK)
        e = err_set(err, errlen, ERR_IO, "%s: %s", r->url, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return e;
}
