"""Offline checks of docker/Dockerfile against the build it packages, for
machines without a container engine (tests/images/smoke_test.sh runs the
built images where there is one):

- every shared library each binary of this build loads (ldd) comes from a
  Debian package that the image installs: RUNTIME_PACKAGES or what they pull
  in (apt's dependency closure), plus LibTorch and OpenBLAS for the trainer;
  the test build's own sanitizer runtimes aside;
- the build stages install only packages tools/deps installs here (the same
  package set as the build that is tested);
- every binary a final stage copies is a target the build stage builds, at
  the path this build puts it, and every final stage runs it.

  python3 check_dockerfile.py SOURCE_DIR BUILD_DIR   (exit 77: no dpkg/apt)
"""
import os
import re
import shutil
import subprocess
import sys

root, build = sys.argv[1], sys.argv[2]
if not (shutil.which("dpkg") and shutil.which("apt-cache") and shutil.which("ldd")):
    print("dpkg, apt-cache or ldd missing: skipped")
    sys.exit(77)

with open(os.path.join(root, "docker", "Dockerfile"), encoding="utf-8") as f:
    dockerfile = f.read().replace("\\\n", " ")
with open(os.path.join(root, "tools", "deps"), encoding="utf-8") as f:
    deps = f.read()

problems = []


def arg(name):
    m = re.search(r'^ARG %s="([^"]*)"' % name, dockerfile, re.M)
    assert m, f"no ARG {name} in the Dockerfile"
    return m.group(1).split()


build_packages = arg("BUILD_PACKAGES")
runtime_packages = arg("RUNTIME_PACKAGES")
# Packages named in the stages' RUN lines besides the ARG lists.
extra = {}
for stage, body in re.findall(r"^FROM \S+ AS (\S+)\n(.*?)(?=^FROM |\Z)", dockerfile, re.M | re.S):
    extra[stage] = set()
    for run in re.findall(r"^RUN (.*)$", body, re.M):
        for install in re.findall(r"apt-get install -y --no-install-recommends ([^&;]*)", run):
            extra[stage].update(w for w in install.split() if not w.startswith("$"))

# --- The build installs what tools/deps installs (ca-certificates comes with
# curl there; the stages name it because they start from a slim image).
tested = set(re.search(r"packages=\((.*?)\)", deps, re.S).group(1).split()) | {"ca-certificates", "libtorch-dev"}
for package in set(build_packages) | extra.get("build", set()) | extra.get("build-trainer", set()):
    if package not in tested and package not in ("npm",):
        problems.append(f"build stage installs {package}, which tools/deps does not (untested)")


def closure(packages):
    out = subprocess.run(
        ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
         "--no-breaks", "--no-replaces", "--no-enhances", *packages],
        capture_output=True, text=True)
    if out.returncode != 0:
        print("apt-cache depends failed (no package lists?): skipped\n" + out.stderr[-500:])
        sys.exit(77)
    return {line.split(":")[0] for line in out.stdout.splitlines() if line and not line[0].isspace()
            and not line.startswith("<")}


# Which package installed each file: dpkg's file lists, read once.
owners = {}
info = "/var/lib/dpkg/info"
for entry in os.listdir(info):
    if entry.endswith(".list"):
        package = entry[:-len(".list")].split(":")[0]
        with open(os.path.join(info, entry), encoding="utf-8", errors="replace") as f:
            for line in f:
                owners.setdefault(line.rstrip("\n"), package)


def package_of(path):
    real = os.path.realpath(path)
    # Debian 12 merges /lib into /usr/lib: a file may be listed under either.
    for candidate in (path, real, real.replace("/usr/lib/", "/lib/", 1), path.replace("/usr/lib/", "/lib/", 1)):
        if candidate in owners:
            return owners[candidate]
    return None


# Sanitizer runtimes of the ASan/UBSan test build; a release build links none.
SANITIZER = re.compile(r"lib(asan|ubsan|lsan|tsan)\.so")

runtime = closure(runtime_packages)
trainer_runtime = runtime | closure(sorted(extra.get("trainer", set())) + ["libtorch1.13"])

# --- Each final stage copies a binary the build stage builds and runs it.
finals = re.findall(r"^FROM \S+ AS (\w+)\n(.*?)(?=^FROM |\Z)", dockerfile, re.M | re.S)
binaries = {}
for stage, body in finals:
    copy = re.search(r"^COPY --from=(build(?:-trainer)?) /build/(\S+) (\S+)$", body, re.M)
    if not copy:
        continue
    source, built, installed = copy.groups()
    binaries[stage] = built
    if not re.search(r'^ENTRYPOINT \["%s"\]' % re.escape(installed), body, re.M):
        problems.append(f"stage {stage} copies {installed} but does not run it")
    name = os.path.basename(built)
    ninja = re.search(r"ninja -C /build ([\w ]+)", dockerfile[:dockerfile.find(f"AS {source}\n") + 2000]
                      if source == "build" else dockerfile[dockerfile.find("AS build-trainer"):])
    if not ninja or name not in ninja.group(1).split():
        problems.append(f"stage {stage} copies {name}, which the {source} stage does not build")
assert set(binaries) >= {"auth", "jobs", "scheduler", "metrics", "gateway", "trainer"}, binaries

for stage, built in sorted(binaries.items()):
    path = os.path.join(build, built)
    if not os.access(path, os.X_OK):
        problems.append(f"stage {stage}: this build has no {built} (the Dockerfile's path is stale)")
        continue
    allowed = trainer_runtime if stage == "trainer" else runtime
    out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
    for lib, where in re.findall(r"^\s*(\S+) => (\S+)", out, re.M):
        if SANITIZER.search(lib):
            continue
        if where == "not":
            problems.append(f"{stage}: {lib} not found on this machine")
            continue
        package = package_of(where)
        if package is None:
            problems.append(f"{stage}: {lib} ({where}) belongs to no Debian package")
        elif package not in allowed:
            problems.append(f"{stage}: loads {lib} from {package}, which its image does not install")
    print(f"{stage}: {len(re.findall(' => ', out))} libraries, each from an installed package")

if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print("Dockerfile: build packages as tested, every final stage's libraries installed")
