/* fuzz_gguf: GGUF headers and metadata through gguf_meta_read and gguf_meta_read_str
 * (models/gguf_meta.h). They read a path, so each input is written to one temporary file made
 * once per process (mkstemp in $TMPDIR or /tmp) and truncated to the input's size. ggml's own
 * gguf parser runs uninstrumented; shimmy's checks around it are what is fuzzed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/gguf_meta.h"

static char path[4096];
static int fd = -1;

static void cleanup(void) {
    if (fd >= 0)
        unlink(path);
}

static void open_temp(void) {
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/shimmy-fuzz-gguf-XXXXXX", dir && *dir ? dir : "/tmp");
    fd = mkstemp(path);
    if (fd < 0) {
        perror("fuzz_gguf: mkstemp");
        abort();
    }
    atexit(cleanup);
}

static void write_input(const uint8_t *data, size_t size) {
    if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0)
        abort();
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0)
            abort();
        done += (size_t)w;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fd < 0)
        open_temp();
    write_input(data, size);
    gguf_meta m;
    char err[512], why[128];
    if (gguf_meta_read(path, &m, err, sizeof err) == SHIMMY_OK) {
        (void)gguf_meta_is_model(&m, why, sizeof why);
        char *tmpl = NULL;
        if (gguf_meta_read_str(path, "general.architecture", &tmpl))
            free(tmpl);
    }
    return 0;
}
