/* cli/init: `shimmy init TARGET`: writes ready-to-use deployment files for systemd, Docker,
 * Docker Compose (with a GPU variant) and Kubernetes into a folder. Each target is a row of
 * (file name, template); templates hold {{NAME}} placeholders filled from the options. Existing
 * files are never overwritten without --force. The files are checked by tests/integration/
 * it_init.c (systemd-analyze verify, a YAML parser, the Dockerfile against scripts/dist.sh's
 * tarball). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/limits.h"

#ifndef SHIMMY_VERSION
#define SHIMMY_VERSION "0.0.0"
#endif

static const char init_help[] =
    "usage: shimmy init systemd|docker|compose|kubernetes [options]\n"
    "\n"
    "Writes deployment files into a folder (docs/DEPLOY.md):\n"
    "  systemd     shimmy.service: a hardened unit (dedicated user, ProtectSystem=strict,\n"
    "              NoNewPrivileges, read-only model store, SIGHUP reload, SIGTERM drain)\n"
    "  docker      Dockerfile: from the release tarball (scripts/dist.sh), non-root, healthcheck\n"
    "  compose     compose.yaml and compose.gpu.yaml (NVIDIA GPUs)\n"
    "  kubernetes  shimmy.k8s.yaml: Deployment + Service, probes on /health\n"
    "\n"
    "  -o, --output DIR     folder to write into (default: .)\n"
    "  --models DIR         model store (default /var/lib/shimmy/models; /models in containers)\n"
    "  --port N             port to serve on (default 11435)\n"
    "  --bin PATH           the shimmy binary for systemd (default /usr/local/bin/shimmy)\n"
    "  --force              overwrite existing files\n"
    "  --help               this help\n";

typedef struct init_opts {
    const char *out;
    const char *models; /* NULL = the target's default */
    const char *bin;
    char port[8];
    bool force;
} init_opts;

/* ---- templates ---- */

static const char systemd_unit[] =
    "# shimmy.service: written by `shimmy init systemd` (shimmy {{VERSION}}).\n"
    "# Install: useradd --system --home /var/lib/shimmy --shell /usr/sbin/nologin shimmy\n"
    "#          cp shimmy.service /etc/systemd/system/ && systemctl daemon-reload\n"
    "#          systemctl enable --now shimmy\n"
    "# Reload models and keys: systemctl reload shimmy (SIGHUP). Stop: SIGTERM drains requests.\n"
    "[Unit]\n"
    "Description=shimmy local LLM server\n"
    "After=network-online.target\n"
    "Wants=network-online.target\n"
    "\n"
    "[Service]\n"
    "Type=simple\n"
    "User=shimmy\n"
    "Group=shimmy\n"
    "ExecStart={{BIN}} serve --bind 127.0.0.1:{{PORT}} --model-dirs {{MODELS}} --log-format json\n"
    "ExecReload=/bin/kill -HUP $MAINPID\n"
    "KillSignal=SIGTERM\n"
    "# --drain-timeout is 25 s: running answers finish before systemd's SIGKILL\n"
    "TimeoutStopSec=35\n"
    "Restart=on-failure\n"
    "RestartSec=2\n"
    "StateDirectory=shimmy\n"
    "WorkingDirectory=/var/lib/shimmy\n"
    "Environment=HOME=/var/lib/shimmy\n"
    "# hardening\n"
    "NoNewPrivileges=yes\n"
    "ProtectSystem=strict\n"
    "ProtectHome=yes\n"
    "ReadOnlyPaths={{MODELS}}\n"
    "PrivateTmp=yes\n"
    "ProtectKernelTunables=yes\n"
    "ProtectKernelModules=yes\n"
    "ProtectKernelLogs=yes\n"
    "ProtectControlGroups=yes\n"
    "ProtectClock=yes\n"
    "ProtectHostname=yes\n"
    "RestrictSUIDSGID=yes\n"
    "RestrictRealtime=yes\n"
    "RestrictNamespaces=yes\n"
    "LockPersonality=yes\n"
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n"
    "SystemCallArchitectures=native\n"
    "CapabilityBoundingSet=\n"
    "AmbientCapabilities=\n"
    "UMask=0077\n"
    "LimitNOFILE=4096\n"
    "# GPUs need their device nodes (/dev/nvidia*, /dev/dri): PrivateDevices stays off.\n"
    "\n"
    "[Install]\n"
    "WantedBy=multi-user.target\n";

