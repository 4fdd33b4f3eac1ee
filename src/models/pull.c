/* models/pull: see pull.h. This file owns the transfers (libcurl), the verified and resumable
 * file download, the ledger and the dispatch between the two protocols (pull_hf.c,
 * pull_ollama.c). */
#include "models/pull.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/fmt.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/netlib.h"
#include "models/pull_internal.h"

#ifndef SHIMMY_VERSION
#define SHIMMY_VERSION "0.0.0"
#endif

int pull_fmt(char *out, size_t outlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, outlen, fmt, ap);
    va_end(ap);
    return n;
}

void pull_say(pull_ctx *c, const char *status, const char *digest, uint64_t total,
              uint64_t completed) {
    if (c->o->progress == NULL)
        return;
    pull_progress p = {
        .status = status, .digest = digest, .total = total, .completed = completed, .rate = 0};
    c->o->progress(c->o->ctx, &p);
}

/* ---- headers ---- */

/* "value" of a header line "Name: value\r\n" when its name is name (case-insensitive). */
static bool header_value(const char *line, size_t n, const char *name, char *out, size_t outlen) {
    size_t k = strlen(name);
    if (n <= k + 1 || strncasecmp(line, name, k) != 0 || line[k] != ':')
        return false;
    const char *v = line + k + 1;
    size_t len = n - k - 1;
    while (len > 0 && (*v == ' ' || *v == '\t'))
        v++, len--;
    while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
        len--;
    if (len >= outlen)
        len = outlen - 1;
    memcpy(out, v, len);
    out[len] = '\0';
    return true;
}

/* An ETag without W/ and quotes. */
static void etag_clean(char *s) {
    char *p = s;
    if (strncmp(p, "W/", 2) == 0)
        p += 2;
    if (*p == '"')
        p++;
    size_t n = strlen(p);
    if (n > 0 && p[n - 1] == '"')
        n--;
    memmove(s, p, n);
    s[n] = '\0';
}

static uint64_t parse_u64(const char *s) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    return errno == 0 && end != s ? (uint64_t)v : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    pull_headers *h = ud;
    size_t len = size * n;
    char v[2048];
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) /* a new response (after a redirect) */
        memset(h, 0, sizeof *h);
    else if (header_value(p, len, "X-Repo-Commit", v, sizeof v))
        pull_fmt(h->repo_commit, sizeof h->repo_commit, "%s", v);
    else if (header_value(p, len, "X-Linked-Etag", v, sizeof v)) {
        pull_fmt(h->linked_etag, sizeof h->linked_etag, "%s", v);
        etag_clean(h->linked_etag);
    } else if (header_value(p, len, "ETag", v, sizeof v)) {
        pull_fmt(h->etag, sizeof h->etag, "%s", v);
        etag_clean(h->etag);
    } else if (header_value(p, len, "X-Linked-Size", v, sizeof v))
        h->linked_size = parse_u64(v);
    else if (header_value(p, len, "Content-Length", v, sizeof v))
        h->content_length = parse_u64(v);
    else if (header_value(p, len, "X-Error-Code", v, sizeof v))
        pull_fmt(h->error_code, sizeof h->error_code, "%s", v);
    else if (header_value(p, len, "X-Error-Message", v, sizeof v))
        pull_fmt(h->error_message, sizeof h->error_message, "%s", v);
    else if (header_value(p, len, "Content-Range", v, sizeof v))
        pull_fmt(h->content_range, sizeof h->content_range, "%s", v);
    else if (header_value(p, len, "Location", v, sizeof v))
        pull_fmt(h->location, sizeof h->location, "%s", v);
    return len;
}

/* ---- transfers ---- */

typedef struct xfer {
    CURL *curl;
    struct curl_slist *hdrs;
    pull_ctx *c;
} xfer;

static int on_abort(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)dt, (void)dn, (void)ut, (void)un;
    pull_ctx *c = ud;
    return c->o->abort != NULL && *c->o->abort;
}

/* A handle with what every pull request shares: HTTP/2 over TLS where the server offers it,
 * proxies from the environment (libcurl's default), a connect timeout, a low-speed abort. */
