/* it_vision: image and audio input through the real binary (issue 12) on the generated vision
 * fixture (tools/gen_model + tools/gen_vision: a random-weight llama with a LLaVA-style projector,
 * 4 tokens per image). Greedy answers for an image and a prompt equal llama.cpp's own
 * llama-mtmd-cli on the same files (golden/vision.jsonl, tools/vision_golden.sh) through every
 * API: OpenAI image_url data: URIs (PNG, JPEG, GIF, BMP; WebP, which llama-mtmd-cli cannot read
 * without ffmpeg, decoded by libwebp, answers as the PNG of the same pixels), Ollama images on
 * /api/chat and /api/generate, Anthropic image blocks, Responses input_image; usage counts the
 * image's tokens, and so does Anthropic's count_tokens. The same image again is served from the
 * slot's cache (cached_tokens), another image is not. Four image requests run next to four text
 * requests. Every error of the issue: no projector, audio to a vision-only model, undecodable data,
 * too many pixels, too many parts, TIFF, a remote URL without --allow-remote-media; with it, URLs
 * served by a loopback server in the test (the image, a redirect to it, a file too large, no
 * answer, a redirect loop).
 * M-RoPE (Qwen2-VL style: gen_model --arch qwen2vl, gen_vision --qwen2vl): an image of nx by ny
 * tokens takes max(nx, ny) positions, the text after it continues from there; greedy answers
 * equal llama-mtmd-cli's (golden/vision-qwen2vl.jsonl), through slot reuse, the host-RAM prompt
 * cache, KV copies between slots and batches with other requests; the context check counts
 * tokens (KV cells), not positions. */
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROMPT "What is in the picture?"
#define IMAGE_TOKENS 4 /* gen_vision: 28x28 images, 14x14 patches */
/* src/core/limits.h's, as the server applies them to a remote URL */
#define MEDIA_BYTES (6u * 1024u * 1024u) /* LIM_MEDIA_BYTES */
#define MEDIA_FETCH_S 10                 /* LIM_MEDIA_FETCH_S */

/* A fixture file: BUILD/fixtures/NAME from make fixtures, else written now into the test's
 * folder by the same generators with the same arguments (tools/fixtures.sh). */
static const char *fixture(h_test *t, const char *name) {
    static char path[2][4300];
    static int k;
    char *p = path[k++ % 2];
    struct stat st;
    snprintf(p, 4300, "%s/../fixtures/%s", h_tools_dir(), name);
    if (stat(p, &st) == 0)
        return p;
    snprintf(p, 4300, "%s/%s", t->dir, name);
    if (stat(p, &st) == 0)
        return p;
    char exe[4200], vocab[4200], *log;
    int rc;
    bool qwen2vl = strcmp(name, "qwen2vl-model.gguf") == 0;
    if (strcmp(name, "vision-model.gguf") == 0 || qwen2vl) {
        static const char chatml[] =
            "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
            "message['content'] + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}"
            "{{ '<|im_start|>assistant\\n' }}{% endif %}";
        snprintf(exe, sizeof exe, "%s/gen_model", h_tools_dir());
        snprintf(vocab, sizeof vocab, "%s/deps/llama.cpp/models/ggml-vocab-llama-spm.gguf",
                 h_source_dir());
        const char *args[] = {p,        "--vocab-from", vocab,    "--layers", "2",
                              "--embd", "64",           "--ff",   "128",      "--heads",
                              "4",      "--kv-heads",   "4",      "--ctx",    "2048",
                              "--type", "f32",          "--seed", "2",        "--chat-template",
                              chatml,   NULL,           NULL,     NULL,       NULL,
                              NULL};
        if (qwen2vl) {
            const char *more[] = {"--arch", "qwen2vl", "--qk-scale", "0.3"};
            memcpy(&args[21], more, sizeof more); /* after chatml */
        }
        rc = h_run_exe(t, exe, args, 60000, &log);
    } else {
        snprintf(exe, sizeof exe, "%s/gen_vision", h_tools_dir());
        const char *kind = strcmp(name, "audio-mmproj.gguf") == 0     ? "--audio"
                           : strcmp(name, "qwen2vl-mmproj.gguf") == 0 ? "--qwen2vl"
                                                                      : NULL;
        const char *args[] = {p, "--text-embd", "64", "--seed", "2", kind, NULL};
        rc = h_run_exe(t, exe, args, 60000, &log);
    }
    if (rc != 0)
        fail_msg("%s: exit %d: %s", exe, rc, log);
    free(log);
    return p;
}

/* A server for the fixture model PREFIX-model.gguf with PREFIX-mmproj.gguf, 256 tokens of
 * context per slot, and the extra arguments (NULL-terminated, may be NULL). */
static h_server *start_pair(h_test *t, const char *prefix, const char *const *extra) {
    char model[64], mmproj[64];
    snprintf(model, sizeof model, "%s-model.gguf", prefix);
    snprintf(mmproj, sizeof mmproj, "%s-mmproj.gguf", prefix);
    const char *args[H_MAX_ARGS] = {"--model",          fixture(t, model), "--mmproj",
                                    fixture(t, mmproj), "--ctx",           "256"};
    int n = 6;
    for (int i = 0; extra != NULL && extra[i] != NULL && n < H_MAX_ARGS - 1; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    return h_start(t, args);
}

static h_server *start_vision(h_test *t, const char *const *extra) {
    return start_pair(t, "vision", extra);
}

/* ---- files and base64 ---- */

static unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc((size_t)len + 1);
    *n = fread(d, 1, (size_t)len, f);
    fclose(f);
    return d;
}

