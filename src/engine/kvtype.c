/* engine/kvtype: the names of the KV cache element types and flash-attention modes (engine.h),
 * as llama-server spells them (common/arg.cpp's kv_cache_types). llama_backend.c maps them to
 * ggml types; nothing here includes a llama.cpp header. */
#include <string.h>
#include <strings.h>

#include "engine/engine.h"

static const char *const kv_names[KV_TYPE__COUNT] = {
    [KV_TYPE_DEFAULT] = "f16", [KV_TYPE_F32] = "f32",       [KV_TYPE_F16] = "f16",
    [KV_TYPE_BF16] = "bf16",   [KV_TYPE_Q8_0] = "q8_0",     [KV_TYPE_Q4_0] = "q4_0",
    [KV_TYPE_Q4_1] = "q4_1",   [KV_TYPE_IQ4_NL] = "iq4_nl", [KV_TYPE_Q5_0] = "q5_0",
    [KV_TYPE_Q5_1] = "q5_1",
};

int engine_kv_type_parse(const char *s, engine_kv_type *out) {
    for (int t = KV_TYPE_F32; s != NULL && t < KV_TYPE__COUNT; t++)
        if (strcasecmp(s, kv_names[t]) == 0) {
            *out = (engine_kv_type)t;
            return 0;
        }
    return -1;
}

const char *engine_kv_type_name(engine_kv_type t) {
    return t >= 0 && t < KV_TYPE__COUNT ? kv_names[t] : "?";
}

bool engine_kv_type_quantized(engine_kv_type t) {
    return t >= KV_TYPE_Q8_0 && t < KV_TYPE__COUNT;
}

const char *engine_kv_type_list(void) {
    return "f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1";
}

static const struct {
    const char *name;
    engine_flash_attn v;
} fa_names[] = {
    {"auto", FLASH_ATTN_AUTO}, {"on", FLASH_ATTN_ON},      {"off", FLASH_ATTN_OFF},
    {"1", FLASH_ATTN_ON},      {"0", FLASH_ATTN_OFF},      {"true", FLASH_ATTN_ON},
    {"false", FLASH_ATTN_OFF}, {"enabled", FLASH_ATTN_ON}, {"disabled", FLASH_ATTN_OFF},
};

int engine_flash_attn_parse(const char *s, engine_flash_attn *out) {
    for (size_t i = 0; s != NULL && i < sizeof fa_names / sizeof fa_names[0]; i++)
        if (strcasecmp(s, fa_names[i].name) == 0) {
            *out = fa_names[i].v;
            return 0;
        }
    return -1;
}

const char *engine_flash_attn_name(engine_flash_attn f) {
    return f == FLASH_ATTN_ON ? "on" : f == FLASH_ATTN_OFF ? "off" : "auto";
}
