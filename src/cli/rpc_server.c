/* cli/rpc_server: `shimmy rpc-server`, llama.cpp's RPC server (ggml_backend_rpc_start_server of
 * the RPC module, libggml-rpc.so) started from shimmy's own binary and library folder, so that a
 * second machine needs nothing but shimmy to lend its devices to `shimmy serve --rpc`. The
 * protocol has no authentication and no encryption: anyone who reaches the port can run graphs
 * and read or write the server's memory buffers. So the start-up says so, and a non-loopback
 * address is refused unless --i-know-this-is-unauthenticated is given (docs/DISTRIBUTED.md). */
#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/engine.h"
#include "gpu/gpu.h"

#define RPC_DEFAULT_BIND "127.0.0.1:50052" /* llama.cpp rpc-server's default */

static const char rpc_help[] =
    "usage: shimmy rpc-server [--bind HOST:PORT] [--threads N] [--cache DIR] [--device NAME]\n"
    "\n"
    "Lends this machine's devices to `shimmy serve --rpc HOST:PORT` on another machine, with\n"
    "llama.cpp's RPC server (the RPC module, libggml-rpc.so: make deps RPC=1).\n"
    "\n"
    "  --bind HOST:PORT   address to listen on (default " RPC_DEFAULT_BIND ")\n"
    "  --threads N        CPU threads for the CPU device (default: number of cores)\n"
    "  --cache DIR        keep tensors sent by clients in DIR (faster reloads of a model)\n"
    "  --device NAME      lend only this device (Vulkan0, CUDA0, CPU ...; default: every GPU, or\n"
    "                     the CPU when there is none)\n"
    "  --i-know-this-is-unauthenticated\n"
    "                     allow a non-loopback address: the protocol has no authentication\n"
    "                     and no encryption, anyone who reaches the port controls the server\n"
    "  --help             this help\n";

enum { OPT_BIND = 0x5200, OPT_THREADS, OPT_CACHE, OPT_DEVICE, OPT_UNAUTH };

typedef struct rpc_args {
    const char *bind;
    long threads;
    const char *cache;
    const char *device;
    bool unauth_ok;
} rpc_args;

static int parse_args(int argc, char **argv, rpc_args *a) {
    static const struct option opts[] = {
        {"bind", required_argument, NULL, OPT_BIND},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"cache", required_argument, NULL, OPT_CACHE},
        {"device", required_argument, NULL, OPT_DEVICE},
        {"i-know-this-is-unauthenticated", no_argument, NULL, OPT_UNAUTH},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *a = (rpc_args){.bind = RPC_DEFAULT_BIND, .threads = 0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_BIND:
            a->bind = optarg;
            break;
        case OPT_THREADS:
            if (cli_parse_int(optarg, 1, 1024, &a->threads) != 0)
                return cli_usage_error("rpc-server", "--threads wants 1 to 1024, not '%s'", optarg);
            break;
        case OPT_CACHE:
            a->cache = optarg;
            break;
        case OPT_DEVICE:
            a->device = optarg;
            break;
        case OPT_UNAUTH:
            a->unauth_ok = true;
            break;
        case 'h':
            fputs(rpc_help, stdout);
            return 1;
        default:
            return cli_usage_error("rpc-server", "unknown option");
        }
    }
    if (optind < argc)
        return cli_usage_error("rpc-server", "unexpected argument '%s'", argv[optind]);
    return 0;
}

/* Splits "HOST:PORT" (HOST may not be empty; PORT 1-65535). Returns 0 or -1. */
static int split_bind(const char *bind, char *host, size_t len, long *port) {
    const char *colon = strrchr(bind, ':');
    if (colon == NULL || colon == bind || (size_t)(colon - bind) >= len)
        return -1;
    memcpy(host, bind, (size_t)(colon - bind));
    host[colon - bind] = '\0';
    return cli_parse_int(colon + 1, 1, 65535, port);
}

static bool is_loopback(const char *host) {
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

int cli_rpc_server(int argc, char **argv) {
    rpc_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    char host[256];
    long port;
    if (split_bind(a.bind, host, sizeof host, &port) != 0)
        return cli_usage_error("rpc-server", "--bind wants HOST:PORT, not '%s'", a.bind);
    bool loopback = is_loopback(host);
    if (!loopback && !a.unauth_ok) {
        fprintf(stderr,
                "shimmy rpc-server: refusing to listen on %s: llama.cpp's RPC protocol has "
                "no authentication and no encryption, so anyone who reaches that address could "
                "run code on this machine's devices and read its buffers. Use it only on a "
                "private network you trust, and add --i-know-this-is-unauthenticated.\n",
                a.bind);
        return 2;
    }
    fprintf(stderr,
            "shimmy rpc-server: WARNING: the RPC protocol is unauthenticated and "
            "unencrypted: never expose %s to a network you do not trust%s\n",
            a.bind, loopback ? " (loopback only here)" : "");
    char err[8192];
    if (engine_global_init(NULL, err, sizeof err) != SHIMMY_OK ||
        gpu_rpc_serve(a.bind, a.cache, (size_t)a.threads, a.device, err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr, "shimmy rpc-server: %s\n", err);
        return 1;
    }
    return 0;
}