static char *b64(const unsigned char *d, size_t n) {
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc(n / 3 * 4 + 8), *p = o;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) |
                     (i + 2 < n ? d[i + 2] : 0);
        *p++ = a[v >> 18 & 63];
        *p++ = a[v >> 12 & 63];
        *p++ = i + 1 < n ? a[v >> 6 & 63] : '=';
        *p++ = i + 2 < n ? a[v & 63] : '=';
    }
    *p = '\0';
    return o;
}

/* Base64 of a test image (tests/data/vision/NAME). Owned. */
static char *image_b64(const char *name) {
    char path[4300];
    size_t n;
    snprintf(path, sizeof path, "%s/tests/data/vision/%s", h_source_dir(), name);
    unsigned char *d = read_file(path, &n);
    char *s = b64(d, n);
    free(d);
    return s;
}

static const char *mime(const char *name) {
    const char *ext = strrchr(name, '.');
    return strcmp(ext, ".png") == 0    ? "image/png"
           : strcmp(ext, ".jpg") == 0  ? "image/jpeg"
           : strcmp(ext, ".gif") == 0  ? "image/gif"
           : strcmp(ext, ".bmp") == 0  ? "image/bmp"
           : strcmp(ext, ".webp") == 0 ? "image/webp"
                                       : "application/octet-stream";
}

/* data:<mime>;base64,<data> of a test image. Owned. */
static char *data_uri(const char *name) {
    char *d = image_b64(name);
    size_t n = strlen(d) + 64;
    char *u = malloc(n);
    snprintf(u, n, "data:%s;base64,%s", mime(name), d);
    free(d);
    return u;
}

/* ---- golden ---- */

typedef struct vgold {
    char image[64];
    char text[1024];
    int max_tokens;
} vgold;

/* golden/FILE's lines into g. */
static int golden_file(const char *file, vgold *g, int max) {
    char path[4200], line[4096];
    snprintf(path, sizeof path, "%s/tests/integration/golden/%s", h_source_dir(), file);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("golden file missing: %s", path);
    int n = 0;
    while (n < max && fgets(line, sizeof line, f) != NULL) {
        json_t *j = h_json(line);
        assert_string_equal(h_str(j, "prompt"), PROMPT);
        snprintf(g[n].image, sizeof g[n].image, "%s", h_str(j, "image"));
        snprintf(g[n].text, sizeof g[n].text, "%s", h_str(j, "text"));
        g[n].max_tokens = (int)h_int(j, "max_tokens");
        json_decref(j);
        n++;
    }
    fclose(f);
    assert_true(n >= 4);
    return n;
}

static int golden(vgold *g, int max) {
    return golden_file("vision.jsonl", g, max);
}

/* ---- request bodies ---- */

/* OpenAI chat to model: [image_url part, text part], greedy. Owned. */
static json_t *oai_image_req_to(const char *model, const char *image, int max_tokens) {
    char *u = data_uri(image);
    json_t *j =
        json_pack("{s:s,s:[{s:s,s:[{s:s,s:{s:s}},{s:s,s:s}]}],s:i,s:f}", "model", model, "messages",
                  "role", "user", "content", "type", "image_url", "image_url", "url", u, "type",
                  "text", "text", PROMPT, "max_tokens", max_tokens, "temperature", 0.0);
    free(u);
    return j;
}

static json_t *oai_image_req(const char *image, int max_tokens) {
    return oai_image_req_to("vision-model", image, max_tokens);
}

static json_t *post_ok(int port, const char *path, json_t *req) {
    json_t *r = h_post_expect(port, path, req, 200);
    json_decref(req);
    return r;
}

/* ---- tests ---- */

/* Every golden image through OpenAI chat: the answer is llama-mtmd-cli's, and usage counts the
 * image's tokens (the text-only prompt's count plus IMAGE_TOKENS). */
static void test_golden_openai(void **state) {
    h_test *t = *state;
    h_server *s = start_vision(t, NULL);
    vgold g[8];
    int n = golden(g, 8);
    json_t *txt =
        post_ok(s->port, "/v1/chat/completions",
                json_pack("{s:s,s:[{s:s,s:s}],s:i,s:f}", "model", "vision-model", "messages",
                          "role", "user", "content", PROMPT, "max_tokens", 1, "temperature", 0.0));
    long long text_tokens = h_int(h_obj(txt, "usage"), "prompt_tokens");
    json_decref(txt);
    for (int i = 0; i < n; i++) {
        json_t *r =
            post_ok(s->port, "/v1/chat/completions", oai_image_req(g[i].image, g[i].max_tokens));
        const char *got = json_string_value(h_get(r, "choices.0.message.content"));
        if (got == NULL || strcmp(got, g[i].text) != 0)
            fail_msg("%s: got '%s', llama-mtmd-cli '%s'", g[i].image, got ? got : "(null)",
                     g[i].text);
        assert_int_equal(h_int(h_obj(r, "usage"), "prompt_tokens"), text_tokens + IMAGE_TOKENS);
        assert_int_equal(h_int(h_obj(r, "usage"), "completion_tokens"), g[i].max_tokens);
        json_decref(r);
    }
    /* WebP (lossless, the pixels of pattern.png): decoded by libwebp, the PNG's answer */
    assert_string_equal(g[0].image, "pattern.png");
    json_t *r = post_ok(s->port, "/v1/chat/completions", oai_image_req("pattern.webp", 16));
    assert_string_equal(json_string_value(h_get(r, "choices.0.message.content")), g[0].text);
    json_decref(r);
    h_pass(t);
}

/* The first golden image through Ollama (/api/chat images, /api/generate images), Anthropic
 * (image block, base64 source) and Responses (input_image data: URI), whole and streamed where
 * the text is easy to join. */
