/* engine/child: the engine process of one model (ADR 0005). */
#ifndef SHIMMY_ENGINE_CHILD_H
#define SHIMMY_ENGINE_CHILD_H

/* Runs the engine for the model the server names over the channel on fd (`shimmy __engine FD
 * [CPU_VARIANT]`, started by remote.c), until the server closes it. cpu_variant: the CPU module
 * the server learnt is this machine's best ("cpu-haswell", loaded without scoring the others:
 * gpu_cpu_variant_use), NULL = score them. Returns only on a start-up failure. */
int engine_child_main(int fd, const char *cpu_variant);

#endif
