/* spawnwrap.c: an LD_PRELOAD shim for measuring an engine process under callgrind
 * (token-cost.py --tool callgrind builds and uses it). The server starts its engine processes
 * with posix_spawn("/proc/self/exe", ...), which valgrind cannot follow (under valgrind that
 * path is the tool's own executable). With SPAWNWRAP_EXE (shimmy's path) and SPAWNWRAP_OUT (a
 * callgrind output file pattern) set, such a spawn becomes
 *   valgrind --tool=callgrind --callgrind-out-file=$SPAWNWRAP_OUT $SPAWNWRAP_EXE ARGS...
 * with LD_PRELOAD taken out of its environment. Every other spawn is passed through.
 * Measurement only: not part of shimmy. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                        const posix_spawnattr_t *, char *const[], char *const[]);

int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
    static spawn_fn real;
    if (real == NULL)
        real = (spawn_fn)dlsym(RTLD_NEXT, "posix_spawn");
    const char *exe = getenv("SPAWNWRAP_EXE"), *out = getenv("SPAWNWRAP_OUT");
    if (exe == NULL || out == NULL || strcmp(path, "/proc/self/exe") != 0)
        return real(pid, path, fa, attr, argv, envp);
    static char outarg[4096];
    snprintf(outarg, sizeof outarg, "--callgrind-out-file=%s", out);
    char *nargv[64], *nenv[512];
    int n = 0, k = 0;
    nargv[n++] = "valgrind";
    nargv[n++] = "--tool=callgrind";
    nargv[n++] = outarg;
    nargv[n++] = (char *)exe;
    for (int i = 1; argv[i] != NULL && n < 63; i++)
        nargv[n++] = argv[i];
    nargv[n] = NULL;
    for (int i = 0; envp[i] != NULL && k < 511; i++)
        if (strncmp(envp[i], "LD_PRELOAD=", 11) != 0)
            nenv[k++] = envp[i];
    nenv[k] = NULL;
    return posix_spawnp(pid, "valgrind", fa, attr, nargv, nenv);
}
