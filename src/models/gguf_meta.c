/* models/gguf_meta: reads a GGUF file's header, key-value metadata and tensor table through
 * ggml's gguf API with no_alloc (weights are never read). The header (magic, version) is checked
 * here first so that the common bad inputs get a precise reason and gguf prints nothing. */
#include "models/gguf_meta.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "ggml.h"
#include "gguf.h"

/* llama.cpp's enum llama_ftype (llama.h) → the names its tools print; gaps are removed types. */
static const char *const ftype_names[] = {
    [0] = "F32",      [1] = "F16",      [2] = "Q4_0",       [3] = "Q4_1",    [7] = "Q8_0",
    [8] = "Q5_0",     [9] = "Q5_1",     [10] = "Q2_K",      [11] = "Q3_K_S", [12] = "Q3_K_M",
    [13] = "Q3_K_L",  [14] = "Q4_K_S",  [15] = "Q4_K_M",    [16] = "Q5_K_S", [17] = "Q5_K_M",
    [18] = "Q6_K",    [19] = "IQ2_XXS", [20] = "IQ2_XS",    [21] = "Q2_K_S", [22] = "IQ3_XS",
    [23] = "IQ3_XXS", [24] = "IQ1_S",   [25] = "IQ4_NL",    [26] = "IQ3_S",  [27] = "IQ3_M",
    [28] = "IQ2_S",   [29] = "IQ2_M",   [30] = "IQ4_XS",    [31] = "IQ1_M",  [32] = "BF16",
    [36] = "TQ1_0",   [37] = "TQ2_0",   [38] = "MXFP4_MOE", [39] = "NVFP4",  [40] = "Q1_0",
    [41] = "Q2_0",
};
#define FTYPE_GUESSED 1024 /* LLAMA_FTYPE_GUESSED: a flag some writers OR into the value */

/* ---- the header, checked by hand ---- */

