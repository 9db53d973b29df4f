"""Offline checks of the Kubernetes manifests: every overlay renders with
`kubectl kustomize`, and the rendered objects hold together.

- every container has a pinned image (a tag, never `latest`), and resource
  requests and limits for cpu and memory; every Deployment container has
  readiness and liveness probes;
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


def flags_of(image):
    """The flags of the binary an image runs (trainmesh/NAME[-cuda]:TAG), or all flags."""
    name = image.rsplit("/", 1)[-1].split(":")[0]
    name = name[:-len("-cuda")] if name.endswith("-cuda") else name
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
                for probe in ("readinessProbe", "livenessProbe"):
                    if probe not in c:
                        problem(overlay, w, f"container {c['name']}: no {probe}")
                        continue
                    p = c[probe]
                    port = (p.get("grpc") or p.get("httpGet") or p.get("tcpSocket") or {}).get("port")
                    port = named.get(port, port)
                    if port not in ports:
                        problem(overlay, w, f"container {c['name']}: {probe} port {port} is not a container port")
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
                if "value" in env and re.search(r"KEY|SECRET|PASSWORD|DATABASE_URL", env["name"]):
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