static const char dockerfile[] =
    "# Dockerfile: written by `shimmy init docker` (shimmy {{VERSION}}).\n"
    "# Build from the release tarball (scripts/dist.sh writes it next to this file):\n"
    "#   docker build -t shimmy:{{VERSION}} .\n"
    "#   docker run -p 11435:11435 -v /path/to/models:/models:ro shimmy:{{VERSION}}\n"
    "FROM debian:12-slim\n"
    "ARG SHIMMY_DIST=shimmy-{{VERSION}}-linux-x86_64\n"
    "RUN apt-get update \\\n"
    "    && apt-get install -y --no-install-recommends libmicrohttpd12 libjansson4 libcurl4 \\\n"
    "       libedit2 libwslay1 libwebp7 libstdc++6 libgcc-s1 libgomp1 ca-certificates curl \\\n"
    "    && rm -rf /var/lib/apt/lists/*\n"
    "RUN useradd --system --uid 10001 --home-dir /var/lib/shimmy --create-home \\\n"
    "    --shell /usr/sbin/nologin shimmy\n"
    "# the tarball holds ${SHIMMY_DIST}/shimmy and ${SHIMMY_DIST}/lib/ (rpath $ORIGIN/lib)\n"
    "ADD ${SHIMMY_DIST}.tar.gz /opt/\n"
    "RUN ln -s /opt/${SHIMMY_DIST}/shimmy /usr/local/bin/shimmy\n"
    "USER shimmy\n"
    "WORKDIR /var/lib/shimmy\n"
    "VOLUME [\"{{MODELS}}\"]\n"
    "EXPOSE {{PORT}}\n"
    "HEALTHCHECK --interval=30s --timeout=3s --start-period=120s \\\n"
    "    CMD curl -fsS \"http://127.0.0.1:{{PORT}}/health?ready=1\" || exit 1\n"
    "STOPSIGNAL SIGTERM\n"
    "ENTRYPOINT [\"/usr/local/bin/shimmy\", \"serve\"]\n"
    "# Other containers reach it by name: allow that Host with --allowed-host; set a key to share "
    "it.\n"
    "CMD [\"--bind\", \"0.0.0.0:{{PORT}}\", \"--model-dirs\", \"{{MODELS}}\", \"--log-format\", "
    "\"json\"]\n";

static const char compose_yaml[] =
    "# compose.yaml: written by `shimmy init compose` (shimmy {{VERSION}}).\n"
    "# docker compose up -d   (GPU: docker compose -f compose.yaml -f compose.gpu.yaml up -d)\n"
    "services:\n"
    "  shimmy:\n"
    "    build: .\n"
    "    image: shimmy:{{VERSION}}\n"
    "    command: [\"--bind\", \"0.0.0.0:{{PORT}}\", \"--model-dirs\", \"{{MODELS}}\",\n"
    "              \"--allowed-host\", \"shimmy\", \"--api-key-file\", "
    "\"/run/secrets/shimmy_keys\",\n"
    "              \"--log-format\", \"json\"]\n"
    "    ports:\n"
    "      - \"127.0.0.1:{{PORT}}:{{PORT}}\"\n"
    "    volumes:\n"
    "      - ./models:{{MODELS}}:ro\n"
    "    secrets:\n"
    "      - shimmy_keys\n"
    "    restart: unless-stopped\n"
    "    stop_grace_period: 35s\n"
    "    healthcheck:\n"
    "      test: [\"CMD\", \"curl\", \"-fsS\", \"http://127.0.0.1:{{PORT}}/health?ready=1\"]\n"
    "      interval: 30s\n"
    "      timeout: 3s\n"
    "      start_period: 120s\n"
    "secrets:\n"
    "  shimmy_keys:\n"
    "    file: ./keys\n";