static shimmy_err check_header(const char *path, uint64_t *size, uint32_t *version, char *err,
                               size_t errlen) {
    struct stat st;
    if (stat(path, &st) != 0)
        return err_set(err, errlen, ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return err_set(err, errlen, ERR_IO, "%s: %s", path, strerror(EISDIR));
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return err_set(err, errlen, ERR_IO, "%s: %s", path, strerror(errno));
    unsigned char h[8];
    size_t n = fread(h, 1, sizeof h, f);
    int read_errno = ferror(f) ? errno : 0;
    fclose(f);
    if (read_errno != 0)
        return err_set(err, errlen, ERR_IO, "%s: %s", path, strerror(read_errno));
    if (n < 4 || memcmp(h, "GGUF", 4) != 0)
        return err_set(err, errlen, ERR_MODEL_LOAD, "%s: not a GGUF file", path);
    if (n < 8)
        return err_set(err, errlen, ERR_MODEL_LOAD, "%s: truncated GGUF header", path);
    uint32_t v = (uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24;
    if (v == 1)
        return err_set(err, errlen, ERR_MODEL_LOAD, "%s: GGUF v1 is obsolete and not supported",
                       path);
    if (v != 2 && v != 3) {
        if ((v & 0xffff) == 0)
            return err_set(err, errlen, ERR_MODEL_LOAD,
                           "%s: big-endian GGUF files are not supported", path);
        if (v > 255)
            return err_set(err, errlen, ERR_MODEL_LOAD, "%s: corrupt GGUF header (version %u)",
                           path, v);
        return err_set(err, errlen, ERR_MODEL_LOAD, "%s: unsupported GGUF version %u", path, v);
    }
    *size = (uint64_t)st.st_size;
    *version = v;
    return SHIMMY_OK;
}

/* ---- key-value lookups that tolerate any integer type ---- */

static bool kv_uint(const struct gguf_context *g, const char *key, uint64_t *out) {
    int64_t id = gguf_find_key(g, key);
    if (id < 0)
        return false;
    int64_t v;
    switch (gguf_get_kv_type(g, id)) {
    case GGUF_TYPE_UINT8:
        *out = gguf_get_val_u8(g, id);
        return true;
    case GGUF_TYPE_UINT16:
        *out = gguf_get_val_u16(g, id);
        return true;
    case GGUF_TYPE_UINT32:
        *out = gguf_get_val_u32(g, id);
        return true;
    case GGUF_TYPE_UINT64:
        *out = gguf_get_val_u64(g, id);
        return true;
    case GGUF_TYPE_INT8:
        v = gguf_get_val_i8(g, id);
        break;
    case GGUF_TYPE_INT16:
        v = gguf_get_val_i16(g, id);
        break;
    case GGUF_TYPE_INT32:
        v = gguf_get_val_i32(g, id);
        break;
    case GGUF_TYPE_INT64:
        v = gguf_get_val_i64(g, id);
        break;
    default:
        return false;
    }
    if (v < 0)
        return false;
    *out = (uint64_t)v;
    return true;
}

static uint32_t kv_u32(const struct gguf_context *g, const char *key) {
    uint64_t v = 0;
    if (!kv_uint(g, key, &v))
        return 0;
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static void kv_str(const struct gguf_context *g, const char *key, char *out, size_t outlen) {
    out[0] = '\0';
    int64_t id = gguf_find_key(g, key);
    if (id >= 0 && gguf_get_kv_type(g, id) == GGUF_TYPE_STRING)
        snprintf(out, outlen, "%s", gguf_get_val_str(g, id));
}

static uint32_t kv_arch_u32(const struct gguf_context *g, const char *arch, const char *suffix) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return kv_u32(g, key);
}

/* ---- tensors ---- */

static uint64_t tensor_elements(const struct gguf_context *g, int64_t i) {
    const int64_t *ne = gguf_get_tensor_ne(g, i);
    uint64_t n = 1;
    for (int d = 0; d < GGML_MAX_DIMS; d++)
        n *= (uint64_t)(ne[d] > 0 ? ne[d] : 0);
    return n;
}

static bool tensor_is_matrix(const struct gguf_context *g, int64_t i) {
    const int64_t *ne = gguf_get_tensor_ne(g, i);
    return ne[1] > 1;
}

/* The ggml type holding the most elements among 2-D+ tensors (1-D norms are F32 in every
 * quantization), e.g. "Q4_K". */
static void infer_quant(const struct gguf_context *g, char *out, size_t outlen) {
    uint64_t by_type[GGML_TYPE_COUNT] = {0};
    int64_t n = gguf_get_n_tensors(g);
    for (int pass = 0; pass < 2; pass++) {
        for (int64_t i = 0; i < n; i++) {
            enum ggml_type t = gguf_get_tensor_type(g, i);
            if ((int)t >= 0 && t < GGML_TYPE_COUNT && (pass == 1 || tensor_is_matrix(g, i)))
                by_type[t] += tensor_elements(g, i);
        }
        int best = -1;
        for (int t = 0; t < GGML_TYPE_COUNT; t++)
            if (by_type[t] > 0 && (best < 0 || by_type[t] > by_type[best]))
                best = t;
        if (best >= 0) {
            snprintf(out, outlen, "%s", ggml_type_name((enum ggml_type)best));
            for (char *p = out; *p; p++)
                if (*p >= 'a' && *p <= 'z')
                    *p = (char)(*p - 'a' + 'A');
            return;
        }
    }
    snprintf(out, outlen, "unknown");
}

static void read_quant(const struct gguf_context *g, char *out, size_t outlen) {
    uint64_t ft = 0;
    if (kv_uint(g, "general.file_type", &ft)) {
        ft &= ~(uint64_t)FTYPE_GUESSED;
        if (ft < sizeof ftype_names / sizeof ftype_names[0] && ftype_names[ft] != NULL) {
            snprintf(out, outlen, "%s", ftype_names[ft]);
            return;
        }
    }
    infer_quant(g, out, outlen);
}

/* Tensor data must lie inside the file: gguf with no_alloc never reads it, so a file cut in the
 * middle of the weights would otherwise look fine. */
static shimmy_err check_data_fits(const struct gguf_context *g, uint64_t file_size,
                                  const char *path, char *err, size_t errlen) {
    uint64_t base = gguf_get_data_offset(g);
    uint64_t end = base;
    for (int64_t i = 0; i < gguf_get_n_tensors(g); i++) {
        uint64_t e = base + gguf_get_tensor_offset(g, i) + gguf_get_tensor_size(g, i);
        if (e > end)
            end = e;
    }
    if (end > file_size)
        return err_set(err, errlen, ERR_MODEL_LOAD,
                       "%s: truncated GGUF file (%llu bytes, tensor data needs %llu)", path,
                       (unsigned long long)file_size, (unsigned long long)end);
    return SHIMMY_OK;
}

static bool kv_bool(const struct gguf_context *g, const char *key, bool *out) {
    int64_t id = gguf_find_key(g, key);
    if (id < 0 || gguf_get_kv_type(g, id) != GGUF_TYPE_BOOL)
        return false;
    *out = gguf_get_val_bool(g, id);
    return true;
}

/* The projector keys of llama.cpp's tools/mtmd/clip-impl.h (KEY_HAS_VISION_ENC, KEY_PROJ_TYPE,
 * KEY_PROJ_DIM...): what clip.cpp itself reads to decide the modalities. */
static void read_projector(const struct gguf_context *g, gguf_meta *m) {
    if (!kv_bool(g, "clip.has_vision_encoder", &m->has_vision))
        m->has_vision = gguf_find_key(g, "clip.vision.image_size") >= 0;
    kv_bool(g, "clip.has_audio_encoder", &m->has_audio);
    kv_str(g, "clip.projector_type", m->proj_type, sizeof m->proj_type);
    if (m->proj_type[0] == '\0')
        kv_str(g, "clip.vision.projector_type", m->proj_type, sizeof m->proj_type);
    if (m->proj_type[0] == '\0')
        kv_str(g, "clip.audio.projector_type", m->proj_type, sizeof m->proj_type);
    m->proj_dim = kv_u32(g, "clip.vision.projection_dim");
    if (m->proj_dim == 0)
        m->proj_dim = kv_u32(g, "clip.audio.projection_dim");
}

static void fill_meta(const struct gguf_context *g, gguf_meta *m) {
    kv_str(g, "general.architecture", m->arch, sizeof m->arch);
    kv_str(g, "general.type", m->type, sizeof m->type);
    kv_str(g, "general.name", m->name, sizeof m->name);
    read_quant(g, m->quant, sizeof m->quant);
    m->n_tensors = gguf_get_n_tensors(g);
    for (int64_t i = 0; i < m->n_tensors; i++)
        m->n_params += tensor_elements(g, i);
    if (m->arch[0] != '\0') {
        m->n_ctx_train = kv_arch_u32(g, m->arch, "context_length");
        m->n_layer = kv_arch_u32(g, m->arch, "block_count");
        m->n_embd = kv_arch_u32(g, m->arch, "embedding_length");
    }
    m->has_chat_template = gguf_find_key(g, "tokenizer.chat_template") >= 0;
    kv_str(g, "general.base_model.0.name", m->base_name, sizeof m->base_name);
    int64_t id = gguf_find_key(g, "adapter.lora.alpha");
    if (id >= 0 && gguf_get_kv_type(g, id) == GGUF_TYPE_FLOAT32)
        m->lora_alpha = gguf_get_val_f32(g, id);
    m->split_count = kv_u32(g, "split.count");
    m->split_no = kv_u32(g, "split.no");
    read_projector(g, m);
    m->is_embedding = strcmp(m->arch, "bert") == 0 || strcmp(m->arch, "nomic-bert") == 0 ||
                      strcmp(m->arch, "jina-bert-v2") == 0 || strcmp(m->arch, "t5encoder") == 0;
    m->is_reranker = m->arch[0] != '\0' && kv_arch_u32(g, m->arch, "pooling_type") == 4;
}

shimmy_err gguf_meta_read(const char *path, gguf_meta *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    uint64_t size = 0;
    uint32_t version = 0;
    shimmy_err rc = check_header(path, &size, &version, err, errlen);
    if (rc != SHIMMY_OK)
        return rc;
    struct gguf_init_params params = {.no_alloc = true, .ctx = NULL};
    struct gguf_context *g = gguf_init_from_file(path, params);
    if (g == NULL)
        return err_set(err, errlen, ERR_MODEL_LOAD, "%s: corrupt or truncated GGUF file", path);
    rc = check_data_fits(g, size, path, err, errlen);
    if (rc == SHIMMY_OK) {
        out->version = version;
        fill_meta(g, out);
    }
    gguf_free(g);
    return rc;
}

bool gguf_meta_is_model(const gguf_meta *m, char *why, size_t whylen) {
    const char *reason = NULL;
    if (strcmp(m->type, "adapter") == 0)
        reason = "a LoRA adapter (general.type = adapter), not a model";
    else if (gguf_meta_is_projector(m))
        reason = "a multimodal projector (mmproj), not a model";
    else if (m->n_tensors == 0)
        reason = "vocab-only (no tensors), not a model";
    else if (m->arch[0] == '\0')
        reason = "no general.architecture";
    if (reason == NULL)
        return true;
    if (why != NULL && whylen > 0)
        snprintf(why, whylen, "%s", reason);
    return false;
}

bool gguf_meta_is_projector(const gguf_meta *m) {
    return strcmp(m->type, "mmproj") == 0 || strcmp(m->arch, "clip") == 0;
}

bool gguf_meta_read_str(const char *path, const char *key, char **out) {
    *out = NULL;
    struct gguf_init_params params = {.no_alloc = true, .ctx = NULL};
    uint64_t size = 0;
    uint32_t version = 0;
    if (check_header(path, &size, &version, NULL, 0) != SHIMMY_OK)
        return false;
    struct gguf_context *g = gguf_init_from_file(path, params);
    if (g == NULL)
        return false;
    int64_t id = gguf_find_key(g, key);
    if (id >= 0 && gguf_get_kv_type(g, id) == GGUF_TYPE_STRING)
        *out = strdup(gguf_get_val_str(g, id));
    gguf_free(g);
    return *out != NULL;
}