static void test_golden_other_apis(void **state) {
    h_test *t = *state;
    h_server *s = start_vision(t, NULL);
    vgold g[8];
    golden(g, 8);
    for (int i = 0; i < 3; i++) { /* PNG, JPEG, GIF */
        char *b = image_b64(g[i].image), *u = data_uri(g[i].image);
        json_t *r =
            post_ok(s->port, "/api/chat",
                    json_pack("{s:s,s:[{s:s,s:s,s:[s]}],s:b,s:{s:f,s:i}}", "model", "vision-model",
                              "messages", "role", "user", "content", PROMPT, "images", b, "stream",
                              0, "options", "temperature", 0.0, "num_predict", g[i].max_tokens));
        assert_string_equal(h_str(h_obj(r, "message"), "content"), g[i].text);
        assert_int_equal(h_int(r, "eval_count"), g[i].max_tokens);
        json_decref(r);
        r = post_ok(s->port, "/api/generate",
                    json_pack("{s:s,s:s,s:[s],s:b,s:{s:f,s:i}}", "model", "vision-model", "prompt",
                              PROMPT, "images", b, "stream", 0, "options", "temperature", 0.0,
                              "num_predict", g[i].max_tokens));
        assert_string_equal(h_str(r, "response"), g[i].text);
        json_decref(r);
        r = post_ok(s->port, "/v1/messages",
                    json_pack("{s:s,s:i,s:f,s:[{s:s,s:[{s:s,s:{s:s,s:s,s:s}},{s:s,s:s}]}]}",
                              "model", "vision-model", "max_tokens", g[i].max_tokens, "temperature",
                              0.0, "messages", "role", "user", "content", "type", "image", "source",
                              "type", "base64", "media_type", mime(g[i].image), "data", b, "type",
                              "text", "text", PROMPT));
        assert_string_equal(json_string_value(h_get(r, "content.0.text")), g[i].text);
        /* the whole prompt: input_tokens leaves out what was read from the cache */
        long long used = h_int(h_obj(r, "usage"), "input_tokens") +
                         h_int(h_obj(r, "usage"), "cache_read_input_tokens");
        json_decref(r);
        /* count_tokens counts the image as /v1/messages' usage does: the text's count plus
         * the image's tokens */
        r = post_ok(s->port, "/v1/messages/count_tokens",
                    json_pack("{s:s,s:[{s:s,s:[{s:s,s:{s:s,s:s,s:s}},{s:s,s:s}]}]}", "model",
                              "vision-model", "messages", "role", "user", "content", "type",
                              "image", "source", "type", "base64", "media_type", mime(g[i].image),
                              "data", b, "type", "text", "text", PROMPT));
        assert_int_equal(h_int(r, "input_tokens"), used);
        json_decref(r);
        r = post_ok(s->port, "/v1/messages/count_tokens",
                    json_pack("{s:s,s:[{s:s,s:[{s:s,s:s}]}]}", "model", "vision-model", "messages",
                              "role", "user", "content", "type", "text", "text", PROMPT));
        assert_int_equal(h_int(r, "input_tokens") + IMAGE_TOKENS, used);
        json_decref(r);
        r = post_ok(s->port, "/v1/responses",
                    json_pack("{s:s,s:i,s:f,s:[{s:s,s:[{s:s,s:s},{s:s,s:s}]}]}", "model",
                              "vision-model", "max_output_tokens", g[i].max_tokens, "temperature",
                              0.0, "input", "role", "user", "content", "type", "input_image",
                              "image_url", u, "type", "input_text", "text", PROMPT));
        assert_string_equal(h_str(r, "output_text"), g[i].text);
        json_decref(r);
        free(b);
        free(u);
    }
    /* streamed OpenAI chat: the same text in deltas */
    json_t *req = oai_image_req(g[0].image, g[0].max_tokens);
    json_object_set_new(req, "stream", json_true());
    char *body = h_dump(req);
    h_sse sse;
    h_stream(s->port, "/v1/chat/completions", body, 0, 0, &sse);
    char *text = h_sse_text(&sse);
    assert_string_equal(text, g[0].text);
    free(text);
    free(body);
    json_decref(req);
    h_sse_free(&sse);
    h_pass(t);
}

static long long cached(const json_t *r) {
    return h_int(h_obj(h_obj(r, "usage"), "prompt_tokens_details"), "cached_tokens");
}

/* One slot: the same image again reuses the whole prompt (image included) from the slot's KV
 * cache and gives the same answer; another image is evaluated again from where it starts. */
static void test_prefix_reuse(void **state) {
    h_test *t = *state;
    const char *extra[] = {"--parallel", "1", NULL};
    h_server *s = start_vision(t, extra);
    vgold g[8];
    golden(g, 8);
    json_t *a = post_ok(s->port, "/v1/chat/completions", oai_image_req(g[0].image, 4));
    json_t *b = post_ok(s->port, "/v1/chat/completions", oai_image_req(g[0].image, 4));
    long long pt = h_int(h_obj(b, "usage"), "prompt_tokens");
    assert_int_equal(cached(a), 0);
    if (cached(b) != pt - 1)
        fail_msg("the same image again: cached_tokens %lld of %lld", cached(b), pt);
    assert_string_equal(json_string_value(h_get(a, "choices.0.message.content")),
                        json_string_value(h_get(b, "choices.0.message.content")));
    json_t *c = post_ok(s->port, "/v1/chat/completions", oai_image_req(g[2].image, 4));
    if (cached(c) >= pt - 1 - IMAGE_TOKENS)
        fail_msg("another image: cached_tokens %lld of %lld (the image must be evaluated again)",
                 cached(c), pt);
    json_t *h = h_health(s->port);
    json_decref(h);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    h_pass(t);
}

typedef struct job {
    int port;
    const vgold *g;    /* image request when set, else text */
    const char *model; /* NULL: vision-model */
    char got[1024];
    long status;
} job;

