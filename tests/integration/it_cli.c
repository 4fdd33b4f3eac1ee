/* it_cli: the command line: --version, usage errors (exit 2), `shimmy list`, a GGUF v1 model
 * (refused clearly), and a clean exit on SIGTERM. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define RUN_DEADLINE_MS 30000

static void test_version(void **state) {
    h_test *t = *state;
    const char *args[] = {"--version", NULL};
    char *out;
    int rc = h_run(t, args, RUN_DEADLINE_MS, &out);
    if (rc != 0 || strstr(out, "shimmy") == NULL || strstr(out, "0.") == NULL)
        fail_msg("shimmy --version: exit %d, output \"%s\"", rc, out);
    free(out);
    h_pass(t);
}

/* Unknown options and bad values are usage errors: exit code 2 and a message on the output. */
static void test_usage_errors(void **state) {
    h_test *t = *state;
    const char *const cases[][6] = {
        {"serve", "--bogus", NULL},
        {"serve", "--parallel", "0", NULL},
        {"serve", "--parallel", "lots", NULL},
        {"serve", "--ctx", "-5", NULL},
        {"serve", "--bind", "nonsense", NULL},
        {"serve", "--queue", "0", NULL},
        {"no-such-subcommand", NULL},
        {"list", "--bogus", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out;
        int rc = h_run(t, cases[i], RUN_DEADLINE_MS, &out);
        if (rc != 2 || out[0] == '\0')
            fail_msg("shimmy %s %s %s: exit %d (want 2), output \"%s\"", cases[i][0],
                     cases[i][1] ? cases[i][1] : "", cases[i][1] && cases[i][2] ? cases[i][2] : "",
                     rc, out);
        free(out);
    }
    h_pass(t);
}

/* `shimmy list` finds ./models/stories260K.gguf and names it stories260k; so do --model-dirs
 * and --model. */
static void test_list(void **state) {
    h_test *t = *state;
    const char *model = h_model_path(H_MODEL_FILE);
    char dir[4200], link[4300];
    snprintf(dir, sizeof dir, "%s/models", t->dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(link, sizeof link, "%s/%s", dir, H_MODEL_FILE);
    assert_int_equal(symlink(model, link), 0);
    char models_dir[4096];
    snprintf(models_dir, sizeof models_dir, "%s", model);
    *strrchr(models_dir, '/') = '\0';

    const char *const cases[][5] = {
        {"list", NULL},
        {"list", "--json", NULL},
        {"list", "--model-dirs", models_dir, NULL},
        {"list", "--model", model, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out;
        int rc = h_run(t, cases[i], RUN_DEADLINE_MS, &out);
        if (rc != 0 || strstr(out, H_MODEL_NAME) == NULL)
            fail_msg("shimmy %s %s: exit %d, output lacks %s: \"%s\"", cases[i][0],
                     cases[i][1] ? cases[i][1] : "", rc, H_MODEL_NAME, out);
        free(out);
    }
    h_pass(t);
}

/* A GGUF v1 file: either serve exits non-zero naming the file, or it serves and answers a
 * request for the model with a clear error naming the file (and stays up). */
static void test_gguf_v1_model(void **state) {
    h_test *t = *state;
    const char *v1 = h_model_path("stories260K-ggufv1.gguf");
    const char *args[] = {"--model", v1, NULL};
    h_server *s = h_try_start(t, args);
    if (s->pid == 0) {
        char *log = h_server_read_log(s);
        int st = s->exit_status;
        if (!WIFEXITED(st) || WEXITSTATUS(st) == 0)
            fail_msg("serve with a GGUF v1 model ended with wait status %d (want a non-zero exit "
                     "code): %s",
                     st, log);
        if (strstr(log, "stories260K-ggufv1.gguf") == NULL)
            fail_msg("serve with a GGUF v1 model: the message does not name the file: %s", log);
        print_message("GGUF v1 at start-up: exit %d: %s", WEXITSTATUS(st), log);
        free(log);
        h_pass(t);
        return;
    }
    json_t *req = h_completion_req("Once upon a time", 4);
    json_object_set_new(req, "model", json_string("stories260k-ggufv1"));
    char *body = h_dump(req);
    h_resp r;
    h_request(s->port, "POST", "/v1/completions", body, strlen(body), 0, &r);
    print_message("GGUF v1 served: request answered %ld: %s\n", r.status, r.body);
    if (r.status < 400)
        fail_msg("a GGUF v1 model answered %ld: %s", r.status, r.body);
    char msg[1024];
    h_assert_error(&r, r.status, NULL, msg, sizeof msg);
    if (strstr(msg, "stories260K-ggufv1") == NULL && strstr(msg, "stories260k-ggufv1") == NULL)
        fail_msg("the error for a GGUF v1 model does not name it: %s", msg);
    h_resp_free(&r);
    json_decref(h_health(s->port));
    free(body);
    json_decref(req);
    h_pass(t);
}

/* SIGTERM after serving a request: exit code 0 within 10 s. */
static void test_sigterm_clean_exit(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    json_t *req = h_completion_req("Once", 4);
    json_decref(h_post_expect(s->port, "/v1/completions", req, 200));
    json_decref(req);
    int st = h_server_stop(s, 10000);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("after SIGTERM: wait status %d (want exit code 0)", st);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_version, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_usage_errors, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_list, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_gguf_v1_model, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_clean_exit, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
