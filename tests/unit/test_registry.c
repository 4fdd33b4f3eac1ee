/* Unit tests for models/registry and models/names: naming, folder scans (hidden files, broken
 * files, non-models, symlinked duplicates, one level of subfolders), lookups, the discovery
 * sources, and loading once under concurrent acquires through the real engine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ggml.h"
#include "gguf.h"
#include "models/names.h"
#include "models/registry.h"

#include "fixtures.h"

static char stories[4096 + 32]; /* models_dir + "/stories260K.gguf" */

/* A GGUF file with one small tensor named tensor and the string keys kv[0..n) (key, value pairs):
 * what discovery reads of a model or an adapter; never loaded. */
static void write_one_tensor(const char *path, const char *tensor, const char *const (*kv)[2],
                             size_t n) {
    struct gguf_context *g = gguf_init_empty();
    struct ggml_init_params ip = {.mem_size = 1 << 16, .mem_buffer = NULL, .no_alloc = false};
    struct ggml_context *ctx = ggml_init(ip);
    for (size_t i = 0; i < n; i++)
        gguf_set_val_str(g, kv[i][0], kv[i][1]);
    struct ggml_tensor *t = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 8, 2);
    memset(t->data, 0, ggml_nbytes(t));
    ggml_set_name(t, tensor);
    gguf_add_tensor(g, t);
    assert_true(gguf_write_to_file(g, path, false));
    gguf_free(g);
    ggml_free(ctx);
}

static void write_adapter(const char *path) {
    static const char *const kv[][2] = {
        {"general.architecture", "llama"}, {"general.type", "adapter"}, {"adapter.type", "lora"}};
    write_one_tensor(path, "blk.0.attn_q.weight.lora_a", kv, 3);
}

/* A model as discovery reads it, with tokenizer.chat_template set to tmpl. */
static void write_with_template(const char *path, const char *tmpl) {
    const char *const kv[][2] = {{"general.architecture", "llama"},
                                 {"tokenizer.chat_template", tmpl}};
    write_one_tensor(path, "token_embd.weight", kv, 2);
}

/* What a test reads of one served model: copied out of the record, whose reference is dropped
 * at once (so that a test leaks nothing however it ends). ok = found. */
typedef struct seen {
    bool ok;
    char name[256], path[4096], source[32];
    uint64_t size_bytes;
    gguf_meta meta;
    model_status st;
} seen;

static seen seen_of(bool ok, const model_rec *d, const model_status *st) {
    seen s;
    memset(&s, 0, sizeof s);
    s.ok = ok;
    if (d != NULL) {
        snprintf(s.name, sizeof s.name, "%s", d->name);
        snprintf(s.path, sizeof s.path, "%s", d->path);
        snprintf(s.source, sizeof s.source, "%s", d->source);
        s.size_bytes = d->size_bytes;
        s.meta = d->meta;
        s.st = *st;
    }
    model_rec_unref(d);
    return s;
}

static seen get_seen(registry *r, size_t i) {
    const model_rec *d;
    model_status st;
    bool ok = registry_get(r, i, &d, &st);
    return seen_of(ok, d, &st);
}

static seen find_seen(registry *r, const char *name) {
    const model_rec *d;
    model_status st;
    bool ok = registry_find(r, name, &d, &st);
    return seen_of(ok, d, &st);
}

static registry *new_registry(void) {
    engine_options o;
    memset(&o, 0, sizeof o);
    o.n_parallel = 1;
    o.n_ctx = 256;
    o.n_threads = 1;
    registry *r = registry_new(&o);
    assert_non_null(r);
    return r;
}

/* ---- names ---- */

static void test_names(void **state) {
    (void)state;
    char out[64];
    assert_true(names_from_path("/a/b/My-Model.gguf", out, sizeof out));
    assert_string_equal(out, "my-model");
    assert_true(names_from_path("Qwen2.5-0.5B-Instruct-Q4_K_M.GGUF", out, sizeof out));
    assert_string_equal(out, "qwen2.5-0.5b-instruct-q4_k_m");
    assert_true(names_from_path("dir/noext", out, sizeof out));
    assert_string_equal(out, "noext");
    assert_false(names_from_path("dir/.gguf", out, sizeof out));
    assert_false(names_from_path("dir/", out, sizeof out));
    assert_false(names_from_path("x/very-long-name.gguf", out, 5));
    assert_string_equal(out, "");
    assert_true(names_is_gguf("a/b.GgUf"));
    assert_false(names_is_gguf("a.gguf/b.bin"));
    assert_false(names_is_gguf(".gguf"));
}

