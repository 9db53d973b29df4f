"""Offline checks of the Kubernetes manifests: every overlay renders with
`kubectl kustomize`, and the rendered objects hold together.

- every container has a pinned image (a tag, never `latest`), and resource
  requests and limits for cpu and memory; every Deployment container has
  readiness and liveness probes; those of gRPC servers are GET /healthz on
  the metrics port (their gRPC ports speak TLS, which kubelet gRPC probes
  cannot);
- TLS on every gRPC hop: every Deployment container sets TRAINMESH_TLS_CA to a
  file of a mounted Secret; every gRPC server also sets TRAINMESH_TLS_CERT and
  TRAINMESH_TLS_KEY to files of one mounted Secret, the services' (behind a
  Service) from trainmesh-tls; the services' key is mounted into no other pod,
  and trainers mount nothing of trainmesh-tls; the Ingress's certificate is
  not kept in a Secret the mesh mounts;
- no secret on a command line: no container has an --*api_key or
  --page_token_secret argument (the binaries refuse them);
- with the build directory: every *_endpoint a container's binary calls is a
  Service the NetworkPolicies let that pod reach, and they let no pod reach a
  gRPC port it never calls;
- selectors match labels (Deployments, Services, PodDisruptionBudgets,
  NetworkPolicies); scale targets exist;
- Service target ports and probe ports are ports the container declares, and
  those are the ports its --listen / --http_listen flag binds;
- every --flag in a container's args and every TRAINMESH_<FLAG> in its
  environment is a flag of that container's binary (its --helpfull, when the
  build directory is given; else a flag some binary defines, by ABSL_FLAG in
  the sources); every ConfigMap key is a flag of some binary;
- no Secret objects and no literal credentials are committed;
- the Grafana dashboard and the alert rules query only series the mesh
  exports (trainmesh_*, grpc_server_* and process_* names in its sources);
- every container with a metrics port is scraped by a ServiceMonitor or
  PodMonitor, and TRAINMESH_METRICS_LISTEN binds that port;
- every object type-checks against the Kubernetes API and the operators'
  CRDs (kubernetes-models' TypeScript types, strict: no unknown fields, no
  wrong types, no missing required fields);
- the Ingress keeps Server-Sent Events streaming; production runs GPU trainers
  with a grace period long enough to checkpoint, and >= 2 schedulers and
  gateways.

  python3 check_manifests.py SOURCE_DIR [BUILD_DIR]   (exit 77: kubectl is missing)
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
kubectl = shutil.which("kubectl")
if not kubectl:
    print("kubectl not found: skipped")
    sys.exit(77)

# Flags the binaries define.
flags = set()
for path in glob.glob(os.path.join(root, "**", "*.cc"), recursive=True):
    if "/build/" in path or "node_modules" in path:
        continue
    with open(path, encoding="utf-8", errors="replace") as f:
        flags.update(re.findall(r"ABSL_FLAG\(\s*[\w:<>, ]+?,\s*(\w+)\s*,", f.read()))
assert {"listen", "database_url", "http_listen", "device"} <= flags, sorted(flags)

# Each binary's own flags, from its --helpfull (when built).
build = sys.argv[2] if len(sys.argv) > 2 else ""
binary_flags = {}


def binary_of(image):
    """The binary an image runs (trainmesh/NAME[-cuda]:TAG)."""
    name = image.rsplit("/", 1)[-1].split(":")[0]
    return name[:-len("-cuda")] if name.endswith("-cuda") else name


def flags_of(image):
    """The flags of the binary an image runs, or all flags."""
    name = binary_of(image)
    if name not in binary_flags:
        path = os.path.join(build, "gateway", "gateway") if name == "gateway" else \
            os.path.join(build, "services", name, name)
        if build and os.access(path, os.X_OK):
            out = subprocess.run([path, "--helpfull"], capture_output=True, text=True).stdout
            binary_flags[name] = set(re.findall(r"^\s+--(\w+) ", out, re.M))
            assert "listen" in binary_flags[name] or name == "gateway", (name, out[:500])
        else:
            binary_flags[name] = flags
    return binary_flags[name]


def own_flags_known(image):
    """Whether flags_of(image) are the binary's own (its --helpfull)."""
    return flags_of(image) is not flags