static void *job_run(void *arg) {
    job *j = arg;
    const char *model = j->model != NULL ? j->model : "vision-model";
    json_t *req =
        j->g != NULL
            ? oai_image_req_to(model, j->g->image, j->g->max_tokens)
            : json_pack("{s:s,s:[{s:s,s:s}],s:i,s:f}", "model", model, "messages", "role", "user",
                        "content", "Tell me a story.", "max_tokens", 16, "temperature", 0.0);
    char *body = h_dump(req), *resp = NULL;
    json_decref(req);
    http_post_json(j->port, "/v1/chat/completions", body, &j->status, &resp);
    json_error_t e;
    json_t *r = resp ? json_loads(resp, 0, &e) : NULL;
    const char *c = json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(r, "choices"), 0), "message"), "content"));
    snprintf(j->got, sizeof j->got, "%s", c ? c : "");
    json_decref(r);
    free(resp);
    free(body);
    return NULL;
}

/* Runs n requests to model (NULL: vision-model) at once, pick[i] an image request's golden
 * answer or NULL for a text request: each must succeed and each image answer be its golden one. */
static void run_jobs(int port, const char *model, const vgold *const *pick, int n) {
    job jobs[8];
    pthread_t th[8];
    assert_true(n <= 8);
    for (int i = 0; i < n; i++) {
        jobs[i] = (job){.port = port, .g = pick[i], .model = model};
        pthread_create(&th[i], NULL, job_run, &jobs[i]);
    }
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < n; i++) {
        if (jobs[i].status != 200)
            fail_msg("request %d: status %ld", i, jobs[i].status);
        if (jobs[i].g != NULL && strcmp(jobs[i].got, jobs[i].g->text) != 0)
            fail_msg("%s next to other requests: got '%s', llama-mtmd-cli '%s'", jobs[i].g->image,
                     jobs[i].got, jobs[i].g->text);
    }
}

/* Four image requests (each its own image) and four text requests at once on four slots: every
 * image answer is its golden one, every text request succeeds. */
static void test_concurrent(void **state) {
    h_test *t = *state;
    const char *extra[] = {"--parallel", "4", NULL};
    h_server *s = start_vision(t, extra);
    vgold g[8];
    int n = golden(g, 8);
    const vgold *pick[8];
    for (int i = 0; i < 8; i++)
        pick[i] = i < 4 ? &g[i % n] : NULL;
    run_jobs(s->port, NULL, pick, 8);
    h_pass(t);
}

/* POSTs j (taken) to path and checks the error status and param; returns the message. */
static void expect_error(int port, const char *path, json_t *j, long status, const char *param,
                         const char *needle) {
    char *body = h_dump(j), msg[512];
    json_decref(j);
    h_resp r;
    h_request(port, "POST", path, body, strlen(body), 0, &r);
    h_assert_error(&r, status, param, msg, sizeof msg);
    if (needle != NULL && strstr(msg, needle) == NULL)
        fail_msg("%s: error '%s' does not say '%s'", path, msg, needle);
    h_resp_free(&r);
    free(body);
}

static json_t *oai_url_req(const char *model, const char *type, const char *url) {
    if (strcmp(type, "input_audio") == 0)
        return json_pack("{s:s,s:[{s:s,s:[{s:s,s:{s:s,s:s}},{s:s,s:s}]}],s:i}", "model", model,
                         "messages", "role", "user", "content", "type", "input_audio",
                         "input_audio", "data", url, "format", "wav", "type", "text", "text",
                         PROMPT, "max_tokens", 2);
    return json_pack("{s:s,s:[{s:s,s:[{s:s,s:{s:s}},{s:s,s:s}]}],s:i}", "model", model, "messages",
                     "role", "user", "content", "type", "image_url", "image_url", "url", url,
                     "type", "text", "text", PROMPT, "max_tokens", 2);
}

