/* it_wire: the rest of the OpenAI and Ollama wire through the real binary (issue 11).
 * Embeddings as clients send them: encoding_format base64 decodes to the float answer,
 * dimensions cuts and normalises again (larger than the model: a 400 naming dimensions), token
 * ids and token arrays give the text's vector, Ollama's truncate. Reranking on the generated
 * reranker (tools/gen_reranker): the scores, order, top_n and usage of llama-server --rerank on
 * the same fixture (golden/rerank.jsonl, tools/rerank_golden.sh), and the 400s naming the model
 * both ways. Ollama num_ctx: a request with another context reloads the model with it (/api/ps
 * shows it), waits for a running request, and --max-ctx caps it with a 400. */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The reranker fixture: BUILD/fixtures/reranker.gguf from make fixtures, else one written now
 * by the same generator into the test's folder. Returns static storage. */
static const char *reranker(h_test *t) {
    static char path[4300];
    struct stat st;
    snprintf(path, sizeof path, "%s/../fixtures/reranker.gguf", h_tools_dir());
    if (stat(path, &st) == 0)
        return path;
    char exe[4200], vocab[4200];
    snprintf(exe, sizeof exe, "%s/gen_reranker", h_tools_dir());
    snprintf(vocab, sizeof vocab, "%s/deps/llama.cpp/models/ggml-vocab-bert-bge.gguf",
             h_source_dir());
    snprintf(path, sizeof path, "%s/reranker.gguf", t->dir);
    const char *args[] = {path, "--vocab-from", vocab, NULL};
    char *log;
    int rc = h_run_exe(t, exe, args, 60000, &log);
    if (rc != 0)
        fail_msg("gen_reranker: exit %d: %s", rc, log);
    free(log);
    return path;
}

static h_server *start_both(h_test *t) {
    const char *args[] = {
        "--model", h_model_path(H_MODEL_FILE), "--model", reranker(t), "--ctx", "128", NULL};
    return h_start(t, args);
}

/* POSTs body; fails unless want; returns the parsed body (owned). */
static json_t *post(int port, const char *path, const char *body, long want) {
    long status;
    char *resp;
    assert_int_equal(http_post_json(port, path, body, &status, &resp), 0);
    if (status != want)
        fail_msg("%s %s: %ld (want %ld): %s", path, body, status, want, resp);
    json_t *j = h_json(resp);
    free(resp);
    return j;
}

static void expect_400(int port, const char *path, const char *body, const char *param) {
    h_resp r;
    char msg[512];
    h_request(port, "POST", path, body, strlen(body), 0, &r);
    h_assert_error(&r, 400, param, msg, sizeof msg);
    h_resp_free(&r);
}

/* ---- embeddings ---- */

static int b64(char c) {
    const char *abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c ? strchr(abc, c) : NULL;
    return p ? (int)(p - abc) : -1;
}

/* Decodes base64 little-endian float32s into out (at most max); returns the count. */
static size_t decode_floats(const char *s, float *out, size_t max) {
    unsigned char bytes[4 * 256];
    size_t nb = 0;
    for (size_t i = 0; s[i] && s[i + 1] && s[i + 2] && s[i + 3]; i += 4) {
        int v[4] = {b64(s[i]), b64(s[i + 1]), b64(s[i + 2]), b64(s[i + 3])};
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
                     (uint32_t)(v[2] < 0 ? 0 : v[2]) << 6 | (uint32_t)(v[3] < 0 ? 0 : v[3]);
        for (int k = 0; k < 3 && nb < sizeof bytes; k++)
            if (k == 0 || v[k + 1] >= 0)
                bytes[nb++] = (unsigned char)(x >> (16 - 8 * k));
    }
    size_t n = nb / 4 < max ? nb / 4 : max;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)bytes[4 * i] | (uint32_t)bytes[4 * i + 1] << 8 |
                     (uint32_t)bytes[4 * i + 2] << 16 | (uint32_t)bytes[4 * i + 3] << 24;
        memcpy(&out[i], &u, 4);
    }
    return n;
}

static double norm(const json_t *v) {
    double s = 0;
    for (size_t i = 0; i < json_array_size(v); i++)
        s += json_real_value(json_array_get(v, i)) * json_real_value(json_array_get(v, i));
    return sqrt(s);
}