# Series the mesh exports: metric names as string literals in the sources
# (histograms also as _bucket, _sum and _count).
SERIES = r"(?:trainmesh|grpc_server|process)_\w+"
exported = set()
sources = glob.glob(os.path.join(root, "**", "*.cc"), recursive=True) + \
    glob.glob(os.path.join(root, "**", "*.h"), recursive=True)
for path in sources:
    if "/build/" in path or "node_modules" in path or path.endswith("_test.cc"):
        continue
    with open(path, encoding="utf-8", errors="replace") as f:
        for name in re.findall(r'"(' + SERIES + r')"', f.read()):
            exported.update({name, name + "_bucket", name + "_sum", name + "_count"})
assert {"trainmesh_gateway_requests_total", "grpc_server_handled_total", "trainmesh_queue_jobs",
        "trainmesh_ingest_points_total", "trainmesh_trainer_steps_total"} <= exported, sorted(exported)


def unknown_series(expr):
    return sorted(set(re.findall(SERIES, expr)) - exported)

problems = []


def problem(overlay, obj, message):
    problems.append(f"{overlay}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}: {message}")


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def match_expressions(selector, labels):
    ok = matches(selector.get("matchLabels", {}), labels) if selector.get("matchLabels") else True
    for e in selector.get("matchExpressions", []):
        op, key = e["operator"], e["key"]
        if op == "In":
            ok = ok and labels.get(key) in e["values"]
        elif op == "NotIn":
            ok = ok and labels.get(key) not in e["values"]
        elif op == "Exists":
            ok = ok and key in labels
        elif op == "DoesNotExist":
            ok = ok and key not in labels
        else:
            raise ValueError(f"unknown selector operator {op}")
    return ok


def admits(policy, pod_labels, namespace, port):
    """Whether NetworkPolicy `policy` lets pods of `namespace` reach `port` of the pod."""
    if not match_expressions(policy["spec"]["podSelector"], pod_labels):
        return False
    for rule in policy["spec"].get("ingress", []):
        ports = [p.get("port") for p in rule.get("ports", [])]
        if ports and port not in ports:
            continue
        for peer in rule.get("from", []):
            ns = peer.get("namespaceSelector")
            if ns is not None and "podSelector" not in peer and \
                    match_expressions(ns, {"kubernetes.io/metadata.name": namespace}):
                return True
    return False


def allowed(policies, target_labels, port, source_labels=None, namespace=None):
    """Whether the NetworkPolicies let a pod of this namespace with source_labels
    (or any pod of `namespace`) reach `port` of a pod with target_labels: no
    Ingress policy selects the target, or one of those that do admits it."""
    selecting = [p for p in policies if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
                 and match_expressions(p["spec"]["podSelector"], target_labels)]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            ports = [p.get("port") for p in rule.get("ports", [])]
            if ports and port not in ports:
                continue
            if "from" not in rule:
                return True
            for peer in rule["from"]:
                if "ipBlock" in peer:
                    continue
                ns, pods = peer.get("namespaceSelector"), peer.get("podSelector")
                if namespace is None and ns is None and source_labels is not None \
                        and match_expressions(pods, source_labels):
                    return True
                if namespace is not None and ns is not None and pods is None \
                        and match_expressions(ns, {"kubernetes.io/metadata.name": namespace}):
                    return True
    return False


def effective_env(container, config_maps):
    """The container's TRAINMESH_* settings with literal values: its ConfigMaps
    (envFrom), then its env. A value from a Secret or field reads as None."""
    env = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref and ref.get("name") in config_maps:
            env.update({source.get("prefix", "") + k: v for k, v in config_maps[ref["name"]].items()})
    for e in container.get("env", []):
        env[e["name"]] = e.get("value")
    return env


def setting(container, env, flag):
    """A flag's value in the container: its --flag= argument, else TRAINMESH_<FLAG>."""
    for arg in container.get("args", []):
        if arg.startswith(f"--{flag}="):
            return arg.split("=", 1)[1]
    return env.get("TRAINMESH_" + flag.upper())