static const char compose_gpu_yaml[] =
    "# compose.gpu.yaml: written by `shimmy init compose` (shimmy {{VERSION}}): NVIDIA GPUs "
    "through\n"
    "# the NVIDIA Container Toolkit; the image needs the CUDA module (make deps GPU=cuda).\n"
    "services:\n"
    "  shimmy:\n"
    "    deploy:\n"
    "      resources:\n"
    "        reservations:\n"
    "          devices:\n"
    "            - driver: nvidia\n"
    "              count: all\n"
    "              capabilities: [gpu]\n";

static const char k8s_yaml[] =
    "# shimmy.k8s.yaml: written by `shimmy init kubernetes` (shimmy {{VERSION}}).\n"
    "# kubectl apply -f shimmy.k8s.yaml   (models on the PersistentVolumeClaim 'shimmy-models')\n"
    "apiVersion: apps/v1\n"
    "kind: Deployment\n"
    "metadata:\n"
    "  name: shimmy\n"
    "  labels:\n"
    "    app: shimmy\n"
    "spec:\n"
    "  replicas: 1\n"
    "  selector:\n"
    "    matchLabels:\n"
    "      app: shimmy\n"
    "  template:\n"
    "    metadata:\n"
    "      labels:\n"
    "        app: shimmy\n"
    "      annotations:\n"
    "        prometheus.io/scrape: \"true\"\n"
    "        prometheus.io/port: \"{{PORT}}\"\n"
    "        prometheus.io/path: /metrics\n"
    "    spec:\n"
    "      terminationGracePeriodSeconds: 35\n"
    "      securityContext:\n"
    "        runAsNonRoot: true\n"
    "        runAsUser: 10001\n"
    "        fsGroup: 10001\n"
    "      containers:\n"
    "        - name: shimmy\n"
    "          image: shimmy:{{VERSION}}\n"
    "          args: [\"--bind\", \"0.0.0.0:{{PORT}}\", \"--model-dirs\", \"{{MODELS}}\",\n"
    "                 \"--allowed-host\", \"shimmy\", \"--allowed-host\", \".svc.cluster.local\",\n"
    "                 \"--log-format\", \"json\"]\n"
    "          ports:\n"
    "            - name: http\n"
    "              containerPort: {{PORT}}\n"
    "          securityContext:\n"
    "            allowPrivilegeEscalation: false\n"
    "            readOnlyRootFilesystem: true\n"
    "            capabilities:\n"
    "              drop: [\"ALL\"]\n"
    "          startupProbe:\n"
    "            httpGet: {path: /health, port: http}\n"
    "            periodSeconds: 5\n"
    "            failureThreshold: 60\n"
    "          livenessProbe:\n"
    "            httpGet: {path: /health, port: http}\n"
    "            periodSeconds: 10\n"
    "          readinessProbe:\n"
    "            httpGet: {path: \"/health?ready=1\", port: http}\n"
    "            periodSeconds: 5\n"
    "          volumeMounts:\n"
    "            - name: models\n"
    "              mountPath: {{MODELS}}\n"
    "              readOnly: true\n"
    "            - name: tmp\n"
    "              mountPath: /tmp\n"
    "      volumes:\n"
    "        - name: models\n"
    "          persistentVolumeClaim:\n"
    "            claimName: shimmy-models\n"
    "        - name: tmp\n"
    "          emptyDir: {}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata:\n"
    "  name: shimmy\n"
    "spec:\n"
    "  selector:\n"
    "    app: shimmy\n"
    "  ports:\n"
    "    - name: http\n"
    "      port: {{PORT}}\n"
    "      targetPort: http\n";

typedef struct init_file {
    const char *name;
    const char *text;
} init_file;

typedef struct init_target {
    const char *name;
    const char *models; /* default model store */
    init_file files[2]; /* name NULL = none */
} init_target;

static const init_target targets[] = {
    {"systemd", "/var/lib/shimmy/models", {{"shimmy.service", systemd_unit}, {NULL, NULL}}},
    {"docker", "/models", {{"Dockerfile", dockerfile}, {NULL, NULL}}},
    {"compose",
     "/models",
     {{"compose.yaml", compose_yaml}, {"compose.gpu.yaml", compose_gpu_yaml}}},
    {"kubernetes", "/models", {{"shimmy.k8s.yaml", k8s_yaml}, {NULL, NULL}}},
};