static void test_embeddings(void **state) {
    h_test *t = *state;
    int port = start_both(t)->port;
    json_t *f = post(port, "/v1/embeddings",
                     "{\"model\":\"stories260k\",\"input\":\"Once upon a time\"}", 200);
    json_t *full = h_get(f, "data.0.embedding");
    size_t dim = json_array_size(full);
    assert_true(dim == 64);
    /* base64 is the same floats */
    json_t *b = post(port, "/v1/embeddings",
                     "{\"model\":\"stories260k\",\"input\":\"Once upon a "
                     "time\",\"encoding_format\":\"base64\"}",
                     200);
    float got[256];
    assert_int_equal(decode_floats(json_string_value(h_get(b, "data.0.embedding")), got, 256), dim);
    for (size_t i = 0; i < dim; i++)
        assert_true(fabs(got[i] - json_real_value(json_array_get(full, i))) < 1e-6);
    /* dimensions: the first 8, normalised again */
    json_t *d = post(port, "/v1/embeddings",
                     "{\"model\":\"stories260k\",\"input\":\"Once upon a "
                     "time\",\"dimensions\":8}",
                     200);
    json_t *cut = h_get(d, "data.0.embedding");
    assert_int_equal(json_array_size(cut), 8);
    assert_true(fabs(norm(cut) - 1.0) < 1e-5);
    double n8 = 0;
    for (size_t i = 0; i < 8; i++)
        n8 += pow(json_real_value(json_array_get(full, i)), 2);
    assert_true(fabs(json_real_value(json_array_get(cut, 3)) -
                     json_real_value(json_array_get(full, 3)) / sqrt(n8)) < 1e-5);
    expect_400(port, "/v1/embeddings",
               "{\"model\":\"stories260k\",\"input\":\"x\",\"dimensions\":"
               "65}",
               "dimensions");
    expect_400(port, "/v1/embeddings",
               "{\"model\":\"stories260k\",\"input\":\"x\","
               "\"encoding_format\":\"int8\"}",
               "encoding_format");
    /* token ids: the tokens of the text give its vector */
    json_t *tok = post(port, "/tokenize",
                       "{\"model\":\"stories260k\",\"content\":\"Once upon a "
                       "time\",\"add_special\":true}",
                       200);
    char *ids = h_dump(h_arr(tok, "tokens"));
    char body[1024];
    snprintf(body, sizeof body, "{\"model\":\"stories260k\",\"input\":[%s,[1]]}", ids);
    json_t *tk = post(port, "/v1/embeddings", body, 200);
    assert_int_equal(json_array_size(h_arr(tk, "data")), 2);
    for (size_t i = 0; i < dim; i++)
        assert_true(fabs(json_real_value(json_array_get(h_get(tk, "data.0.embedding"), i)) -
                         json_real_value(json_array_get(full, i))) < 1e-5);
    snprintf(body, sizeof body, "{\"model\":\"stories260k\",\"input\":%s}", ids);
    json_decref(post(port, "/v1/embeddings", body, 200));
    expect_400(port, "/v1/embeddings", "{\"model\":\"stories260k\",\"input\":[[1,99999999]]}",
               "input");
    /* Ollama: dimensions, and truncate (default true) */
    json_t *o = post(port, "/api/embed",
                     "{\"model\":\"stories260k\",\"input\":[\"a\",\"b\"],"
                     "\"dimensions\":16}",
                     200);
    assert_int_equal(json_array_size(h_get(o, "embeddings.1")), 16);
    size_t big = 4000;
    char *longb = malloc(big + 128);
    int k = snprintf(longb, big + 128, "{\"model\":\"stories260k\",\"input\":\"");
    for (size_t i = 0; i < 200; i++) /* about 400 tokens: past the context of 128 */
        k += snprintf(longb + k, big + 128 - (size_t)k, "a b ");
    snprintf(longb + k, big + 128 - (size_t)k, "\"}");
    json_decref(post(port, "/api/embed", longb, 200));
    snprintf(longb + k, big + 128 - (size_t)k, "\",\"truncate\":false}");
    json_t *tl = post(port, "/api/embed", longb, 400);
    assert_non_null(strstr(h_str(tl, "error"), "tokens"));
    json_decref(tl);
    free(longb);
    json_decref(o);
    json_decref(tk);
    free(ids);
    json_decref(tok);
    json_decref(d);
    json_decref(b);
    json_decref(f);
    h_pass(t);
}

/* ---- reranking ---- */

