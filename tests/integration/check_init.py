#!/usr/bin/python3
"""check_init.py: validates the files of `shimmy init` (run by it_init.c with Debian's
/usr/bin/python3 and python3-yaml).

  check_init.py yaml DIR            compose.yaml, compose.gpu.yaml, shimmy.k8s.yaml: parsed with
                                    PyYAML, their structure checked (probes, GPU, ports, user)
  check_init.py docker DIR TARBALL  the Dockerfile against scripts/dist.sh's tarball: the ADDed
                                    name, the paths it uses, a non-root USER, a HEALTHCHECK, and an
                                    apt package for every shared library (direct: readelf NEEDED) the binary and llama.cpp's
                                    core libraries need that the tarball does not carry
Exits 1 with one line per problem."""
import functools, os, re, subprocess, sys, tarfile, tempfile
import yaml

problems = []

def need(cond, what):
    if not cond:
        problems.append(what)

def check_yaml(d):
    c = yaml.safe_load(open(os.path.join(d, "compose.yaml")))
    s = c["services"]["shimmy"]
    need("/health?ready=1" in " ".join(s["healthcheck"]["test"]), "compose: healthcheck on /health?ready=1")
    need(any(v.endswith(":ro") for v in s["volumes"]), "compose: the model store mounted read-only")
    need(s.get("stop_grace_period") == "35s", "compose: stop_grace_period 35s")
    g = yaml.safe_load(open(os.path.join(d, "compose.gpu.yaml")))
    dev = g["services"]["shimmy"]["deploy"]["resources"]["reservations"]["devices"][0]
    need(dev["driver"] == "nvidia" and "gpu" in dev["capabilities"], "compose.gpu: an NVIDIA device")
    docs = list(yaml.safe_load_all(open(os.path.join(d, "shimmy.k8s.yaml"))))
    need([x["kind"] for x in docs] == ["Deployment", "Service"], "k8s: a Deployment and a Service")
    dep, svc = docs
    pod = dep["spec"]["template"]["spec"]
    ctr = pod["containers"][0]
    need(dep["spec"]["selector"]["matchLabels"] == dep["spec"]["template"]["metadata"]["labels"],
         "k8s: the selector matches the pod's labels")
    need(svc["spec"]["selector"] == dep["spec"]["template"]["metadata"]["labels"],
         "k8s: the Service selects the pods")
    need(ctr["readinessProbe"]["httpGet"]["path"] == "/health?ready=1", "k8s: readiness on /health?ready=1")
    need(ctr["livenessProbe"]["httpGet"]["path"] == "/health", "k8s: liveness on /health")
    need(svc["spec"]["ports"][0]["targetPort"] == ctr["ports"][0]["name"], "k8s: the Service targets the port")
    need(pod["securityContext"]["runAsNonRoot"] is True, "k8s: runAsNonRoot")
    need(ctr["securityContext"]["allowPrivilegeEscalation"] is False, "k8s: no privilege escalation")
    need(pod["terminationGracePeriodSeconds"] >= 30, "k8s: a grace period for the drain")

def instructions(path):
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", open(path).read())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out

@functools.lru_cache(maxsize=None)  # every core library needs libc, libstdc++...: ask dpkg once
def owner(lib_path):
    r = subprocess.run(["dpkg", "-S", os.path.realpath(lib_path)], capture_output=True, text=True)
    if r.returncode != 0:
        r = subprocess.run(["dpkg", "-S", lib_path], capture_output=True, text=True)
    return r.stdout.split(":")[0] if r.returncode == 0 else None

def check_docker(d, tarball):
    ins = instructions(os.path.join(d, "Dockerfile"))
    args = dict(a.split("=", 1) for w, a in ins if w == "ARG" and "=" in a)
    def subst(s):
        return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), s)
    dist = args.get("SHIMMY_DIST")
    need(dist is not None, "docker: ARG SHIMMY_DIST")
    need(ins[0][0] == "FROM" and ins[0][1].startswith("debian:12"), "docker: FROM debian:12 (the tarball's libraries)")
    adds = [subst(a).split() for w, a in ins if w == "ADD"]
    need(len(adds) == 1 and adds[0][0] == os.path.basename(tarball), "docker: ADD %s (got %s)" % (os.path.basename(tarball), adds))
    with tarfile.open(tarball) as tf:
        names = set(tf.getnames())
    need(dist + "/shimmy" in names, "tarball: %s/shimmy" % dist)
    need(any(n.startswith(dist + "/lib/libllama") for n in names), "tarball: %s/lib/libllama*" % dist)
    for w, a in ins:
        for p in re.findall(r"/opt/(\S+)", subst(a)):
            need(p.rstrip("/") in names or p == "", "docker: /opt/%s is in the tarball" % p)
    users = [a for w, a in ins if w == "USER"]
    need(users and users[-1] not in ("root", "0"), "docker: a non-root USER")
    need(any(w == "HEALTHCHECK" and "/health" in a for w, a in ins), "docker: a HEALTHCHECK on /health")
    apt = set()
    for w, a in ins:
        if w == "RUN" and "apt-get install" in a:
            apt |= {t for t in a.split() if re.match(r"^[a-z0-9][a-z0-9.+-]+$", t)}
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(tarball) as tf:
            tf.extractall(tmp)
        root = os.path.join(tmp, dist)
        core = [os.path.join(root, "shimmy")] + [os.path.join(root, "lib", f) for f in os.listdir(os.path.join(root, "lib"))
                if re.match(r"lib(llama|ggml|ggml-base|ggml-cpu-.*|shimmy-cxx)(\.v[\d.]+)?\.so$", f)]
        for f in core:
            out = subprocess.run(["ldd", f], capture_output=True, text=True).stdout
            where = dict(re.findall(r"(?m)^\s*(\S+) => (\S+)", out))
            dyn = subprocess.run(["readelf", "-d", f], capture_output=True, text=True).stdout
            for name in re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dyn):
                path = where.get(name, "not")
                if name.startswith("ld-linux"):
                    continue
                # the sanitizer runtimes of a checking build (make test-asan packs build-asan):
                # a release build never needs them, so the Dockerfile must not install them
                if re.match(r"lib(asan|ubsan|lsan|tsan)\.so", name):
                    continue
                need(path != "not", "docker: %s needs %s, found nowhere" % (os.path.basename(f), name))
                if path.startswith(root) or path == "not":
                    continue
                pkg = owner(path)
                if pkg is None or pkg.split(":")[0] in ("libc6", "libc6-i386"):
                    continue
                need(pkg.split(":")[0] in apt, "docker: %s needs %s from Debian's %s: add it to the apt-get install line" % (os.path.basename(f), name, pkg))

if __name__ == "__main__":
    if sys.argv[1] == "yaml":
        check_yaml(sys.argv[2])
    else:
        check_docker(sys.argv[2], sys.argv[3])
    for p in dict.fromkeys(problems):
        print(p)
    sys.exit(1 if problems else 0)
