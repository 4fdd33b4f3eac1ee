/* core/netlib: the libraries for outgoing HTTP and checksums, opened with dlopen on first use and
 * never linked: libcurl (http/client.c's requests, models/pull.c's downloads) brings 20 more
 * shared libraries whose loading and symbol binding every process start paid (about half of the
 * dynamic loader's work), the server and each model's engine process included, for the few
 * commands that talk to the network; libcrypto (OpenSSL) gives pull its sha256. Only the headers'
 * types and constants are compiled in.
 *
 * Thread-safety: the loads run once (pthread_once); after a load returned true its table may be
 * read from any thread. */
#ifndef SHIMMY_NETLIB_H
#define SHIMMY_NETLIB_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

/* The libcurl functions shimmy calls, resolved from libcurl.so.4 (libcurl 7.16 and later). */
typedef struct netlib_curl {
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *c, CURLoption opt, ...);
    CURLcode (*easy_perform)(CURL *c);
    CURLcode (*easy_getinfo)(CURL *c, CURLINFO info, ...);
    void (*easy_cleanup)(CURL *c);
    const char *(*easy_strerror)(CURLcode rc);
    struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
    void (*slist_free_all)(struct curl_slist *l);
} netlib_curl;

/* Filled by netlib_curl_load; read it only after a load returned true. */
extern netlib_curl NL_CURL;

/* Opens libcurl (once; curl_global_init included). Returns true when NL_CURL is usable, else
 * false with "cannot load libcurl: REASON (install libcurl4)" in err. */
bool netlib_curl_load(char *err, size_t errlen);

/* A sha256 computation through libcrypto (libcrypto.so.3). */
typedef struct netlib_sha256 {
    void *ctx; /* EVP_MD_CTX, owned */
} netlib_sha256;

/* Starts a sha256 in *s. Returns false with the reason in err when libcrypto cannot be loaded or
 * the context cannot be made. Free with netlib_sha256_free, also after a failure. */
bool netlib_sha256_init(netlib_sha256 *s, char *err, size_t errlen);
/* Starts *s over (an empty input). Returns false on failure. */
bool netlib_sha256_reset(netlib_sha256 *s);
/* Adds n bytes (borrowed). */
void netlib_sha256_update(netlib_sha256 *s, const void *p, size_t n);
/* Writes the digest of everything added as 64 lowercase hex digits and a NUL into hex. */
void netlib_sha256_hex(netlib_sha256 *s, char hex[65]);
void netlib_sha256_free(netlib_sha256 *s);

#endif