static void test_rerank_golden(void **state) {
    h_test *t = *state;
    int port = start_both(t)->port;
    char path[4200];
    snprintf(path, sizeof path, "%s/tests/integration/golden/rerank.jsonl", h_source_dir());
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, fp) != NULL) {
        json_t *g = h_json(line), *req = json_deep_copy(h_obj(g, "request"));
        json_object_set_new(req, "model", json_string("reranker"));
        json_t *got = h_post_expect(port, "/v1/rerank", req, 200);
        json_t *want = h_obj(g, "response");
        assert_int_equal(h_int(h_obj(got, "usage"), "prompt_tokens"),
                         h_int(h_obj(want, "usage"), "prompt_tokens"));
        json_t *gr = h_arr(got, "results"), *wr = h_arr(want, "results");
        assert_int_equal(json_array_size(gr), json_array_size(wr));
        for (size_t i = 0; i < json_array_size(wr); i++) {
            json_t *a = json_array_get(gr, i), *w = json_array_get(wr, i);
            assert_int_equal(h_int(a, "index"), h_int(w, "index"));
            double da = json_number_value(json_object_get(a, "relevance_score"));
            double dw = json_number_value(json_object_get(w, "relevance_score"));
            if (fabs(da - dw) > 1e-4)
                fail_msg("%s: result %zu: %.7f, llama-server %.7f", line, i, da, dw);
        }
        json_decref(got);
        json_decref(req);
        json_decref(g);
        n++;
    }
    fclose(fp);
    assert_true(n >= 5);
    json_t *d = post(port, "/rerank",
                     "{\"model\":\"reranker\",\"query\":\"q\",\"documents\":"
                     "[\"a\",{\"text\":\"b\"}],\"return_documents\":true,\"top_n\":5}",
                     200);
    assert_int_equal(json_array_size(h_arr(d, "results")), 2);
    assert_non_null(h_get(d, "results.1.document.text"));
    json_decref(d);
    expect_400(port, "/v1/rerank",
               "{\"model\":\"stories260k\",\"query\":\"q\",\"documents\":"
               "[\"a\"]}",
               "model");
    expect_400(port, "/v1/chat/completions",
               "{\"model\":\"reranker\",\"messages\":[{\"role\":"
               "\"user\",\"content\":\"hi\"}]}",
               "model");
    expect_400(port, "/v1/completions", "{\"model\":\"reranker\",\"prompt\":\"hi\"}", "model");
    expect_400(port, "/v1/rerank", "{\"model\":\"reranker\",\"query\":\"q\",\"documents\":[]}",
               "documents");
    expect_400(port, "/v1/rerank",
               "{\"model\":\"reranker\",\"query\":\"q\",\"documents\":"
               "[\"a\",3]}",
               "documents[1]");
    expect_400(port, "/v1/rerank", "{\"model\":\"reranker\",\"documents\":[\"a\"]}", "query");
    expect_400(port, "/v1/rerank",
               "{\"model\":\"reranker\",\"query\":\"q\",\"documents\":"
               "[\"a\"],\"top_n\":0}",
               "top_n");
    json_t *models = post(port, "/api/show", "{\"model\":\"reranker\"}", 200);
    json_decref(models);
    h_pass(t);
}

/* ---- num_ctx ---- */

static long ps_context(int port, const char *model) {
    long status;
    char *resp;
    assert_int_equal(http_get(port, "/api/ps", &status, &resp), 0);
    json_t *ps = h_json(resp);
    free(resp);
    long ctx = -1;
    json_t *m;
    size_t i;
    json_array_foreach(h_arr(ps, "models"), i, m) if (strcmp(h_str(m, "name"), model) == 0) ctx =
        (long)h_int(m, "context_length");
    json_decref(ps);
    return ctx;
}

static void test_num_ctx(void **state) {
    h_test *t = *state;
    const char *extra[] = {"--ctx", "256", "--max-ctx", "1024", NULL};
    int port = h_start_default(t, extra)->port;
    const char *gen = "{\"model\":\"stories260k\",\"prompt\":\"Once\",\"stream\":false,"
                      "\"options\":{\"num_predict\":4,\"temperature\":0%s}}";
    char body[512];
    snprintf(body, sizeof body, gen, "");
    json_decref(post(port, "/api/generate", body, 200));
    assert_int_equal(ps_context(port, "stories260k"), 256);
    snprintf(body, sizeof body, gen, ",\"num_ctx\":512");
    json_decref(post(port, "/api/generate", body, 200));
    assert_int_equal(ps_context(port, "stories260k"), 512);
    /* without num_ctx: the model as loaded */
    snprintf(body, sizeof body, gen, "");
    json_decref(post(port, "/api/generate", body, 200));
    assert_int_equal(ps_context(port, "stories260k"), 512);
    /* a running stream finishes first; the reload comes after it */
    h_sse s;
    const char *stream = "{\"model\":\"stories260k\",\"prompt\":\"Once upon a time\","
                         "\"stream\":true,\"max_tokens\":200,\"temperature\":0}";
    h_stream(port, "/v1/completions", stream, 2, 0, &s); /* hangs up after 2 events */
    h_sse_free(&s);
    snprintf(body, sizeof body, gen, ",\"num_ctx\":384");
    json_decref(post(port, "/api/generate", body, 200));
    assert_int_equal(ps_context(port, "stories260k"), 384);
    json_t *c = post(port, "/api/chat",
                     "{\"model\":\"stories260k\",\"messages\":[{\"role\":"
                     "\"user\",\"content\":\"hi\"}],\"stream\":false,\"options\":"
                     "{\"num_ctx\":2048}}",
                     400);
    assert_non_null(strstr(h_str(c, "error"), "2048"));
    assert_non_null(strstr(h_str(c, "error"), "1024"));
    json_decref(c);
    json_t *e = post(port, "/api/embed",
                     "{\"model\":\"stories260k\",\"input\":\"x\","
                     "\"options\":{\"num_ctx\":4096}}",
                     400);
    assert_non_null(strstr(h_str(e, "error"), "--max-ctx 1024"));
    json_decref(e);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_embeddings, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_rerank_golden, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_num_ctx, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
