/* core/netlib: see netlib.h. */
#include "core/netlib.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

netlib_curl NL_CURL;

/* ---- libcurl ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static char curl_why[256]; /* why libcurl could not be opened, "" when it was */

static void *sym(void *h, const char *name, char *why, size_t whylen, const char *lib) {
    void *p = dlsym(h, name);
    if (p == NULL && why[0] == '\0')
        snprintf(why, whylen, "%s has no %s", lib, name);
    return p;
}

static void curl_start(void) {
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    char *w = curl_why;
    size_t wl = sizeof curl_why;
    if (h == NULL) {
        const char *e = dlerror();
        snprintf(w, wl, "%s", e ? e : "libcurl.so.4 not found");
        return;
    }
    CURLcode (*global_init)(long) = NULL;
    *(void **)&global_init = sym(h, "curl_global_init", w, wl, "libcurl.so.4");
    *(void **)&NL_CURL.easy_init = sym(h, "curl_easy_init", w, wl, "libcurl.so.4");
    *(void **)&NL_CURL.easy_setopt = sym(h, "curl_easy_setopt", w, wl, "libcurl.so.4");
    *(void **)&NL_CURL.easy_perform = sym(h, "curl_easy_perform", w, wl, "libcurl.so.4");
    *(void **)&NL_CURL.easy_getinfo = sym(h, "curl_easy_getinfo", w, wl, "libcurl.so.4");
    *(void **)&NL_CURL.easy_cleanup = sym(h, "curl_easy_cleanup", w, wl, "libcurl.so.4");
    *(void **)&NL_CURL.easy_strerror = sym(h, "curl_easy_strerror", w, wl, "libcurl.so.4");
    *(void **)&NL_CURL.slist_append = sym(h, "curl_slist_append", w, wl, "libcurl.so.4");
    *(void **)&NL_CURL.slist_free_all = sym(h, "curl_slist_free_all", w, wl, "libcurl.so.4");
    if (curl_why[0] == '\0')
        global_init(CURL_GLOBAL_DEFAULT);
}

bool netlib_curl_load(char *err, size_t errlen) {
    pthread_once(&curl_once, curl_start);
    if (curl_why[0] == '\0')
        return true;
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "cannot load libcurl: %s (install libcurl4)", curl_why);
    return false;
}

/* ---- libcrypto's sha256 (the EVP interface of OpenSSL 1.1 and 3) ---- */

static struct {
    void *(*md_ctx_new)(void);
    void (*md_ctx_free)(void *ctx);
    const void *(*sha256)(void);
    int (*digest_init_ex)(void *ctx, const void *type, void *engine);
    int (*digest_update)(void *ctx, const void *d, size_t n);
    int (*digest_final_ex)(void *ctx, unsigned char *md, unsigned int *n);
} CR;

static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;
static char crypto_why[256];

static void crypto_start(void) {
    static const char *const names[] = {"libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so"};
    void *h = NULL;
    for (size_t i = 0; h == NULL && i < sizeof names / sizeof names[0]; i++)
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    char *w = crypto_why;
    size_t wl = sizeof crypto_why;
    if (h == NULL) {
        snprintf(w, wl, "libcrypto.so.3 not found (install libssl3)");
        return;
    }
    *(void **)&CR.md_ctx_new = sym(h, "EVP_MD_CTX_new", w, wl, "libcrypto");
    *(void **)&CR.md_ctx_free = sym(h, "EVP_MD_CTX_free", w, wl, "libcrypto");
    *(void **)&CR.sha256 = sym(h, "EVP_sha256", w, wl, "libcrypto");
    *(void **)&CR.digest_init_ex = sym(h, "EVP_DigestInit_ex", w, wl, "libcrypto");
    *(void **)&CR.digest_update = sym(h, "EVP_DigestUpdate", w, wl, "libcrypto");
    *(void **)&CR.digest_final_ex = sym(h, "EVP_DigestFinal_ex", w, wl, "libcrypto");
}

bool netlib_sha256_init(netlib_sha256 *s, char *err, size_t errlen) {
    s->ctx = NULL;
    pthread_once(&crypto_once, crypto_start);
    if (crypto_why[0] != '\0') {
        snprintf(err, errlen, "cannot load libcrypto for sha256: %s", crypto_why);
        return false;
    }
    if ((s->ctx = CR.md_ctx_new()) == NULL || !netlib_sha256_reset(s)) {
        snprintf(err, errlen, "cannot start a sha256");
        return false;
    }
    return true;
}

bool netlib_sha256_reset(netlib_sha256 *s) {
    return CR.digest_init_ex(s->ctx, CR.sha256(), NULL) == 1;
}

void netlib_sha256_update(netlib_sha256 *s, const void *p, size_t n) {
    CR.digest_update(s->ctx, p, n);
}

void netlib_sha256_hex(netlib_sha256 *s, char hex[65]) {
    unsigned char md[64];
    unsigned int n = 0;
    CR.digest_final_ex(s->ctx, md, &n);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", i < n ? md[i] : 0);
    hex[64] = '\0';
}

void netlib_sha256_free(netlib_sha256 *s) {
    if (s->ctx != NULL)
        CR.md_ctx_free(s->ctx);
    s->ctx = NULL;
}