def secret_sources(volume):
    """[(Secret name, {file path: key} or None for every key)] a volume projects."""
    if "secret" in volume:
        sources = [volume["secret"]]
    elif "projected" in volume:
        sources = [s["secret"] for s in volume["projected"].get("sources", []) if "secret" in s]
    else:
        return []
    return [(s.get("secretName", s.get("name")),
             {i["path"]: i["key"] for i in s["items"]} if s.get("items") else None) for s in sources]


def mounted_secret_keys(pod_spec, container):
    """{(Secret name, key or "*" for every key)} a container mounts."""
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    out = set()
    for m in container.get("volumeMounts", []):
        for name, items in secret_sources(volumes.get(m["name"], {})):
            if m.get("subPath"):
                out.add((name, items.get(m["subPath"], m["subPath"]) if items else m["subPath"]))
            else:
                out.update({(name, k) for k in items.values()} if items is not None else {(name, "*")})
    return out


def secret_file(pod_spec, container, path):
    """(Secret name, key) of the mounted Secret file at `path`, or None."""
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    for m in container.get("volumeMounts", []):
        mount = m["mountPath"].rstrip("/")
        if m.get("subPath"):
            rel = m["subPath"] if path == mount else None
        else:
            rel = path[len(mount) + 1:] if path.startswith(mount + "/") else None
        if not rel:
            continue
        for name, items in secret_sources(volumes.get(m["name"], {})):
            if items is None:
                return name, rel
            if rel in items:
                return name, items[rel]
    return None


# The Secret holding the services' certificate and key (and the CA).
SERVICES_TLS = "trainmesh-tls"
# Secret names on a command line: the binaries refuse these flags.
SECRET_ARG = re.compile(r"--(\w*api_key|page_token_secret)(=|$)")


# Where each API group's TypeScript types live (tests/k8s/package.json).
TYPES = {"": "kubernetes-models", "keda.sh": "@kubernetes-models/keda/keda.sh",
         "monitoring.coreos.com": "@kubernetes-models/prometheus-operator/monitoring.coreos.com",
         "postgresql.cnpg.io": "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io"}