/* ---- scanning ---- */

/* tmp/store: My-Model.gguf, zz-link.gguf -> My-Model.gguf, .hidden.gguf, broken.gguf,
 * lora.gguf (adapter), notes.txt, sub/Other.gguf, sub/deeper/deep.gguf, .hiddendir/h.gguf */
static void make_store(void) {
    char p[4096], q[4096];
    static const char *const dirs[] = {"store", "store/sub", "store/sub/deeper",
                                       "store/.hiddendir"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        tmp_path(dirs[i], p, sizeof p);
        assert_int_equal(mkdir(p, 0755), 0);
    }
    static const char *const copies[] = {"store/My-Model.gguf", "store/.hidden.gguf",
                                         "store/sub/Other.gguf", "store/sub/deeper/deep.gguf",
                                         "store/.hiddendir/h.gguf"};
    for (size_t i = 0; i < sizeof copies / sizeof copies[0]; i++) {
        tmp_path(copies[i], p, sizeof p);
        copy_file(stories, p);
    }
    tmp_path("store/My-Model.gguf", p, sizeof p);
    tmp_path("store/zz-link.gguf", q, sizeof q);
    assert_int_equal(symlink(p, q), 0);
    tmp_path("store/broken.gguf", p, sizeof p);
    write_text(p, "GGUF but not really");
    tmp_path("store/notes.txt", p, sizeof p);
    write_text(p, "not a model");
    tmp_path("store/lora.gguf", p, sizeof p);
    write_adapter(p);
}

/* Scans dir alone (no stores, ./models absent in the test's folder): the models added. */
static size_t scan_dir(registry *r, const char *dir) {
    char err[512];
    registry_changes ch;
    disc_config c = {.model_dirs = dir, .no_stores = true};
    assert_int_equal(registry_discover(r, &c, &ch, err, sizeof err), SHIMMY_OK);
    size_t n = ch.n_added;
    registry_changes_free(&ch);
    return n;
}

static void test_add_dir(void **state) {
    (void)state;
    make_store();
    registry *r = new_registry();
    char store[4096];
    tmp_path("store", store, sizeof store);
    assert_int_equal(scan_dir(r, store), 2);
    assert_int_equal(registry_count(r), 2);

    seen d;
    assert_true((d = get_seen(r, 0)).ok);
    assert_string_equal(d.name, "my-model");
    assert_non_null(strstr(d.path, "/store/My-Model.gguf"));
    assert_string_equal(d.source, "dir");
    assert_int_equal(d.size_bytes, 1185376);
    assert_string_equal(d.meta.arch, "llama");
    assert_int_equal(d.meta.n_layer, 5);
    assert_false(d.st.loaded);
    assert_true((d = get_seen(r, 1)).ok);
    assert_string_equal(d.name, "other");
    assert_false((d = get_seen(r, 2)).ok);

    assert_true((d = find_seen(r, "other")).ok);
    assert_non_null(strstr(d.path, "/store/sub/Other.gguf"));
    assert_false((d = find_seen(r, "zz-link")).ok);
    assert_false((d = find_seen(r, "deep")).ok);
    assert_false((d = find_seen(r, "h")).ok);
    assert_false((d = find_seen(r, "hidden")).ok);
    assert_false((d = find_seen(r, "broken")).ok);
    assert_false((d = find_seen(r, "lora")).ok);
    assert_false((d = find_seen(r, "My-Model")).ok);

    /* Scanning again adds nothing: every file is already there. */
    assert_int_equal(scan_dir(r, store), 0);
    char missing[4096];
    tmp_path("no-such-dir", missing, sizeof missing);
    assert_int_equal(scan_dir(r, missing), 0);
    registry_free(r);
}

/* A reference handed out stays readable after a rescan replaced the record (the file changed)
 * and after the registry is gone; the next lookup gets the new record. */