static shimmy_err xfer_open(xfer *x, pull_ctx *c, const char *url, const char *bearer,
                            const char *accept, char *err, size_t errlen) {
    char line[1200];
    memset(x, 0, sizeof *x);
    x->c = c;
    if (!netlib_curl_load(err, errlen))
        return ERR_IO;
    if ((x->curl = NL_CURL.easy_init()) == NULL)
        return err_set(err, errlen, ERR_NOMEM, "cannot start libcurl");
    if (bearer != NULL && bearer[0] != '\0' &&
        pull_fmt(line, sizeof line, "Authorization: Bearer %s", bearer) < (int)sizeof line)
        x->hdrs = NL_CURL.slist_append(x->hdrs, line);
    if (accept != NULL && pull_fmt(line, sizeof line, "Accept: %s", accept) < (int)sizeof line)
        x->hdrs = NL_CURL.slist_append(x->hdrs, line);
    x->hdrs = NL_CURL.slist_append(x->hdrs, "Accept-Encoding: identity");
    NL_CURL.easy_setopt(x->curl, CURLOPT_URL, url);
    NL_CURL.easy_setopt(x->curl, CURLOPT_HTTPHEADER, x->hdrs);
    NL_CURL.easy_setopt(x->curl, CURLOPT_USERAGENT, "shimmy/" SHIMMY_VERSION);
    NL_CURL.easy_setopt(x->curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    NL_CURL.easy_setopt(x->curl, CURLOPT_NOSIGNAL, 1L);
    NL_CURL.easy_setopt(x->curl, CURLOPT_CONNECTTIMEOUT, (long)LIM_PULL_CONNECT_S);
    NL_CURL.easy_setopt(x->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    NL_CURL.easy_setopt(x->curl, CURLOPT_LOW_SPEED_TIME, (long)LIM_PULL_STALL_S);
    NL_CURL.easy_setopt(x->curl, CURLOPT_MAXREDIRS, 10L);
    NL_CURL.easy_setopt(x->curl, CURLOPT_NOPROGRESS, 0L);
    NL_CURL.easy_setopt(x->curl, CURLOPT_XFERINFOFUNCTION, on_abort);
    NL_CURL.easy_setopt(x->curl, CURLOPT_XFERINFODATA, c);
    return SHIMMY_OK;
}

static void xfer_close(xfer *x) {
    NL_CURL.slist_free_all(x->hdrs);
    if (x->curl != NULL)
        NL_CURL.easy_cleanup(x->curl);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    buf *b = ud;
    if (b == NULL)
        return size * n;
    return buf_append(b, p, size * n) == SHIMMY_OK ? size * n : 0;
}

static shimmy_err curl_failed(pull_ctx *c, CURLcode rc, const char *url, char *err, size_t errlen) {
    if (rc == CURLE_ABORTED_BY_CALLBACK && c->o->abort != NULL && *c->o->abort)
        return err_set(err, errlen, ERR_CANCELLED, "the pull was cancelled");
    return err_set(err, errlen, ERR_IO, "%s: %s", url, NL_CURL.easy_strerror(rc));
}

shimmy_err pull_http(pull_ctx *c, const char *method, const char *url, bool follow,
                     const char *bearer, const char *accept, buf *body, pull_headers *h,
                     long *status, char *err, size_t errlen) {
    xfer x;
    pull_headers local;
    shimmy_err e = xfer_open(&x, c, url, bearer, accept, err, errlen);
    if (e != SHIMMY_OK)
        return e;
    if (h == NULL)
        h = &local;
    memset(h, 0, sizeof *h);
    *status = 0;
    if (strcmp(method, "HEAD") == 0)
        NL_CURL.easy_setopt(x.curl, CURLOPT_NOBODY, 1L);
    NL_CURL.easy_setopt(x.curl, CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
    NL_CURL.easy_setopt(x.curl, CURLOPT_TIMEOUT, (long)LIM_PULL_META_TIMEOUT_S);
    NL_CURL.easy_setopt(x.curl, CURLOPT_HEADERFUNCTION, on_header);
    NL_CURL.easy_setopt(x.curl, CURLOPT_HEADERDATA, h);
    NL_CURL.easy_setopt(x.curl, CURLOPT_WRITEFUNCTION, on_body);
    NL_CURL.easy_setopt(x.curl, CURLOPT_WRITEDATA, body);
    CURLcode rc = NL_CURL.easy_perform(x.curl);
    if (rc != CURLE_OK)
        e = curl_failed(c, rc, url, err, errlen);
    else
        NL_CURL.easy_getinfo(x.curl, CURLINFO_RESPONSE_CODE, status);
    xfer_close(&x);
    return e;
}

/* ---- files ---- */

bool pull_mkparents(const char *path) {
    char p[4096];
    if (pull_fmt(p, sizeof p, "%s", path) >= (int)sizeof p)
        return false;
    char *slash = strrchr(p, '/');
    if (slash == NULL || slash == p)
        return true;
    *slash = '\0';
    for (char *s = p + 1; *s != '\0'; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return false;
        *s = '/';
    }
    return mkdir(p, 0755) == 0 || errno == EEXIST;
}

shimmy_err pull_write_atomic(const char *path, const char *data, size_t len, char *err,
                             size_t errlen) {
    char tmp[4200];
    pull_fmt(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    if (!pull_mkparents(path))
        return err_set(err, errlen, ERR_IO, "cannot create the folder of %s: %s", path,
                       strerror(errno));
    FILE *f = fopen(tmp, "wb");
    if (f == NULL)
        return err_set(err, errlen, ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    bool ok = fwrite(data, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int saved = errno;
        unlink(tmp);
        return err_set(err, errlen, ERR_IO, "cannot write %s: %s", path, strerror(saved));
    }
    return SHIMMY_OK;
}

shimmy_err pull_symlink(const char *target, const char *path, char *err, size_t errlen) {
    char tmp[4200];
    pull_fmt(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    if (!pull_mkparents(path))
        return err_set(err, errlen, ERR_IO, "cannot create the folder of %s: %s", path,
                       strerror(errno));
    unlink(tmp);
    if (symlink(target, tmp) != 0 || rename(tmp, path) != 0) {
        int saved = errno;
        unlink(tmp);
        return err_set(err, errlen, ERR_IO, "cannot link %s: %s", path, strerror(saved));
    }
    return SHIMMY_OK;
}

static uint64_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

uint64_t pull_file_missing(const pull_file *f) {
    if (exists(f->dest))
        return 0;
    uint64_t have = file_size(f->tmp);
    return f->size > have ? f->size - have : 0;
}

shimmy_err pull_check_space(const char *dir, uint64_t need, char *err, size_t errlen) {
    struct statvfs sv;
    if (need == 0)
        return SHIMMY_OK;
    if (statvfs(dir, &sv) != 0)
        return err_set(err, errlen, ERR_IO, "cannot read the free space of %s: %s", dir,
                       strerror(errno));
    uint64_t free_b = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
    const char *cap = getenv("SHIMMY_PULL_FREE_BYTES");
    if (cap != NULL && cap[0] != '\0' && parse_u64(cap) < free_b)
        free_b = parse_u64(cap);
    if (free_b >= need)
        return SHIMMY_OK;
    char n[32], f[32];
    fmt_bytes(need, n, sizeof n);
    fmt_bytes(free_b, f, sizeof f);
    return err_set(err, errlen, ERR_IO,
                   "not enough disk space in %s: the pull needs %s more, "
                   "%s free; nothing was downloaded",
                   dir, n, f);
}

/* ---- one verified, resumable download ---- */

typedef struct dl {
    pull_ctx *c;
    pull_file *f;
    CURL *curl;
    pull_headers h;
    int fd;
    netlib_sha256 md;
    uint64_t have;  /* bytes in the temporary file (hashed) */
    uint64_t start; /* have when this transfer began */
    bool checked;   /* the first body bytes' status was looked at */
    long status;
    buf errbody;     /* body of an error response */
    int write_errno; /* a write that failed (disk full) */
    bool bad_range;  /* a 206 for another offset than asked */
    bool too_long;   /* more bytes than the expected size */
    int64_t t0_ns, last_ns;
} dl;

/* Hashes what the temporary file holds already. */
static bool dl_hash_existing(dl *d) {
    char b[1 << 16];
    ssize_t n;
    if (lseek(d->fd, 0, SEEK_SET) != 0)
        return false;
    d->have = 0;
    while ((n = read(d->fd, b, sizeof b)) > 0) {
        netlib_sha256_update(&d->md, b, (size_t)n);
        d->have += (uint64_t)n;
    }
    return n == 0;
}

static bool dl_restart(dl *d) {
    d->have = 0;
    return ftruncate(d->fd, 0) == 0 && lseek(d->fd, 0, SEEK_SET) == 0 &&
           netlib_sha256_reset(&d->md);
}

/* The first body bytes: a 200 to a Range request starts over; a 206 must start where asked. */
static void dl_check_status(dl *d) {
    d->checked = true;
    NL_CURL.easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &d->status);
    if (d->status == 200 && d->have > 0 && !dl_restart(d))
        d->write_errno = errno;
    if (d->status == 206) {
        const char *cr = d->h.content_range;
        if (strncmp(cr, "bytes ", 6) != 0 || parse_u64(cr + 6) != d->have)
            d->bad_range = true;
    }
}

static size_t dl_write(char *p, size_t size, size_t n, void *ud) {
    dl *d = ud;
    size_t len = size * n;
    if (!d->checked)
        dl_check_status(d);
    if (d->status != 200 && d->status != 206) {
        size_t room = d->errbody.len < 4096 ? 4096 - d->errbody.len : 0;
        buf_append(&d->errbody, p, len < room ? len : room);
        return len;
    }
    if (d->bad_range || d->write_errno != 0)
        return 0;
    if (d->f->size > 0 && d->have + len > d->f->size) {
        d->too_long = true;
        return 0;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(d->fd, p + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            d->write_errno = w < 0 ? errno : ENOSPC;
            return 0;
        }
        off += (size_t)w;
    }
    netlib_sha256_update(&d->md, p, len);
    d->have += len;
    d->c->fetched += len;
    return len;
}

static int dl_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)dt, (void)dn, (void)ut, (void)un;
    dl *d = ud;
    const pull_options *o = d->c->o;
    if (o->abort != NULL && *o->abort)
        return 1;
    int64_t now = clock_mono_ns();
    if (o->progress == NULL || now - d->last_ns < LIM_PULL_PROGRESS_MS * 1000000LL)
        return 0;
    d->last_ns = now;
    double secs = (double)(now - d->t0_ns) / 1e9;
    pull_progress pp = {.status = d->f->label,
                        .digest = d->f->digest[0] ? d->f->digest : NULL,
                        .total = d->f->size,
                        .completed = d->have,
                        .rate = secs > 0.2 ? (double)(d->have - d->start) / secs : 0};
    o->progress(o->ctx, &pp);
    return 0;
}

/* The reason an error response gives: the hub's X-Error-Message, else a JSON error member,
 * else the body's first line. */
static void dl_reason(const pull_headers *h, const buf *body, char *out, size_t outlen) {
    if (h->error_message[0] != '\0') {
        pull_fmt(out, outlen, "%s", h->error_message);
        return;
    }
    json_t *j = json_loads(buf_str(body), 0, NULL);
    const json_t *e = json_object_get(j, "error");
    const json_t *errs = json_object_get(j, "errors"); /* the registry's [{code, message}] */
    if (json_is_string(e))
        pull_fmt(out, outlen, "%s", json_string_value(e));
    else if (json_is_array(errs) &&
             json_is_string(json_object_get(json_array_get(errs, 0), "message")))
        pull_fmt(out, outlen, "%s",
                 json_string_value(json_object_get(json_array_get(errs, 0), "message")));
    else
        pull_fmt(out, outlen, "%.*s", (int)strcspn(buf_str(body), "\r\n"), buf_str(body));
    json_decref(j);
}

/* The outcome of the transfer; the temporary file is deleted where it cannot serve a resume. */
static shimmy_err dl_judge(dl *d, CURLcode rc, char *err, size_t errlen) {
    pull_file *f = d->f;
    char reason[600];
    if (d->write_errno != 0) {
        unlink(f->tmp);
        bool full = d->write_errno == ENOSPC || d->write_errno == EFBIG || d->write_errno == EDQUOT;
        return err_set(err, errlen, ERR_IO,
                       "%s writing %s after %llu of %llu bytes: %s; the "
                       "partial file was deleted",
                       full ? "disk full" : "write failed", f->tmp, (unsigned long long)d->have,
                       (unsigned long long)f->size, strerror(d->write_errno));
    }
    if (d->status >= 400 || (rc == CURLE_OK && d->status != 200 && d->status != 206)) {
        dl_reason(&d->h, &d->errbody, reason, sizeof reason);
        shimmy_err e = d->status == 401 || d->status == 403 ? ERR_UNAUTHORIZED
                       : d->status == 404                   ? ERR_MODEL_NOT_FOUND
                                                            : ERR_IO;
        if (d->status == 416)
            unlink(f->tmp);
        return err_set(err, errlen, e, "%s: HTTP %ld%s%s", f->url, d->status, reason[0] ? ": " : "",
                       reason);
    }
    if (d->bad_range || d->too_long) {
        unlink(f->tmp);
        return err_set(err, errlen, ERR_IO,
                       "%s: the server sent %s; the partial file was "
                       "deleted, pull again to start over",
                       f->url,
                       d->bad_range ? "another range than asked" : "more bytes than announced");
    }
    if (rc != CURLE_OK) {
        shimmy_err e = curl_failed(d->c, rc, f->url, err, errlen);
        if (e == ERR_IO)
            err_set(err, errlen, ERR_IO,
                    "download of %s interrupted after %llu of %llu bytes "
                    "(%s); pull again to resume from there",
                    f->name, (unsigned long long)d->have, (unsigned long long)f->size,
                    NL_CURL.easy_strerror(rc));
        return e;
    }
    if (f->size > 0 && d->have != f->size)
        return err_set(err, errlen, ERR_IO,
                       "download of %s ended after %llu of %llu bytes; pull "
                       "again to resume from there",
                       f->name, (unsigned long long)d->have, (unsigned long long)f->size);
    return SHIMMY_OK;
}

static shimmy_err dl_transfer(dl *d, char *err, size_t errlen) {
    xfer x;
    char range[64];
    shimmy_err e = xfer_open(&x, d->c, d->f->url, d->f->bearer, NULL, err, errlen);
    if (e != SHIMMY_OK)
        return e;
    d->curl = x.curl;
    d->start = d->have;
    d->t0_ns = d->last_ns = clock_mono_ns();
    if (d->have > 0) {
        pull_fmt(range, sizeof range, "%llu-", (unsigned long long)d->have);
        NL_CURL.easy_setopt(x.curl, CURLOPT_RANGE, range);
    }
    NL_CURL.easy_setopt(x.curl, CURLOPT_FOLLOWLOCATION, 1L);
    NL_CURL.easy_setopt(x.curl, CURLOPT_HEADERFUNCTION, on_header);
    NL_CURL.easy_setopt(x.curl, CURLOPT_HEADERDATA, &d->h);
    NL_CURL.easy_setopt(x.curl, CURLOPT_WRITEFUNCTION, dl_write);
    NL_CURL.easy_setopt(x.curl, CURLOPT_WRITEDATA, d);
    NL_CURL.easy_setopt(x.curl, CURLOPT_XFERINFOFUNCTION, dl_progress);
    NL_CURL.easy_setopt(x.curl, CURLOPT_XFERINFODATA, d);
    CURLcode rc = NL_CURL.easy_perform(x.curl);
    if (!d->checked)
        NL_CURL.easy_getinfo(x.curl, CURLINFO_RESPONSE_CODE, &d->status);
    e = dl_judge(d, rc, err, errlen);
    xfer_close(&x);
    return e;
}

/* The sha256 of what was written, checked against the expected one; the file is deleted on a
 * mismatch. */
static shimmy_err dl_verify(dl *d, char *err, size_t errlen) {
    char hex[65];
    pull_say(d->c, "verifying sha256 digest", d->f->digest[0] ? d->f->digest : NULL, d->f->size,
             d->have);
    netlib_sha256_hex(&d->md, hex);
    if (d->f->sha256[0] != '\0' && strcmp(hex, d->f->sha256) != 0) {
        unlink(d->f->tmp);
        return err_set(err, errlen, ERR_IO,
                       "checksum mismatch for %s: expected sha256 %s, got "
                       "%s; the downloaded file was deleted",
                       d->f->name, d->f->sha256, hex);
    }
    if (d->f->sha256[0] == '\0')
        log_warn("%s: the server gave no sha256, so the file could not be verified", d->f->name);
    return SHIMMY_OK;
}

static shimmy_err dl_finish(dl *d, char *err, size_t errlen) {
    if (fsync(d->fd) != 0 || rename(d->f->tmp, d->f->dest) != 0) {
        int saved = errno;
        unlink(d->f->tmp);
        return err_set(err, errlen, ERR_IO, "cannot move %s into place: %s", d->f->dest,
                       strerror(saved));
    }
    pull_say(d->c, d->f->label, d->f->digest[0] ? d->f->digest : NULL, d->f->size, d->have);
    return SHIMMY_OK;
}

/* Takes f's lock (waiting for another pull of the same file). Returns the lock's fd, or -1. */
static int lock_file(pull_ctx *c, pull_file *f, char *err, size_t errlen) {
    if (!pull_mkparents(f->lock)) {
        err_set(err, errlen, ERR_IO, "cannot create the folder of %s: %s", f->lock,
                strerror(errno));
        return -1;
    }
    int fd = open(f->lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        err_set(err, errlen, ERR_IO, "cannot open %s: %s", f->lock, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char msg[700];
        pull_fmt(msg, sizeof msg, "waiting for another pull of %s", f->name);
        pull_say(c, msg, f->digest[0] ? f->digest : NULL, f->size, 0);
        while (flock(fd, LOCK_EX) != 0 && errno == EINTR) {
        }
    }
    return fd;
}

static shimmy_err dl_run(dl *d, char *err, size_t errlen) {
    pull_file *f = d->f;
    shimmy_err e;
    if (!pull_mkparents(f->tmp))
        return err_set(err, errlen, ERR_IO, "cannot create the folder of %s: %s", f->tmp,
                       strerror(errno));
    d->fd = open(f->tmp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (d->fd < 0)
        return err_set(err, errlen, ERR_IO, "cannot write %s: %s", f->tmp, strerror(errno));
    if (!netlib_sha256_init(&d->md, err, errlen))
        return ERR_IO;
    if (!dl_hash_existing(d))
        return err_set(err, errlen, ERR_IO, "cannot read %s: %s", f->tmp, strerror(errno));
    if (f->size > 0 && d->have > f->size && !dl_restart(d))
        return err_set(err, errlen, ERR_IO, "cannot truncate %s: %s", f->tmp, strerror(errno));
    if (d->have > 0)
        log_info("resuming %s at byte %llu of %llu", f->name, (unsigned long long)d->have,
                 (unsigned long long)f->size);
    pull_say(d->c, f->label, f->digest[0] ? f->digest : NULL, f->size, d->have);
    if ((f->size == 0 || d->have < f->size) && (e = dl_transfer(d, err, errlen)) != SHIMMY_OK)
        return e;
    if ((e = dl_verify(d, err, errlen)) != SHIMMY_OK)
        return e;
    return dl_finish(d, err, errlen);
}

shimmy_err pull_fetch(pull_ctx *c, pull_file *f, char *err, size_t errlen) {
    if (exists(f->dest)) {
        pull_say(c, f->label, f->digest[0] ? f->digest : NULL, f->size, f->size);
        return SHIMMY_OK;
    }
    int lock = lock_file(c, f, err, errlen);
    if (lock < 0)
        return ERR_IO;
    shimmy_err e = SHIMMY_OK;
    if (exists(f->dest)) /* another pull fetched it while this one waited */
        pull_say(c, f->label, f->digest[0] ? f->digest : NULL, f->size, f->size);
    else {
        dl d = {.c = c, .f = f, .fd = -1};
        buf_init(&d.errbody, 8192);
        e = dl_run(&d, err, errlen);
        if (d.fd >= 0)
            close(d.fd);
        netlib_sha256_free(&d.md);
        buf_free(&d.errbody);
    }
    if (e == SHIMMY_OK)
        unlink(f->lock); /* later pulls find the file; waiters hold the old inode */
    close(lock);
    return e;
}

/* ---- the ledger ---- */

static bool ledger_path(char *out, size_t outlen) {
    const char *x = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    if (x != NULL && x[0] == '/')
        return pull_fmt(out, outlen, "%s/shimmy/pulled.jsonl", x) < (int)outlen;
    if (home == NULL || home[0] == '\0')
        return false;
    return pull_fmt(out, outlen, "%s/.local/share/shimmy/pulled.jsonl", home) < (int)outlen;
}

/* Opens the ledger locked (exclusive), creating it. Returns the FILE or NULL (err set). */
static FILE *ledger_open(char *path, size_t pathlen, char *err, size_t errlen) {
    if (!ledger_path(path, pathlen)) {
        err_set(err, errlen, ERR_IO, "no HOME: cannot name the ledger of pulled models");
        return NULL;
    }
    if (!pull_mkparents(path)) {
        err_set(err, errlen, ERR_IO, "cannot create the folder of %s: %s", path, strerror(errno));
        return NULL;
    }
    FILE *f = fopen(path, "a+");
    if (f == NULL || flock(fileno(f), LOCK_EX) != 0) {
        err_set(err, errlen, ERR_IO, "cannot open %s: %s", path, strerror(errno));
        if (f != NULL)
            fclose(f);
        return NULL;
    }
    return f;
}

shimmy_err pull_ledger_add(const char *name, const char *ref, const char *store, const char *root,
                           const char *const *paths, int n_paths, char *err, size_t errlen) {
    char path[4096];
    FILE *f = ledger_open(path, sizeof path, err, errlen);
    if (f == NULL)
        return ERR_IO;
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:[]}", "name", name, "ref", ref, "store", store,
                          "root", root, "paths");
    json_t *arr = json_object_get(j, "paths");
    for (int i = 0; i < n_paths; i++)
        json_array_append_new(arr, json_string(paths[i]));
    char *line = json_dumps(j, JSON_COMPACT);
    bool ok = line != NULL && fprintf(f, "%s\n", line) > 0;
    ok = fflush(f) == 0 && ok;
    free(line);
    json_decref(j);
    fclose(f);
    return ok ? SHIMMY_OK : err_set(err, errlen, ERR_IO, "cannot write %s", path);
}

/* By served name or reference; a Hugging Face reference with or without its "hf.co/". */
static bool record_matches(const json_t *r, const char *name) {
    const char *n = json_string_value(json_object_get(r, "name"));
    const char *ref = json_string_value(json_object_get(r, "ref"));
    if (ref != NULL && strncasecmp(ref, "hf.co/", 6) == 0 && strcasecmp(ref + 6, name) == 0)
        return true;
    return (n != NULL && strcasecmp(n, name) == 0) || (ref != NULL && strcasecmp(ref, name) == 0);
}

/* Removes the files of record r. */
static shimmy_err remove_record(const json_t *r, char *err, size_t errlen) {
    const char *store = json_string_value(json_object_get(r, "store"));
    const char *root = json_string_value(json_object_get(r, "root"));
    const json_t *arr = json_object_get(r, "paths");
    const char *paths[64];
    int n = 0;
    for (size_t i = 0; i < json_array_size(arr) && n < 64; i++)
        if (json_is_string(json_array_get(arr, i)))
            paths[n++] = json_string_value(json_array_get(arr, i));
    if (store == NULL || root == NULL)
        return err_set(err, errlen, ERR_IO, "a ledger record without its store");
    if (strcmp(store, "hf") == 0)
        return pull_hf_remove(root, paths, n, err, errlen);
    return pull_ollama_remove(root, paths, n, err, errlen);
}

shimmy_err pull_remove(const char *name, char *removed, size_t removed_len, char *err,
                       size_t errlen) {
    char path[4096], line[65536];
    if (ledger_path(path, sizeof path) && !exists(path))
        return err_set(err, errlen, ERR_MODEL_NOT_FOUND,
                       "'%s' was not pulled by shimmy: shimmy "
                       "rm removes only what shimmy pull fetched, and it fetched nothing yet; "
                       "nothing was removed",
                       name);
    FILE *f = ledger_open(path, sizeof path, err, errlen);
    if (f == NULL)
        return ERR_IO;
    buf keep;
    buf_init(&keep, 64u << 20);
    shimmy_err e = SHIMMY_OK;
    bool found = false;
    rewind(f);
    while (e == SHIMMY_OK && fgets(line, sizeof line, f) != NULL) {
        json_t *r = json_loads(line, 0, NULL);
        if (r != NULL && record_matches(r, name)) {
            if (!found && removed != NULL)
                pull_fmt(removed, removed_len, "%s", json_string_value(json_object_get(r, "name")));
            found = true;
            e = remove_record(r, err, errlen);
        } else if (line[0] != '\n')
            e = buf_puts(&keep, line);
        json_decref(r);
    }
    if (e == SHIMMY_OK && !found)
        e = err_set(err, errlen, ERR_MODEL_NOT_FOUND,
                    "'%s' was not pulled by shimmy: shimmy rm "
                    "removes only what shimmy pull fetched (see %s); nothing was removed",
                    name, path);
    /* rewritten in place, under the lock: a pull waiting to append holds this very file */
    if (e == SHIMMY_OK &&
        (fseek(f, 0, SEEK_SET) != 0 || ftruncate(fileno(f), 0) != 0 ||
         (keep.len > 0 && fwrite(keep.data, 1, keep.len, f) != keep.len) || fflush(f) != 0))
        e = err_set(err, errlen, ERR_IO, "cannot rewrite %s: %s", path, strerror(errno));
    buf_free(&keep);
    fclose(f);
    return e;
}

/* ---- references ---- */

static bool has_prefix_ci(const char *s, const char *p) {
    return strncasecmp(s, p, strlen(p)) == 0;
}

static const char *hf_rest(const char *ref) {
    static const char *const prefixes[] = {"https://huggingface.co/", "https://hf.co/",
                                           "huggingface.co/", "hf.co/"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (has_prefix_ci(ref, prefixes[i]))
            return ref + strlen(prefixes[i]);
    return NULL;
}

static bool ends_gguf(const char *s) {
    size_t n = strlen(s);
    return n > 5 && strcasecmp(s + n - 5, ".gguf") == 0;
}

const char *pull_ref_kind(const char *ref) {
    if (ref == NULL || ref[0] == '\0' || strlen(ref) > 1000 || strchr(ref, ' ') != NULL)
        return NULL;
    if (hf_rest(ref) != NULL || ends_gguf(ref))
        return "hf";
    return "ollama";
}

shimmy_err pull_model(const char *ref, const pull_options *o, pull_result *out, char *err,
                      size_t errlen) {
    pull_ctx c = {.o = o, .fetched = 0};
    memset(out, 0, sizeof *out);
    const char *kind = pull_ref_kind(ref);
    shimmy_err e;
    if (kind == NULL)
        return err_set(err, errlen, ERR_BAD_PARAM,
                       "'%s' is not a model reference: use "
                       "hf.co/ORG/REPO[:QUANT], ORG/REPO/FILE.gguf, NAME[:TAG] or "
                       "HOST[:PORT]/NAMESPACE/NAME[:TAG]",
                       ref);
    if (strcmp(kind, "hf") == 0)
        e = pull_hf(&c, hf_rest(ref) ? hf_rest(ref) : ref, out, err, errlen);
    else
        e = pull_ollama(&c, ref, out, err, errlen);
    out->fetched = c.fetched;
    if (e == SHIMMY_OK)
        pull_say(&c, "success", NULL, 0, 0);
    return e;
}