static void test_errors(void **state) {
    h_test *t = *state;
    h_server *s = start_vision(t, NULL);
    int p = s->port;
    const char *part = "messages[0].content[0].image_url.url";
    char *png = data_uri("pattern.png");
    /* audio to a model whose projector takes only images */
    char *wav = image_b64("tone.wav");
    expect_error(p, "/v1/chat/completions", oai_url_req("vision-model", "input_audio", wav), 400,
                 "messages[0].content[0].input_audio.data", "does not support audio");
    /* undecodable: a PNG signature then garbage */
    expect_error(p, "/v1/chat/completions",
                 oai_url_req("vision-model", "image_url",
                             "data:image/png;base64,iVBORw0KGgoAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                 400, part, "could not be decoded");
    expect_error(p, "/v1/chat/completions",
                 oai_url_req("vision-model", "image_url", "data:image/png;base64,@@@@"), 400, part,
                 "base64");
    expect_error(p, "/v1/chat/completions",
                 oai_url_req("vision-model", "image_url", "data:image/png;base64,aGVsbG8gd29ybGQ="),
                 400, part, "not a PNG");
    /* a format no decoder takes (TIFF) */
    expect_error(p, "/v1/chat/completions",
                 oai_url_req("vision-model", "image_url", "data:image/tiff;base64,SUkqAAgAAAA="),
                 400, part, "is not a PNG, JPEG, WebP, GIF or BMP image");
    /* too many pixels: 413 */
    char *huge = data_uri("huge.png");
    expect_error(p, "/v1/chat/completions", oai_url_req("vision-model", "image_url", huge), 413,
                 part, "pixels");
    /* a remote URL without --allow-remote-media */
    expect_error(p, "/v1/chat/completions",
                 oai_url_req("vision-model", "image_url", "https://example.com/cat.png"), 400, part,
                 "--allow-remote-media");
    /* too many media parts */
    json_t *many = json_array();
    for (int i = 0; i < 17; i++)
        json_array_append_new(
            many, json_pack("{s:s,s:{s:s}}", "type", "image_url", "image_url", "url", png));
    json_array_append_new(many, json_pack("{s:s,s:s}", "type", "text", "text", PROMPT));
    expect_error(p, "/v1/chat/completions",
                 json_pack("{s:s,s:[{s:s,s:o}],s:i}", "model", "vision-model", "messages", "role",
                           "user", "content", many, "max_tokens", 2),
                 400, "messages[0].content[16].image_url.url", "at most 16");
    /* an image in the final assistant message (continued as a prefill): the chat module renders
     * only that message's text, so the image is not in the prompt */
    expect_error(p, "/v1/chat/completions",
                 json_pack("{s:s,s:[{s:s,s:s},{s:s,s:[{s:s,s:{s:s}}]}],s:i}", "model",
                           "vision-model", "messages", "role", "user", "content", PROMPT, "role",
                           "assistant", "content", "type", "image_url", "image_url", "url", png,
                           "max_tokens", 2),
                 400, "messages", "0 of the 1 images or audio clips given are in the prompt");
    /* Ollama: not base64 */
    json_t *j = json_pack("{s:s,s:[{s:s,s:s,s:[s]}],s:b}", "model", "vision-model", "messages",
                          "role", "user", "content", PROMPT, "images", "%%%", "stream", 0);
    char *body = h_dump(j);
    json_decref(j);
    h_resp r;
    h_request(p, "POST", "/api/chat", body, strlen(body), 0, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "messages[0].images[0]"));
    h_resp_free(&r);
    free(body);
    free(huge);
    free(wav);

    /* a model without a projector */
    const char *args[] = {"--model", h_model_path(H_MODEL_FILE), NULL};
    h_server *plain = h_start(t, args);
    expect_error(plain->port, "/v1/chat/completions", oai_url_req(H_MODEL_NAME, "image_url", png),
                 400, part, "model " H_MODEL_NAME " does not support images");
    j = json_pack("{s:s,s:s,s:[s],s:b}", "model", H_MODEL_NAME, "prompt", PROMPT, "images",
                  strchr(png, ',') + 1, "stream", 0);
    body = h_dump(j);
    json_decref(j);
    h_request(plain->port, "POST", "/api/generate", body, strlen(body), 0, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "does not support images"));
    h_resp_free(&r);
    free(body);
    free(png);
    h_pass(t);
}

/* A prompt that ends with an image, which a chat template that renders the messages' content
 * flat (no turn markers, no generation prompt) makes of a user message whose last part is an
 * image: llama.cpp's own tools abort on such a prompt (llama-server: GGML_ASSERT(batch.size() > 0);
 * llama-mtmd-cli: no logits to sample), so it is a 400 that says what to add. With text after
 * the image the same request is answered. */
static void test_ends_with_image(void **state) {
    h_test *t = *state;
    char tmpl[4300];
    snprintf(tmpl, sizeof tmpl, "%s/flat.jinja", t->dir);
    FILE *f = fopen(tmpl, "w");
    assert_non_null(f);
    fputs("{% for message in messages %}{{ message['content'] }}{% endfor %}", f);
    fclose(f);
    const char *extra[] = {"--chat-template-file", tmpl, NULL};
    h_server *s = start_vision(t, extra);
    char *u = data_uri("pattern.png");
    expect_error(s->port, "/v1/chat/completions",
                 json_pack("{s:s,s:[{s:s,s:[{s:s,s:s},{s:s,s:{s:s}}]}],s:i}", "model",
                           "vision-model", "messages", "role", "user", "content", "type", "text",
                           "text", PROMPT, "type", "image_url", "image_url", "url", u, "max_tokens",
                           2),
                 400, "messages", "add text after the last image");
    json_decref(post_ok(s->port, "/v1/chat/completions", oai_image_req("pattern.png", 2)));
    free(u);
    h_pass(t);
}

/* ---- a loopback HTTP server for remote URLs ---- */

/* Serves, one connection at a time, each answered then closed (Connection: close):
 *   /pattern.png  tests/data/vision/pattern.png
 *   /big.png      MEDIA_BYTES + 1 bytes (a PNG signature, then zeros)
 *   /redirect     302 to /pattern.png; /loop: 302 to itself
 *   /close        the connection closed without an answer
 *   /hang         the request read, then nothing (the connection held until the test ends) */
typedef struct media_srv {
    int fd, port;
    pthread_t th;
    unsigned char *png;
    size_t png_n;
    int held[8];
    int n_held;
} media_srv;

static void send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* the client went away (a file too large: it stops reading) */
        c += w;
        n -= (size_t)w;
    }
}

static void send_head(int fd, const char *status, const char *extra, size_t len) {
    char h[512];
    int n =
        snprintf(h, sizeof h, "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
                 status, extra, len);
    send_all(fd, h, (size_t)n);
}