static void test_record_outlives_rescan(void **state) {
    (void)state;
    char dir[4096], p[4200], err[512];
    tmp_path("rescan", dir, sizeof dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(p, sizeof p, "%s/m.gguf", dir);
    copy_file(stories, p);
    registry *r = new_registry();
    assert_int_equal(scan_dir(r, dir), 1);
    const model_rec *old, *now;
    assert_true(registry_find(r, "m", &old, NULL));
    const struct timespec t[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
    assert_int_equal(utimensat(AT_FDCWD, p, t, 0), 0);
    assert_int_equal(registry_rescan(r, NULL, err, sizeof err), SHIMMY_OK);
    assert_true(registry_find(r, "m", &now, NULL));
    assert_ptr_not_equal(now, old);
    assert_int_equal(now->mtime, 1000000000);
    assert_true(old->mtime != 1000000000);
    assert_string_not_equal(now->digest, old->digest);
    model_rec_unref(now);
    registry_free(r);
    assert_string_equal(old->name, "m");
    assert_non_null(strstr(old->path, "/rescan/m.gguf"));
    model_rec_unref(old);
}

/* Whether a model has a chat template comes from its options and the metadata read when it was
 * found, not from its file (/api/generate asks on each request): known with the file gone. */
static void test_has_template(void **state) {
    (void)state;
    char dir[4096], p[4200], err[512];
    tmp_path("has-template", dir, sizeof dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(p, sizeof p, "%s/chat.gguf", dir);
    write_with_template(p, "{% for m in messages %}{{ m.content }}{% endfor %}");
    registry *r = new_registry();
    assert_int_equal(registry_add(r, p, "chat", "cli", err, sizeof err), SHIMMY_OK);
    assert_int_equal(registry_add(r, stories, "plain", "cli", err, sizeof err), SHIMMY_OK);
    assert_true(registry_has_template(r, "chat"));
    assert_false(registry_has_template(r, "plain"));
    assert_false(registry_has_template(r, "no-such-model"));
    assert_int_equal(unlink(p), 0);
    assert_true(registry_has_template(r, "chat"));
    registry_free(r);

    engine_options o;
    memset(&o, 0, sizeof o);
    o.n_parallel = 1;
    o.n_ctx = 256;
    o.n_threads = 1;
    o.template_override = "chatml"; /* --template NAME */
    r = registry_new(&o);
    assert_non_null(r);
    assert_int_equal(registry_add(r, stories, "plain", "cli", err, sizeof err), SHIMMY_OK);
    assert_true(registry_has_template(r, "plain"));
    registry_free(r);
}

static void test_add_errors(void **state) {
    (void)state;
    registry *r = new_registry();
    char err[512], p[4096];
    assert_int_equal(registry_add(r, stories, "tiny", "cli", err, sizeof err), SHIMMY_OK);
    seen d;
    assert_true((d = find_seen(r, "tiny")).ok);
    assert_string_equal(d.source, "cli");

    /* The same file again, under any name. */
    assert_int_equal(registry_add(r, stories, "tiny2", "cli", err, sizeof err), ERR_BAD_PARAM);
    assert_non_null(strstr(err, "already added"));
    /* Another file under a name in use. */
    tmp_path("copy.gguf", p, sizeof p);
    copy_file(stories, p);
    assert_int_equal(registry_add(r, p, "tiny", "cli", err, sizeof err), ERR_BAD_PARAM);
    assert_non_null(strstr(err, "tiny"));
    assert_int_equal(registry_add(r, p, NULL, "cli", err, sizeof err), SHIMMY_OK);
    assert_true(registry_find(r, "copy", NULL, NULL));

    tmp_path("adapter.gguf", p, sizeof p);
    write_adapter(p);
    assert_int_equal(registry_add(r, p, NULL, "cli", err, sizeof err), ERR_MODEL_LOAD);
    assert_non_null(strstr(err, "adapter"));
    tmp_path("none.gguf", p, sizeof p);
    assert_int_equal(registry_add(r, p, NULL, "cli", err, sizeof err), ERR_IO);
    char v1[4200];
    snprintf(v1, sizeof v1, "%s/stories260K-ggufv1.gguf", models_dir);
    assert_int_equal(registry_add(r, v1, NULL, "cli", err, sizeof err), ERR_MODEL_LOAD);
    assert_non_null(strstr(err, "v1"));
    assert_int_equal(registry_count(r), 2);
    registry_free(r);
}

/* Aliases: found by every lookup (also with ":latest"), a served name of the same spelling
 * wins, one name may stand for one model only, and they are listed in the order added. */
static void test_aliases(void **state) {
    (void)state;
    registry *r = new_registry();
    char err[512], p[4096], a[256], m[256];
    seen d;
    assert_int_equal(registry_add(r, stories, "tiny", "cli", err, sizeof err), SHIMMY_OK);
    tmp_path("other.gguf", p, sizeof p);
    copy_file(stories, p);
    assert_int_equal(registry_add(r, p, NULL, "cli", err, sizeof err), SHIMMY_OK);
    assert_int_equal(registry_add_alias(r, "small", "tiny", err, sizeof err), SHIMMY_OK);
    assert_int_equal(registry_add_alias(r, "small", "tiny", err, sizeof err), SHIMMY_OK);
    assert_int_equal(registry_add_alias(r, "other", "tiny", err, sizeof err), SHIMMY_OK);
    assert_int_equal(registry_add_alias(r, "small", "other", err, sizeof err), ERR_BAD_PARAM);
    assert_non_null(strstr(err, "already model 'tiny''s"));
    assert_int_equal(registry_add_alias(r, "tiny", "tiny", err, sizeof err), ERR_BAD_PARAM);
    assert_int_equal(registry_alias_count(r), 2);
    assert_true((d = find_seen(r, "small")).ok);
    assert_string_equal(d.name, "tiny");
    assert_true((d = find_seen(r, "small:latest")).ok);
    assert_string_equal(d.name, "tiny");
    assert_true((d = find_seen(r, "other")).ok); /* the served model, not the alias */
    assert_string_equal(d.name, "other");
    assert_int_equal(registry_lookup(r, "small", err, sizeof err), SHIMMY_OK);
    assert_false(registry_find(r, "smaller", NULL, NULL));
    assert_true(registry_alias_get(r, 0, a, sizeof a, m, sizeof m));
    assert_string_equal(a, "small");
    assert_string_equal(m, "tiny");
    assert_false(registry_alias_get(r, 2, a, sizeof a, m, sizeof m));
    registry_free(r);
}

static void test_acquire_unknown(void **state) {
    (void)state;
    registry *r = new_registry();
    char err[512] = "";
    engine_model *m = (engine_model *)r;
    assert_int_equal(registry_acquire(r, "nope", &m, err, sizeof err), ERR_MODEL_NOT_FOUND);
    assert_null(m);
    assert_non_null(strstr(err, "nope"));
    assert_int_equal(registry_preload(r, "nope", err, sizeof err), ERR_MODEL_NOT_FOUND);
    registry_free(r);
}

static void test_add_sources(void **state) {
    (void)state;
    char a[4096], b[4096], dirs[8300], err[512];
    tmp_path("src-a", a, sizeof a);
    tmp_path("src-b", b, sizeof b);
    assert_int_equal(mkdir(a, 0755), 0);
    assert_int_equal(mkdir(b, 0755), 0);
    char p[4096];
    tmp_path("src-a/Alpha.gguf", p, sizeof p);
    copy_file(stories, p);
    tmp_path("src-b/beta.gguf", p, sizeof p);
    copy_file(stories, p);
    snprintf(dirs, sizeof dirs, "%s;%s", a, b);

    /* An explicit path that is not a model is an error with the reason. */
    registry *r = new_registry();
    char adapter[4096];
    tmp_path("src-adapter.gguf", adapter, sizeof adapter);
    write_adapter(adapter);
    char *bad[] = {stories, adapter};
    assert_int_equal(registry_add_sources(r, bad, 2, dirs, err, sizeof err), ERR_MODEL_LOAD);
    assert_non_null(strstr(err, "adapter"));
    registry_free(r);

    /* Explicit paths first (source "cli", the same file twice is fine), then folders: Alpha's
     * file given with --model is not listed again from its folder. The env list takes ':'. */
    r = new_registry();
    tmp_path("src-a/Alpha.gguf", p, sizeof p);
    char *good[] = {stories, p, p};
    setenv("SHIMMY_MODEL_PATHS", b, 1);
    assert_int_equal(registry_add_sources(r, good, 3, a, err, sizeof err), SHIMMY_OK);
    unsetenv("SHIMMY_MODEL_PATHS");
    seen d;
    assert_true((d = find_seen(r, "stories260k")).ok);
    assert_string_equal(d.source, "cli");
    assert_true((d = find_seen(r, "alpha")).ok);
    assert_string_equal(d.source, "cli");
    assert_true((d = find_seen(r, "beta")).ok);
    assert_string_equal(d.source, "dir");
    registry_free(r);
}

/* ---- loading through the engine ---- */

typedef struct acquire_arg {
    registry *r;
    engine_model *m;
    shimmy_err rc;
    char err[512];
} acquire_arg;

static void *acquire_thread(void *p) {
    acquire_arg *a = p;
    a->rc = registry_acquire(a->r, "stories260k", &a->m, a->err, sizeof a->err);
    return NULL;
}

static void engine_init_once(void) {
    static int done;
    if (done)
        return;
    /* The libraries sit in build/lib, next to build/shimmy. */
    char lib[4096];
    const char *bin = getenv("SHIMMY_BIN");
    const char *lib_dir = NULL;
    if (bin != NULL) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s", bin);
        snprintf(lib, sizeof lib, "%s/lib", dirname(tmp));
        lib_dir = lib;
    }
    char err[512] = "";
    shimmy_err rc = engine_global_init(lib_dir, err, sizeof err);
    if (rc != SHIMMY_OK)
        fail_msg("engine_global_init(%s): %s", lib_dir ? lib_dir : "NULL", err);
    done = 1;
}

static void test_acquire_concurrent_loads_once(void **state) {
    (void)state;
    engine_init_once();
    registry *r = new_registry();
    char err[512];
    assert_int_equal(registry_add(r, stories, NULL, "cli", err, sizeof err), SHIMMY_OK);
    acquire_arg args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        memset(&args[i], 0, sizeof args[i]);
        args[i].r = r;
        assert_int_equal(pthread_create(&th[i], NULL, acquire_thread, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        if (args[i].rc != SHIMMY_OK)
            fail_msg("acquire %d: %d %s", i, args[i].rc, args[i].err);
        assert_non_null(args[i].m);
        assert_ptr_equal(args[i].m, args[0].m);
    }
    seen d;
    assert_true((d = find_seen(r, "stories260k")).ok);
    assert_true(d.st.loaded);
    for (int i = 0; i < 4; i++)
        registry_release(r, args[i].m);
    /* Stays loaded: a later acquire gets the same model. */
    engine_model *again = NULL;
    assert_int_equal(registry_acquire(r, "stories260k", &again, err, sizeof err), SHIMMY_OK);
    assert_ptr_equal(again, args[0].m);
    registry_release(r, again);
    registry_free(r);
}

static void test_failed_load_reported_and_retried(void **state) {
    (void)state;
    engine_init_once();
    registry *r = new_registry();
    char err[512] = "", p[4096];
    tmp_path("vanishing.gguf", p, sizeof p);
    copy_file(stories, p);
    assert_int_equal(registry_add(r, p, NULL, "cli", err, sizeof err), SHIMMY_OK);
    unlink(p);
    engine_model *m = NULL;
    assert_int_equal(registry_acquire(r, "vanishing", &m, err, sizeof err), ERR_MODEL_LOAD);
    assert_null(m);
    assert_true(err[0] != '\0');
    /* The file is back: the next acquire tries again and succeeds. */
    copy_file(stories, p);
    assert_int_equal(registry_acquire(r, "vanishing", &m, err, sizeof err), SHIMMY_OK);
    assert_non_null(m);
    registry_release(r, m);
    assert_int_equal(registry_preload(r, "vanishing", err, sizeof err), SHIMMY_OK);
    registry_free(r);
}

static int setup(void **state) {
    (void)state;
    if (fixtures_setup("shimmy-registry") != 0)
        return -1;
    snprintf(stories, sizeof stories, "%s/stories260K.gguf", models_dir);
    if (access(stories, R_OK) != 0) {
        fprintf(stderr, "test model %s is missing (SHIMMY_TEST_MODELS=%s)\n", stories, models_dir);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    return fixtures_teardown();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_add_dir),
        cmocka_unit_test(test_add_errors),
        cmocka_unit_test(test_record_outlives_rescan),
        cmocka_unit_test(test_has_template),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_acquire_unknown),
        cmocka_unit_test(test_add_sources),
        cmocka_unit_test(test_acquire_concurrent_loads_once),
        cmocka_unit_test(test_failed_load_reported_and_retried),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