def type_check(rendered):
    """Type-checks every rendered object against the Kubernetes API (and the
    operators' CRDs) as TypeScript object literals: an unknown field (a typo
    kubectl would only reject at apply time), a wrong type or a missing
    required field is a problem. rendered: {overlay: [objects]}."""
    modules = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node_modules")
    tsc = os.path.join(modules, ".bin", "tsc")
    if not os.access(tsc, os.X_OK):
        problems.append("the Kubernetes types are not installed: npm ci in tests/k8s (tools/test does)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(modules, os.path.join(tmp, "node_modules"))
        files, where = [], {}
        for overlay, objects in rendered.items():
            lines = []
            for i, o in enumerate(objects):
                group, _, version = o["apiVersion"].rpartition("/")
                module = TYPES.get(group, f"kubernetes-models/{group}")
                where[(overlay, len(lines) + 1)] = o  # its lines start with its import
                lines.append(f'import type {{ I{o["kind"]} as T{i} }} from "{module}/{version}/{o["kind"]}";')
                lines.extend(f"export const o{i}: T{i} = {json.dumps(o, indent=1)};".splitlines())
            files.append(f"{overlay}.ts")
            with open(os.path.join(tmp, files[-1]), "w") as f:
                f.write("\n".join(lines) + "\n")
        with open(os.path.join(tmp, "tsconfig.json"), "w") as f:
            json.dump({"compilerOptions": {"strict": True, "noEmit": True, "module": "nodenext",
                                           "moduleResolution": "nodenext", "target": "es2022",
                                           "skipLibCheck": True, "types": []}, "files": files}, f)
        out = subprocess.run([tsc, "-p", tmp, "--pretty", "false"], capture_output=True, text=True)
        found = 0
        for m in re.finditer(r"^(?:.*/)?(\w+)\.ts\((\d+),\d+\): error TS\d+: (.*)$", out.stdout, re.M):
            found += 1
            overlay, line, message = m.group(1), int(m.group(2)), m.group(3)
            # The object whose declaration holds the line: the last one starting at or before it.
            starts = [n for (o, n) in where if o == overlay and n <= line]
            obj = where[(overlay, max(starts))] if starts else {}
            with open(os.path.join(tmp, f"{overlay}.ts")) as f:
                text = f.read().splitlines()[line - 1].strip()
            problem(overlay, obj, f"{message} (at {text[:80]})")
        if out.returncode != 0 and not found:
            problems.append(f"tsc failed: {out.stdout[-500:]}{out.stderr[-500:]}")


rendered_objects = {}
for overlay_dir in sorted(glob.glob(os.path.join(root, "k8s", "overlays", "*"))):
    overlay = os.path.basename(overlay_dir)
    rendered = subprocess.run([kubectl, "kustomize", overlay_dir], capture_output=True, text=True)
    if rendered.returncode != 0:
        problems.append(f"{overlay}: kustomize failed: {rendered.stderr.strip()}")
        continue
    objects = [o for o in yaml.safe_load_all(rendered.stdout) if o]
    rendered_objects[overlay] = objects
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    workloads = by_kind.get("Deployment", []) + by_kind.get("Job", [])
    pods = {w["metadata"]["name"]: w["spec"]["template"] for w in workloads}

    for w in workloads:
        spec = w["spec"]["template"]["spec"]
        labels = w["spec"]["template"]["metadata"].get("labels", {})
        if w["kind"] == "Deployment" and not matches(w["spec"]["selector"]["matchLabels"], labels):
            problem(overlay, w, "selector does not match the pod labels")
        for c in spec.get("initContainers", []) + spec["containers"]:
            image = c.get("image", "")
            name_tag = image.rsplit("/", 1)[-1]
            if ":" not in name_tag or name_tag.endswith(":latest"):
                problem(overlay, w, f"container {c['name']}: image {image!r} is not pinned")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(kind, {}):
                        problem(overlay, w, f"container {c['name']}: no {kind}.{r}")
            ports = {p["containerPort"] for p in c.get("ports", [])}
            named = {p["name"]: p["containerPort"] for p in c.get("ports", []) if "name" in p}
            if w["kind"] == "Deployment":
                for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                    if probe not in c:
                        if probe != "startupProbe":
                            problem(overlay, w, f"container {c['name']}: no {probe}")
                        continue
                    p = c[probe]
                    port = (p.get("grpc") or p.get("httpGet") or p.get("tcpSocket") or {}).get("port")
                    port = named.get(port, port)
                    if port not in ports:
                        problem(overlay, w, f"container {c['name']}: {probe} port {port} is not a container port")
            for arg in c.get("command", []) + c.get("args", []):
                if SECRET_ARG.match(arg):
                    problem(overlay, w, f"container {c['name']}: a secret on the command line "
                            f"({arg.split('=', 1)[0]}; set it in env from a Secret)")
            own = flags_of(image)
            for arg in c.get("args", []):
                m = re.match(r"--(\w+)(=(.*))?$", arg)
                if not m:
                    continue
                if m.group(1) not in own:
                    problem(overlay, w, f"container {c['name']}: its binary has no --{m.group(1)}")
                if m.group(1) in ("listen", "http_listen"):
                    port = int(m.group(3).rsplit(":", 1)[1])
                    if port not in ports:
                        problem(overlay, w, f"container {c['name']}: --{m.group(1)} binds {port}, not a declared port")
            for env in c.get("env", []):
                if env["name"].startswith("TRAINMESH_") and env["name"][10:].lower() not in own:
                    problem(overlay, w, f"container {c['name']}: env {env['name']} is no flag of its binary")
                if "value" in env and re.search(r"KEY|SECRET|PASSWORD|DATABASE_URL", env["name"]) \
                        and not secret_file(spec, c, env["value"]):
                    problem(overlay, w, f"env {env['name']} carries a literal credential")

    for cm in by_kind.get("ConfigMap", []):
        for key in cm.get("data", {}):
            if key.startswith("TRAINMESH_") and key[10:].lower() not in flags:
                problem(overlay, cm, f"{key} is no flag")
            if re.search(r"KEY|SECRET|PASSWORD|DATABASE_URL", key):
                problem(overlay, cm, f"{key}: a credential in a ConfigMap")
    for s in by_kind.get("Secret", []):
        problem(overlay, s, "a Secret is committed")
    # Dashboards and alerts query only series the mesh exports.
    for cm in by_kind.get("ConfigMap", []):
        if cm["metadata"].get("labels", {}).get("grafana_dashboard") != "1":
            continue
        for name, text in cm.get("data", {}).items():
            dashboard = json.loads(text)
            for panel in dashboard.get("panels", []):
                for target in panel.get("targets", []):
                    if unknown_series(target["expr"]):
                        problem(overlay, cm, f"{name}: panel {panel['title']!r} queries {unknown_series(target['expr'])}")
            if len(dashboard.get("panels", [])) < 4:
                problem(overlay, cm, f"{name}: hardly a dashboard")
    for rule_set in by_kind.get("PrometheusRule", []):
        for group in rule_set["spec"]["groups"]:
            for rule in group["rules"]:
                if unknown_series(rule["expr"]):
                    problem(overlay, rule_set, f"alert {rule['alert']} queries {unknown_series(rule['expr'])}")

    for svc in by_kind.get("Service", []):
        targets = [t for t in pods.values() if matches(svc["spec"]["selector"], t["metadata"].get("labels", {}))]
        if not targets:
            problem(overlay, svc, "selector matches no pods")
            continue
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            declared = {p.get("name"): p["containerPort"] for c in targets[0]["spec"]["containers"] for p in c.get("ports", [])}
            if target not in declared and target not in declared.values():
                problem(overlay, svc, f"targetPort {target} is not a container port")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        sel = pdb["spec"]["selector"]["matchLabels"]
        if not any(matches(sel, t["metadata"].get("labels", {})) for t in pods.values()):
            problem(overlay, pdb, "selector matches no pods")
    for np in by_kind.get("NetworkPolicy", []):
        sel = np["spec"]["podSelector"]
        if sel and not any(match_expressions(sel, t["metadata"].get("labels", {})) for t in pods.values()) \
                and "cnpg.io/cluster" not in sel.get("matchLabels", {}):
            problem(overlay, np, "podSelector matches no pods")
    # TLS on every gRPC hop, and probes that do not need plaintext gRPC.
    config_maps = {cm["metadata"]["name"]: cm.get("data", {}) for cm in by_kind.get("ConfigMap", [])}
    policies = by_kind.get("NetworkPolicy", [])
    grpc_services = [svc for svc in by_kind.get("Service", [])
                     if any(p.get("name") == "grpc" for p in svc["spec"]["ports"])]
    mesh_tls = set()  # the Secrets the mesh's TLS files come from
    for w in by_kind.get("Deployment", []):
        template = w["spec"]["template"]
        spec, labels = template["spec"], template["metadata"].get("labels", {})
        behind_service = any(matches(svc["spec"]["selector"], labels) for svc in grpc_services)
        for c in spec["containers"]:
            env = effective_env(c, config_maps)
            named = {p["name"]: p["containerPort"] for p in c.get("ports", []) if "name" in p}
            grpc_server = "grpc" in named
            files = {}
            for var in ("TRAINMESH_TLS_CA",) + (("TRAINMESH_TLS_CERT", "TRAINMESH_TLS_KEY") if grpc_server else ()):
                if not env.get(var):
                    problem(overlay, w, f"container {c['name']}: no {var}: its gRPC "
                            f"{'server' if var != 'TRAINMESH_TLS_CA' else 'calls'} would be plaintext")
                    continue
                files[var] = secret_file(spec, c, env[var])
                if files[var] is None:
                    problem(overlay, w, f"container {c['name']}: {var}={env[var]} is no file of a mounted Secret")
                else:
                    mesh_tls.add(files[var][0])
            cert, key = files.get("TRAINMESH_TLS_CERT"), files.get("TRAINMESH_TLS_KEY")
            if cert and key and cert[0] != key[0]:
                problem(overlay, w, f"container {c['name']}: its TLS certificate and key come from "
                        f"different Secrets ({cert[0]}, {key[0]})")
            if grpc_server and behind_service and cert and cert[0] != SERVICES_TLS:
                problem(overlay, w, f"container {c['name']}: a service's certificate must be "
                        f"{SERVICES_TLS}'s (it covers the services' DNS names), not {cert[0]}'s")
            mounted = mounted_secret_keys(spec, c)
            if binary_of(c.get("image", "")) == "trainer" and any(n == SERVICES_TLS for n, _ in mounted):
                problem(overlay, w, f"container {c['name']}: a trainer mounts {SERVICES_TLS}, "
                        "the services' Secret (give it trainmesh-trainer-tls)")
            elif not behind_service and any(n == SERVICES_TLS and k != "ca.crt" for n, k in mounted):
                problem(overlay, w, f"container {c['name']}: mounts the services' private key "
                        f"({SERVICES_TLS}) but is no gRPC service (mount only its ca.crt)")
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                p = c.get(probe)
                if p is None:
                    continue
                if "grpc" in p:
                    problem(overlay, w, f"container {c['name']}: {probe} is a gRPC probe "
                            "(kubelet gRPC probes are plaintext; the gRPC ports speak TLS)")
                elif grpc_server:
                    get = p.get("httpGet", {})
                    port = named.get(get.get("port"), get.get("port"))
                    if get.get("path") != "/healthz" or port != named.get("metrics"):
                        problem(overlay, w, f"container {c['name']}: {probe} is not GET /healthz "
                                "on its metrics port")
    for ing in by_kind.get("Ingress", []):
        for tls in ing["spec"].get("tls", []):
            if tls.get("secretName") in mesh_tls | {SERVICES_TLS}:
                problem(overlay, ing, f"its certificate's Secret {tls['secretName']} is the mesh's "
                        "(cert-manager would replace the mesh's certificate with the public one)")

    # The NetworkPolicies admit exactly the gRPC calls the binaries make (known
    # only from their --helpfull: the *_endpoint flags each defines).
    deployments_list = by_kind.get("Deployment", [])
    if all(own_flags_known(c.get("image", "")) for w in deployments_list
           for c in w["spec"]["template"]["spec"]["containers"]):
        calls = set()  # (caller Deployment, callee Deployment, container port)
        for w in deployments_list:
            template = w["spec"]["template"]
            for c in template["spec"]["containers"]:
                env = effective_env(c, config_maps)
                for flag in sorted(f for f in flags_of(c["image"]) if f.endswith("_endpoint")):
                    value = setting(c, env, flag)
                    if not value:
                        continue
                    host, _, port = value.rpartition(":")
                    svc = next((s for s in by_kind.get("Service", []) if s["metadata"]["name"] == host.split(".")[0]), None)
                    sp = svc and next((p for p in svc["spec"]["ports"] if p["port"] == int(port)), None)
                    if not sp:
                        problem(overlay, w, f"container {c['name']}: --{flag}={value} is no Service port")
                        continue
                    for callee in deployments_list:
                        t = callee["spec"]["template"]
                        if callee is w or not matches(svc["spec"]["selector"], t["metadata"].get("labels", {})):
                            continue
                        declared = {p.get("name"): p["containerPort"] for cc in t["spec"]["containers"] for p in cc.get("ports", [])}
                        target = declared.get(sp.get("targetPort"), sp.get("targetPort", sp["port"]))
                        calls.add((w["metadata"]["name"], callee["metadata"]["name"], target))
                        if not allowed(policies, t["metadata"].get("labels", {}), target,
                                       source_labels=template["metadata"].get("labels", {})):
                            problem(overlay, w, f"container {c['name']}: calls {host}:{port} (--{flag}) but no "
                                    f"NetworkPolicy lets it reach {callee['metadata']['name']}:{target}")
        for callee in deployments_list:
            t = callee["spec"]["template"]
            grpc_ports = [p["containerPort"] for cc in t["spec"]["containers"] for p in cc.get("ports", [])
                          if p.get("name") == "grpc"]
            for caller in workloads:
                if caller is callee:
                    continue
                for port in grpc_ports:
                    if (caller["metadata"]["name"], callee["metadata"]["name"], port) not in calls and \
                            allowed(policies, t["metadata"].get("labels", {}), port,
                                    source_labels=caller["spec"]["template"]["metadata"].get("labels", {})):
                        problem(overlay, callee, f"NetworkPolicies let {caller['kind']}/{caller['metadata']['name']} "
                                f"reach gRPC port {port}, which it never calls")

    names = {d["metadata"]["name"] for d in by_kind.get("Deployment", [])}
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        if hpa["spec"]["scaleTargetRef"]["name"] not in names:
            problem(overlay, hpa, "scale target does not exist")
    for so in by_kind.get("ScaledObject", []):
        if so["spec"]["scaleTargetRef"]["name"] not in names:
            problem(overlay, so, "scale target does not exist")
        if so["spec"].get("minReplicaCount") != 0:
            problem(overlay, so, "trainers do not scale to zero")
    # Every metrics port is scraped, and the services bind it.
    config = {k: v for cm in by_kind.get("ConfigMap", []) for k, v in cm.get("data", {}).items()}
    services = by_kind.get("Service", [])
    for w in by_kind.get("Deployment", []):
        template = w["spec"]["template"]
        labels = template["metadata"].get("labels", {})
        for c in template["spec"]["containers"]:
            port = next((p["containerPort"] for p in c.get("ports", []) if p.get("name") == "metrics"), None)
            if port is None:
                continue
            listen = next((a.split("=", 1)[1] for a in c.get("args", []) if a.startswith("--metrics_listen=")),
                          config.get("TRAINMESH_METRICS_LISTEN", ""))
            if not listen.endswith(f":{port}"):
                problem(overlay, w, f"metrics port {port} but the binary listens on {listen!r}")
            if overlay == "dev":
                continue  # no Prometheus Operator there
            scraped = any(
                match_expressions(pm["spec"]["selector"], labels)
                and any(e.get("port") == "metrics" for e in pm["spec"]["podMetricsEndpoints"])
                for pm in by_kind.get("PodMonitor", []))
            for sm in by_kind.get("ServiceMonitor", []):
                for svc in services:
                    if match_expressions(sm["spec"]["selector"], svc["metadata"].get("labels", {})) \
                            and matches(svc["spec"]["selector"], labels) \
                            and any(p.get("name") == "metrics" for p in svc["spec"]["ports"]) \
                            and any(e.get("port") == "metrics" for e in sm["spec"]["endpoints"]):
                        scraped = True
            if not scraped:
                problem(overlay, w, f"container {c['name']}: its metrics port is scraped by no monitor")
            if not any(admits(np, labels, "monitoring", port) for np in by_kind.get("NetworkPolicy", [])):
                problem(overlay, w, f"container {c['name']}: no NetworkPolicy lets Prometheus reach port {port}")
    for ing in by_kind.get("Ingress", []):
        a = ing["metadata"].get("annotations", {})
        if a.get("nginx.ingress.kubernetes.io/proxy-buffering") != "off" or \
                int(a.get("nginx.ingress.kubernetes.io/proxy-read-timeout", "0")) < 600:
            problem(overlay, ing, "Server-Sent Events would be buffered or cut")

    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    trainer = deployments.get("trainer")
    if trainer is None or trainer["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30) < 300:
        problem(overlay, trainer or {"kind": "Deployment"}, "trainer grace period too short to checkpoint")
    if overlay == "production":
        t = trainer["spec"]["template"]["spec"]
        limits = t["containers"][0]["resources"]["limits"]
        if "nvidia.com/gpu" not in limits or not t.get("tolerations") or not t.get("nodeSelector"):
            problem(overlay, trainer, "no GPU request, toleration or node selection")
        for name in ("scheduler", "gateway"):
            if deployments[name]["spec"]["replicas"] < 2:
                problem(overlay, deployments[name], "fewer than 2 replicas")
        if not by_kind.get("Cluster"):
            problems.append("production: no CloudNativePG Cluster")
    print(f"{overlay}: {len(objects)} objects checked")

type_check(rendered_objects)

# No secret material anywhere under k8s/.
for path in glob.glob(os.path.join(root, "k8s", "**", "*.yaml"), recursive=True):
    with open(path) as f:
        text = f.read()
    if re.search(r"^kind:\s*Secret\s*$", text, re.M) or re.search(r"tm_[A-Za-z0-9]{16,}|BEGIN [A-Z ]*PRIVATE KEY", text):
        problems.append(f"{os.path.relpath(path, root)}: secret material committed")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print("k8s manifests: OK")