static void *media_srv_main(void *p) {
    media_srv *m = p;
    for (;;) {
        int c = accept(m->fd, NULL, NULL);
        if (c < 0)
            return NULL; /* shut down */
        char req[2048];
        size_t n = 0;
        struct pollfd pf = {.fd = c, .events = POLLIN};
        while (n < sizeof req - 1 && poll(&pf, 1, 5000) > 0) {
            ssize_t r = recv(c, req + n, sizeof req - 1 - n, 0);
            if (r <= 0)
                break;
            n += (size_t)r;
            req[n] = '\0';
            if (strstr(req, "\r\n\r\n") != NULL)
                break;
        }
        req[n] = '\0';
        if (strncmp(req, "GET /pattern.png ", 17) == 0) {
            send_head(c, "200 OK", "Content-Type: image/png\r\n", m->png_n);
            send_all(c, m->png, m->png_n);
        } else if (strncmp(req, "GET /big.png ", 13) == 0) {
            static unsigned char chunk[65536] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
            size_t left = MEDIA_BYTES + 1;
            send_head(c, "200 OK", "Content-Type: image/png\r\n", left);
            while (left > 0) {
                size_t k = left < sizeof chunk ? left : sizeof chunk;
                if (send(c, chunk, k, MSG_NOSIGNAL) <= 0)
                    break;
                left -= k;
                chunk[0] = 0;
            }
        } else if (strncmp(req, "GET /redirect ", 14) == 0) {
            send_head(c, "302 Found", "Location: /pattern.png\r\n", 0);
        } else if (strncmp(req, "GET /loop ", 10) == 0) {
            send_head(c, "302 Found", "Location: /loop\r\n", 0);
        } else if (strncmp(req, "GET /hang ", 10) == 0 &&
                   m->n_held < (int)(sizeof m->held / sizeof m->held[0])) {
            m->held[m->n_held++] = c;
            continue;
        } else if (strncmp(req, "GET /close ", 11) != 0) {
            send_head(c, "404 Not Found", "", 0);
        }
        close(c);
    }
}

static void media_srv_start(media_srv *m) {
    memset(m, 0, sizeof *m);
    char path[4300];
    snprintf(path, sizeof path, "%s/tests/data/vision/pattern.png", h_source_dir());
    m->png = read_file(path, &m->png_n);
    m->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (m->fd < 0 || bind(m->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(m->fd, 8) != 0 ||
        getsockname(m->fd, (struct sockaddr *)&a, &al) != 0)
        fail_msg("the test's HTTP server cannot listen on loopback");
    m->port = ntohs(a.sin_port);
    if (pthread_create(&m->th, NULL, media_srv_main, m) != 0)
        fail_msg("cannot start the test's HTTP server");
}

static void media_srv_stop(media_srv *m) {
    shutdown(m->fd, SHUT_RDWR); /* wakes accept */
    pthread_join(m->th, NULL);
    close(m->fd);
    for (int i = 0; i < m->n_held; i++)
        close(m->held[i]);
    free(m->png);
}

/* --allow-remote-media against a loopback HTTP server: an image URL gives the same greedy answer
 * as the image inline (the data: URI's golden), and so does a redirect to it; a file over
 * MEDIA_BYTES is a 413; a server that closes without answering, a redirect loop and one that
 * never answers (within MEDIA_FETCH_S and a margin) are a 400 that says the fetch failed. Also
 * shimmy's own chat page (not an image) and a closed port. */
static void test_remote_media(void **state) {
    h_test *t = *state;
    const char *extra[] = {"--allow-remote-media", NULL};
    h_server *s = start_vision(t, extra);
    media_srv m;
    media_srv_start(&m);
    vgold g[8];
    golden(g, 8);
    assert_string_equal(g[0].image, "pattern.png");
    char url[128];
    const char *part = "messages[0].content[0].image_url.url";
    const char *ok[] = {"pattern.png", "redirect"};
    for (int i = 0; i < 2; i++) {
        snprintf(url, sizeof url, "http://127.0.0.1:%d/%s", m.port, ok[i]);
        json_t *req = oai_url_req("vision-model", "image_url", url);
        json_object_set_new(req, "max_tokens", json_integer(g[0].max_tokens));
        json_object_set_new(req, "temperature", json_real(0.0));
        json_t *r = post_ok(s->port, "/v1/chat/completions", req);
        const char *got = json_string_value(h_get(r, "choices.0.message.content"));
        if (got == NULL || strcmp(got, g[0].text) != 0)
            fail_msg("%s: answer '%s', the data: URI's (llama-mtmd-cli's) '%s'", url,
                     got ? got : "(none)", g[0].text);
        json_decref(r);
    }
    snprintf(url, sizeof url, "http://127.0.0.1:%d/big.png", m.port);
    expect_error(s->port, "/v1/chat/completions", oai_url_req("vision-model", "image_url", url),
                 413, part, "over 6291456 bytes");
    snprintf(url, sizeof url, "http://127.0.0.1:%d/close", m.port);
    expect_error(s->port, "/v1/chat/completions", oai_url_req("vision-model", "image_url", url),
                 400, part, "fetching the URL failed");
    snprintf(url, sizeof url, "http://127.0.0.1:%d/loop", m.port);
    expect_error(s->port, "/v1/chat/completions", oai_url_req("vision-model", "image_url", url),
                 400, part, "fetching the URL failed");
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hang", m.port);
    int64_t t0 = h_now_ms();
    expect_error(s->port, "/v1/chat/completions", oai_url_req("vision-model", "image_url", url),
                 400, part, "fetching the URL failed");
    int64_t took = h_now_ms() - t0;
    if (took < (MEDIA_FETCH_S - 1) * 1000 || took > (MEDIA_FETCH_S + 5) * 1000)
        fail_msg("a URL that never answers failed after %lld ms, not after the %d s limit",
                 (long long)took, MEDIA_FETCH_S);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s->port);
    expect_error(s->port, "/v1/chat/completions", oai_url_req("vision-model", "image_url", url),
                 400, part, "not a PNG");
    expect_error(s->port, "/v1/chat/completions",
                 oai_url_req("vision-model", "image_url", "http://127.0.0.1:9/x.png"), 400, part,
                 "fetching the URL failed");
    media_srv_stop(&m);
    h_pass(t);
}

/* The audio projector (gen_vision --audio, Qwen2-Audio's type) on the same model: a WAV clip as
 * an OpenAI input_audio part gives llama-mtmd-cli's answer (golden/audio.jsonl; a clip is 750
 * tokens, counted in usage), and so does the same clip as MP3 (format "mp3"), and an image to this
 * model is refused: it takes no images. */