/* ---- filling and writing ---- */

/* The value of placeholder name ("BIN"), or NULL. */
static const char *var(const init_opts *o, const char *models, const char *name, size_t n) {
    if (n == 3 && strncmp(name, "BIN", 3) == 0)
        return o->bin;
    if (n == 4 && strncmp(name, "PORT", 4) == 0)
        return o->port;
    if (n == 6 && strncmp(name, "MODELS", 6) == 0)
        return models;
    if (n == 7 && strncmp(name, "VERSION", 7) == 0)
        return SHIMMY_VERSION;
    return NULL;
}

/* text with its {{NAME}} placeholders filled, into out. */
static shimmy_err fill(const init_opts *o, const char *models, const char *text, buf *out) {
    shimmy_err e = SHIMMY_OK;
    for (const char *p = text; *p && e == SHIMMY_OK;) {
        const char *open = strstr(p, "{{");
        const char *close = open != NULL ? strstr(open, "}}") : NULL;
        const char *v = close != NULL ? var(o, models, open + 2, (size_t)(close - open - 2)) : NULL;
        if (v == NULL)
            return buf_puts(out, p);
        e = buf_append(out, p, (size_t)(open - p));
        if (e == SHIMMY_OK)
            e = buf_puts(out, v);
        p = close + 2;
    }
    return e;
}

static int write_one(const init_opts *o, const char *models, const init_file *f) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", o->out, f->name);
    if (!o->force && access(path, F_OK) == 0)
        return cli_usage_error("init", "%s exists: keep it, or overwrite it with --force", path);
    buf b;
    buf_init(&b, LIM_INIT_FILE_BYTES);
    shimmy_err e = fill(o, models, f->text, &b);
    FILE *fp = e == SHIMMY_OK ? fopen(path, "w") : NULL;
    bool ok = fp != NULL && fwrite(b.data, 1, b.len, fp) == b.len;
    if (fp != NULL && fclose(fp) != 0)
        ok = false;
    buf_free(&b);
    if (!ok) {
        fprintf(stderr, "shimmy init: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    printf("wrote %s\n", path);
    return 0;
}

static int parse_args(int argc, char **argv, init_opts *o) {
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                             {"models", required_argument, NULL, 'm'},
                                             {"port", required_argument, NULL, 'p'},
                                             {"bin", required_argument, NULL, 'b'},
                                             {"force", no_argument, NULL, 'f'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    opterr = 0;
    optind = 1;
    int opt;
    long port;
    while ((opt = getopt_long(argc, argv, ":o:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'o':
            o->out = optarg;
            break;
        case 'm':
            if (optarg[0] != '/')
                return cli_usage_error("init", "--models wants an absolute path, not '%s'", optarg);
            o->models = optarg;
            break;
        case 'p':
            if (cli_parse_int(optarg, 1, 65535, &port) != 0)
                return cli_usage_error("init", "--port must be an integer from 1 to 65535");
            snprintf(o->port, sizeof o->port, "%ld", port);
            break;
        case 'b':
            o->bin = optarg;
            break;
        case 'f':
            o->force = true;
            break;
        case 'h':
            fputs(init_help, stdout);
            return -1;
        case ':':
            return cli_usage_error("init", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("init", "unknown option '%s'", argv[optind - 1]);
        }
    }
    return 0;
}

int cli_init(int argc, char **argv) {
    init_opts o = {.out = ".", .bin = "/usr/local/bin/shimmy", .port = LIM_STR(LIM_DEFAULT_PORT)};
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (optind != argc - 1)
        return cli_usage_error("init", "name one target: systemd, docker, compose or kubernetes");
    const char *name = argv[optind];
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        const init_target *t = &targets[i];
        if (strcmp(t->name, name) != 0)
            continue;
        const char *models = o.models != NULL ? o.models : t->models;
        for (size_t k = 0; k < 2 && t->files[k].name != NULL; k++)
            if ((rc = write_one(&o, models, &t->files[k])) != 0)
                return rc;
        return 0;
    }
    return cli_usage_error("init", "unknown target '%s': systemd, docker, compose or kubernetes",
                           name);
}
