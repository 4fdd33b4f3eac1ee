/* gguf_split_gen: splits a GGUF model into N parts the way llama.cpp's gguf-split does
 * (OUT-00001-of-0000N.gguf ...: split.no, split.count, split.tensors.count in every part, all
 * other metadata in the first), for tests of split-model discovery and loading.
 *
 *   gguf_split_gen MODEL.gguf OUT_PREFIX N
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "gguf.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: gguf_split_gen MODEL.gguf OUT_PREFIX N\n");
        return 2;
    }
    int parts = (int)strtol(argv[3], NULL, 10);
    struct ggml_context *src_ctx = NULL;
    struct gguf_init_params p = {.no_alloc = false, .ctx = &src_ctx};
    struct gguf_context *src = gguf_init_from_file(argv[1], p);
    if (src == NULL || parts < 1) {
        fprintf(stderr, "gguf_split_gen: cannot read %s\n", argv[1]);
        return 1;
    }
    int64_t n = gguf_get_n_tensors(src);
    int rc = 0;
    for (int k = 0; k < parts && rc == 0; k++) {
        struct gguf_context *g = gguf_init_empty();
        if (k == 0)
            gguf_set_kv(g, src);
        gguf_set_val_u16(g, "split.no", (uint16_t)k);
        gguf_set_val_u16(g, "split.count", (uint16_t)parts);
        gguf_set_val_i32(g, "split.tensors.count", (int32_t)n);
        for (int64_t i = k * n / parts; i < (k + 1) * n / parts; i++)
            gguf_add_tensor(g, ggml_get_tensor(src_ctx, gguf_get_tensor_name(src, i)));
        char out[4096];
        snprintf(out, sizeof out, "%s-%05d-of-%05d.gguf", argv[2], k + 1, parts);
        if (!gguf_write_to_file(g, out, false)) {
            fprintf(stderr, "gguf_split_gen: cannot write %s\n", out);
            rc = 1;
        }
        gguf_free(g);
    }
    gguf_free(src);
    ggml_free(src_ctx);
    return rc;
}