static void test_audio(void **state) {
    h_test *t = *state;
    const char *args[] = {"--model", fixture(t, "vision-model.gguf"), "--mmproj",
                          fixture(t, "audio-mmproj.gguf"), "--ctx", "1024",
                          /* as the golden's -t 2: the random encoder's 750 frames flip a greedy
                           * token when the CPU splits its sums another way */
                          "--threads", "2", NULL};
    h_server *s = h_start(t, args);
    char path[4200], line[2048];
    snprintf(path, sizeof path, "%s/tests/integration/golden/audio.jsonl", h_source_dir());
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("golden file missing: %s", path);
    int n = 0;
    while (fgets(line, sizeof line, f) != NULL) { /* tone.wav, tone.mp3 */
        json_t *g = h_json(line);
        const char *clip = h_str(g, "audio");
        const char *format = strrchr(clip, '.') + 1;
        char *data = image_b64(clip);
        json_t *r = post_ok(s->port, "/v1/chat/completions",
                            json_pack("{s:s,s:[{s:s,s:[{s:s,s:{s:s,s:s}},{s:s,s:s}]}],s:I,s:f}",
                                      "model", "vision-model", "messages", "role", "user",
                                      "content", "type", "input_audio", "input_audio", "data", data,
                                      "format", format, "type", "text", "text", h_str(g, "prompt"),
                                      "max_tokens", h_int(g, "max_tokens"), "temperature", 0.0));
        const char *got = json_string_value(h_get(r, "choices.0.message.content"));
        if (strcmp(got, h_str(g, "text")) != 0)
            fail_msg("%s: answer '%s', llama-mtmd-cli's '%s'", clip, got, h_str(g, "text"));
        if (h_int(h_obj(r, "usage"), "prompt_tokens") < 750)
            fail_msg("%s: prompt_tokens %lld: the clip's 750 tokens are not counted", clip,
                     h_int(h_obj(r, "usage"), "prompt_tokens"));
        json_decref(r);
        free(data);
        json_decref(g);
        n++;
    }
    fclose(f);
    assert_int_equal(n, 2);
    char *png = data_uri("pattern.png");
    expect_error(s->port, "/v1/chat/completions", oai_url_req("vision-model", "image_url", png),
                 400, "messages[0].content[0].image_url.url",
                 "model vision-model does not support images");
    free(png);
    h_pass(t);
}

/* ---- M-RoPE (Qwen2-VL) ---- */

#define QWEN2VL "qwen2vl-model"
/* libmtmd wraps a Qwen2-VL image in the text <|vision_start|> and <|vision_end|>, which the
 * fixture's Llama vocabulary (no such special tokens) spells in 7 tokens each */
#define QWEN2VL_WRAP 14

static h_server *start_qwen2vl(h_test *t, const char *const *extra) {
    return start_pair(t, "qwen2vl", extra);
}

/* The tokens of a test image on the Qwen2-VL projector: clip.cpp resizes it to multiples of 28
 * pixels (2x2 patches of 14 per token) with at least 8 tokens, so 32x32 and 24x24 become 3x3
 * tokens (at 3 positions) and 40x20 becomes 4x2 (at 4). */
static int qwen2vl_tokens(const char *image) {
    return strcmp(image, "stripes.bmp") == 0 ? 8 : 9;
}

/* The prompt tokens of the text-only request (PROMPT as the user message). */
static long long text_tokens(int port, const char *model) {
    json_t *r = post_ok(port, "/v1/chat/completions",
                        json_pack("{s:s,s:[{s:s,s:s}],s:i,s:f}", "model", model, "messages", "role",
                                  "user", "content", PROMPT, "max_tokens", 1, "temperature", 0.0));
    long long n = h_int(h_obj(r, "usage"), "prompt_tokens");
    json_decref(r);
    return n;
}

/* Checks an OpenAI answer against golden g: its text, and the image's tokens in usage. */
static void check_qwen2vl(const json_t *r, const vgold *g, long long text_n, const char *what) {
    const char *got = json_string_value(h_get(r, "choices.0.message.content"));
    if (got == NULL || strcmp(got, g->text) != 0)
        fail_msg("%s (%s): got '%s', llama-mtmd-cli '%s'", g->image, what, got ? got : "(null)",
                 g->text);
    assert_int_equal(h_int(h_obj(r, "usage"), "prompt_tokens"),
                     text_n + QWEN2VL_WRAP + qwen2vl_tokens(g->image));
}

/* Every golden image of the Qwen2-VL fixture through OpenAI chat, and one through Ollama's
 * /api/chat and /api/generate: the answers are llama-mtmd-cli's (text after an image at the
 * image's position plus max(nx, ny), not plus its token count: the fixture's attention is sharp
 * enough that the wrong positions give other answers). */
static void test_mrope_golden(void **state) {
    h_test *t = *state;
    h_server *s = start_qwen2vl(t, NULL);
    vgold g[8];
    int n = golden_file("vision-qwen2vl.jsonl", g, 8);
    long long text_n = text_tokens(s->port, QWEN2VL);
    for (int i = 0; i < n; i++) {
        json_t *r = post_ok(s->port, "/v1/chat/completions",
                            oai_image_req_to(QWEN2VL, g[i].image, g[i].max_tokens));
        check_qwen2vl(r, &g[i], text_n, "OpenAI");
        json_decref(r);
    }
    assert_string_equal(g[3].image, "stripes.bmp"); /* 4x2 tokens: nx != ny */
    char *b = image_b64(g[3].image);
    json_t *r =
        post_ok(s->port, "/api/chat",
                json_pack("{s:s,s:[{s:s,s:s,s:[s]}],s:b,s:{s:f,s:i}}", "model", QWEN2VL, "messages",
                          "role", "user", "content", PROMPT, "images", b, "stream", 0, "options",
                          "temperature", 0.0, "num_predict", g[3].max_tokens));
    assert_string_equal(h_str(h_obj(r, "message"), "content"), g[3].text);
    json_decref(r);
    r = post_ok(s->port, "/api/generate",
                json_pack("{s:s,s:s,s:[s],s:b,s:{s:f,s:i}}", "model", QWEN2VL, "prompt", PROMPT,
                          "images", b, "stream", 0, "options", "temperature", 0.0, "num_predict",
                          g[3].max_tokens));
    assert_string_equal(h_str(r, "response"), g[3].text);
    json_decref(r);
    free(b);
    h_pass(t);
}

