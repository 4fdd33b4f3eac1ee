/* engine/start: engine_start (engine.h), the start-up of a command that loads models: the
 * backend modules, then the check of the GPU choices (a named backend without a device is
 * refused before the server reports ready). With engine processes both happen in the warm
 * engine process (remote.c asks it, child.c answers with engine_check_here), so the server
 * process loads no backend module at all (docs/adr/0005); in-process, here. */
#include <stdio.h>
#include <string.h>

#include "core/limits.h"
#include "engine/ops.h"
#include "gpu/gpu.h"

/* The devices a named backend has, or the reason it has none (per model: "model 'x': "). */
static shimmy_err check_backends(const engine_options *eng, bool remote_rpc, size_t *idx, size_t *n,
                                 char *err, size_t errlen) {
    if (!(remote_rpc && eng->gpu_backend == GPU_RPC) &&
        gpu_select(eng->gpu_backend, idx, LIM_GPU_DEVICES, n, err, errlen) != SHIMMY_OK)
        return ERR_MODEL_LOAD;
    for (int i = 0; i < eng->n_overrides; i++) {
        size_t m_idx[LIM_GPU_DEVICES], m_n;
        const model_gpu_override *v = &eng->overrides[i];
        char why[8192];
        if (v->set_backend && !(remote_rpc && v->backend == GPU_RPC) &&
            gpu_select(v->backend, m_idx, LIM_GPU_DEVICES, &m_n, why, sizeof why) != SHIMMY_OK)
            return err_set(err, errlen, ERR_MODEL_LOAD, "model '%s': %s", v->model, why);
    }
    if (eng->single_gpu && !(remote_rpc && eng->gpu_backend == GPU_RPC) &&
        (size_t)eng->main_gpu >= *n)
        return err_set(err, errlen, ERR_USAGE, "--main-gpu %d: --gpu-backend %s has %zu device%s",
                       eng->main_gpu, gpu_backend_name(eng->gpu_backend), *n, *n == 1 ? "" : "s");
    return SHIMMY_OK;
}

/* What the choice uses, for the start-up log. */
static void describe_choice(const engine_options *eng, bool remote_rpc, const size_t *idx, size_t n,
                            char *note, size_t notelen) {
    if (remote_rpc) {
        snprintf(note, notelen,
                 "RPC servers %s reached; each model's engine process adds them as devices "
                 "(--gpu-backend %s)",
                 eng->rpc_servers, gpu_backend_name(eng->gpu_backend));
        return;
    }
    if (eng->gpu_backend == GPU_AUTO) {
        gpu_auto_summary(note, notelen);
        return;
    }
    size_t off = (size_t)snprintf(note, notelen, "--gpu-backend %s uses",
                                  gpu_backend_name(eng->gpu_backend));
    for (size_t k = 0; k < n && off < notelen; k++) {
        gpu_device d;
        gpu_device_get(idx[k], &d);
        off += (size_t)snprintf(note + off, notelen - off, "%s %s (%s)", k ? "," : "", d.name,
                                d.description);
    }
    if (n == 0 && off < notelen)
        snprintf(note + off, notelen - off, " no device: everything on the CPU");
}

shimmy_err engine_check_here(const engine_options *eng, char *note, size_t notelen, char *err,
                             size_t errlen) {
    note[0] = '\0';
    /* With engine processes, each model's process connects to the RPC servers itself (a server
     * serves one client at a time): here they are only reached, and RPC choices checked there. */
    bool remote_rpc = eng->isolate && eng->rpc_servers != NULL;
    shimmy_err rc = eng->rpc_servers == NULL ? SHIMMY_OK
                    : remote_rpc             ? gpu_check_rpc(eng->rpc_servers, err, errlen)
                                             : gpu_add_rpc(eng->rpc_servers, false, err, errlen);
    if (rc != SHIMMY_OK)
        return rc;
    size_t idx[LIM_GPU_DEVICES], n = 0;
    rc = check_backends(eng, remote_rpc, idx, &n, err, errlen);
    if (rc == SHIMMY_OK)
        describe_choice(eng, remote_rpc, idx, n, note, notelen);
    return rc;
}

shimmy_err engine_start(const engine_options *o, char *note, size_t notelen, char *err,
                        size_t errlen) {
    shimmy_err rc;
    if (o->isolate && remote_start_check(o, &rc, note, notelen, err, errlen))
        return rc;
    rc = engine_global_init(NULL, err, errlen);
    return rc != SHIMMY_OK ? rc : engine_check_here(o, note, notelen, err, errlen);
}
