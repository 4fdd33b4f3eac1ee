/* engine/child: the engine process of one model (ADR 0005). */
#ifndef SHIMMY_ENGINE_CHILD_H
#define SHIMMY_ENGINE_CHILD_H

/* Runs the engine for the model the server names over the channel on fd (`shimmy __engine FD`,
 * started by remote.c), until the server closes it. Returns only on a start-up failure. */
int engine_child_main(int fd);

#endif