/* One slot: the same image again is read from the slot's cache up to the last token (evaluated
 * again at the right position) and gives the same answer; another image (of other positions) is
 * evaluated from its start; the first image once more comes back from the host-RAM prompt cache
 * (saved when the other image took the slot), positions and all. */
static void test_mrope_prefix_reuse(void **state) {
    h_test *t = *state;
    const char *extra[] = {"--parallel", "1", NULL};
    h_server *s = start_qwen2vl(t, extra);
    vgold g[8];
    golden_file("vision-qwen2vl.jsonl", g, 8);
    long long text_n = text_tokens(s->port, QWEN2VL);
    const vgold *order[] = {&g[0], &g[0], &g[3], &g[0]};
    const char *what[] = {"first", "again, from the slot", "another image",
                          "again, from the prompt cache"};
    for (int i = 0; i < 4; i++) {
        json_t *r = post_ok(s->port, "/v1/chat/completions",
                            oai_image_req_to(QWEN2VL, order[i]->image, order[i]->max_tokens));
        check_qwen2vl(r, order[i], text_n, what[i]);
        long long pt = h_int(h_obj(r, "usage"), "prompt_tokens"), c = cached(r);
        bool again = i == 1 || i == 3;
        if (again && c != pt - 1)
            fail_msg("%s: cached_tokens %lld of %lld", what[i], c, pt);
        if (!again && c >= pt - 1 - qwen2vl_tokens(order[i]->image))
            fail_msg("%s: cached_tokens %lld of %lld (the image must be evaluated)", what[i], c,
                     pt);
        json_decref(r);
    }
    h_pass(t);
}

static long long kv_copies(int port) {
    json_t *h = h_health(port);
    long long n = h_int(json_array_get(json_object_get(h, "models"), 0), "kv_copies");
    json_decref(h);
    return n;
}

/* Four slots. A request for two choices (n = 2) of an image: the second choice waits for the
 * first's prompt and its slot copies the KV cells, image included (kv_copies goes up), and both
 * choices are the golden answer. Then two requests for the same image, two other images and two
 * text requests at once: every image answer is its golden one. */
static void test_mrope_concurrent(void **state) {
    h_test *t = *state;
    const char *extra[] = {"--parallel", "4", NULL};
    h_server *s = start_qwen2vl(t, extra);
    vgold g[8];
    golden_file("vision-qwen2vl.jsonl", g, 8);
    long long copies = kv_copies(s->port); /* 0: a fresh server */
    json_t *req = oai_image_req_to(QWEN2VL, g[3].image, g[3].max_tokens);
    json_object_set_new(req, "n", json_integer(2));
    json_t *r = post_ok(s->port, "/v1/chat/completions", req);
    for (int i = 0; i < 2; i++) {
        char path[32];
        snprintf(path, sizeof path, "choices.%d.message.content", i);
        const char *got = json_string_value(h_get(r, path));
        if (got == NULL || strcmp(got, g[3].text) != 0)
            fail_msg("%s, choice %d of 2: got '%s', llama-mtmd-cli '%s'", g[3].image, i,
                     got ? got : "(null)", g[3].text);
    }
    json_decref(r);
    if (kv_copies(s->port) <= copies)
        fail_msg("two choices of one image prompt: no KV copy between slots (%lld before)", copies);
    const vgold *pick[] = {&g[0], &g[0], &g[2], &g[3], NULL, NULL};
    run_jobs(s->port, QWEN2VL, pick, 6);
    h_pass(t);
}

/* The context holds KV cells, one per token: a prompt whose tokens fill the context is refused
 * (400, context_length_exceeded) even though its positions (an image's 9 tokens at 3) would fit,
 * as llama-server refuses by token count. */
static void test_mrope_context(void **state) {
    h_test *t = *state;
    h_server *s = start_qwen2vl(t, NULL);
    long long text_n = text_tokens(s->port, QWEN2VL);
    h_server_stop(s, 10000);
    long long tokens = text_n + QWEN2VL_WRAP + qwen2vl_tokens("pattern.png");
    long long positions = text_n + QWEN2VL_WRAP + 3;
    char ctx[24], want[96];
    snprintf(ctx, sizeof ctx, "%lld", tokens);
    const char *args[] = {"--model",  fixture(t, "qwen2vl-model.gguf"),
                          "--mmproj", fixture(t, "qwen2vl-mmproj.gguf"),
                          "--ctx",    ctx,
                          NULL};
    s = h_start(t, args);
    assert_true(positions < tokens);
    snprintf(want, sizeof want, "the prompt has %lld tokens", tokens);
    expect_error(s->port, "/v1/chat/completions", oai_image_req_to(QWEN2VL, "pattern.png", 4), 400,
                 "messages", want);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_golden_openai, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_golden_other_apis, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_prefix_reuse, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_errors, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_ends_with_image, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_remote_media, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_audio, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_mrope_golden, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_mrope_prefix_reuse, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_mrope_concurrent, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_mrope_context, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
