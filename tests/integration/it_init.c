/* it_init: `shimmy init TARGET` writes files that their own tools accept: the systemd unit
 * passes `systemd-analyze verify` (and a broken one does not), compose and Kubernetes YAML parse
 * with PyYAML into the expected structure, and the Dockerfile matches the tarball of
 * scripts/dist.sh (names, paths, non-root user, healthcheck, an apt package for every library
 * it needs). tests/integration/check_init.py holds the YAML and Dockerfile checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

static char *run_sh(h_test *t, const char *cmd, int *rc) {
    const char *args[] = {"-c", cmd, NULL};
    char *out = NULL;
    *rc = h_run_exe(t, "/bin/sh", args, 120000, &out);
    return out;
}

/* shimmy init TARGET -o DIR [extra]; asserts exit 0. */
static void init(h_test *t, const char *target, const char *dir, const char *extra) {
    char cmd[9000];
    int rc;
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && '%s' init %s -o '%s' %s", dir, h_bin(), target, dir,
             extra ? extra : "");
    char *out = run_sh(t, cmd, &rc);
    if (rc != 0)
        fprintf(stderr, "%s\n", out);
    free(out); /* before the assertion: a failure returns from the test */
    assert_int_equal(rc, 0);
}

static void test_systemd(void **state) {
    h_test *t = *state;
    char dir[4200], cmd[16384], extra[4200];
    int rc;
    snprintf(dir, sizeof dir, "%s/systemd", t->dir);
    snprintf(extra, sizeof extra, "--bin '%s'", h_bin());
    init(t, "systemd", dir, extra);
    snprintf(cmd, sizeof cmd, "systemd-analyze verify '%s/shimmy.service' 2>&1", dir);
    char *out = run_sh(t, cmd, &rc);
    if (rc != 0 || out[0] != '\0')
        fprintf(stderr, "systemd-analyze: %s\n", out);
    bool quiet = out[0] == '\0'; /* not even a warning (printed above) */
    free(out);
    assert_int_equal(rc, 0);
    assert_true(quiet);
    snprintf(cmd, sizeof cmd, "cat '%s/shimmy.service'", dir);
    out = run_sh(t, cmd, &rc);
    const char *want[] = {"User=shimmy\n",
                          "NoNewPrivileges=yes\n",
                          "ProtectSystem=strict\n",
                          "ReadOnlyPaths=/var/lib/shimmy/models\n",
                          "ExecReload=/bin/kill -HUP",
                          "KillSignal=SIGTERM\n"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_non_null(strstr(out, want[i]));
    free(out);
    /* the validator can fail: a unit whose binary is missing and a bad value */
    snprintf(cmd, sizeof cmd,
             "sed 's|^ExecStart=[^ ]*|ExecStart=/nonexistent/shimmy|; s|^ProtectSystem=strict|"
             "ProtectSystem=bogus|' '%s/shimmy.service' > '%s/bad.service' && "
             "systemd-analyze verify '%s/bad.service'",
             dir, dir, dir);
    free(run_sh(t, cmd, &rc));
    assert_int_not_equal(rc, 0);
    /* no overwrite without --force */
    snprintf(cmd, sizeof cmd, "'%s' init systemd -o '%s'", h_bin(), dir);
    out = run_sh(t, cmd, &rc);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "shimmy.service exists: keep it, or overwrite it with --force"));
    free(out);
    h_pass(t);
}

static void test_yaml(void **state) {
    h_test *t = *state;
    char dir[4200], cmd[16384];
    int rc;
    snprintf(dir, sizeof dir, "%s/yaml", t->dir);
    init(t, "compose", dir, NULL);
    init(t, "kubernetes", dir, NULL);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/integration/check_init.py' yaml '%s'",
             h_source_dir(), dir);
    char *out = run_sh(t, cmd, &rc);
    if (rc != 0)
        fprintf(stderr, "check_init.py: %s\n", out);
    free(out); /* before the assertion: a failure returns from the test */
    assert_int_equal(rc, 0);
    /* a broken document is caught */
    snprintf(cmd, sizeof cmd,
             "sed -i 's|/health?ready=1|/health|' '%s/shimmy.k8s.yaml' && /usr/bin/python3 "
             "'%s/tests/integration/check_init.py' yaml '%s'",
             dir, h_source_dir(), dir);
    out = run_sh(t, cmd, &rc);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "k8s: readiness on /health?ready=1"));
    free(out);
    h_pass(t);
}

static void test_docker(void **state) {
    h_test *t = *state;
    char dir[4200], cmd[32768], bindir[4096];
    int rc;
    snprintf(dir, sizeof dir, "%s/docker", t->dir);
    init(t, "docker", dir, NULL);
    snprintf(bindir, sizeof bindir, "%s", h_bin());
    char *slash = strrchr(bindir, '/');
    assert_non_null(slash);
    *slash = '\0';
    snprintf(cmd, sizeof cmd,
             "'%s/scripts/dist.sh' --no-gpu '%s' '%s' >/dev/null && /usr/bin/python3 "
             "'%s/tests/integration/check_init.py' docker '%s' \"$(ls "
             "'%s'/shimmy-*-linux-x86_64.tar.gz)\"",
             h_source_dir(), bindir, dir, h_source_dir(), dir, dir);
    char *out = run_sh(t, cmd, &rc);
    if (rc != 0)
        fprintf(stderr, "check_init.py docker: %s\n", out);
    free(out); /* before the assertion: a failure returns from the test */
    assert_int_equal(rc, 0);
    /* a Dockerfile missing a library's package is caught */
    snprintf(cmd, sizeof cmd,
             "sed -i 's| libmicrohttpd12||' '%s/Dockerfile' && /usr/bin/python3 "
             "'%s/tests/integration/check_init.py' docker '%s' \"$(ls "
             "'%s'/shimmy-*-linux-x86_64.tar.gz)\"",
             dir, h_source_dir(), dir, dir);
    out = run_sh(t, cmd, &rc);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "libmicrohttpd12"));
    free(out);
    h_pass(t);
}

static void test_unknown_target(void **state) {
    h_test *t = *state;
    const char *args[] = {"init", "nomad", NULL};
    char *out = NULL;
    assert_int_equal(h_run(t, args, 10000, &out), 2);
    assert_non_null(strstr(out, "unknown target 'nomad': systemd, docker, compose or kubernetes"));
    free(out);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_systemd, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_yaml, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_docker, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_target, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
