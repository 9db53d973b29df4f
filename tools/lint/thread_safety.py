#!/usr/bin/env python3
"""clang's thread-safety analysis over the code that locks.

The build compiles with GCC, which ignores ABSL_GUARDED_BY and friends; this
re-parses (clang++ -fsyntax-only -Wthread-safety, as errors) every source file
of the given build that uses absl::Mutex or includes a project header that
does, with the build's own include paths and definitions. LibTorch's sources
(libs/training's recipes) hold no locks and are skipped: their headers cost
~30 s a file.

  tools/lint/thread_safety.py BUILD_DIR [FILE...]
"""
import concurrent.futures
import json
import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DIRS = ("libs/", "services/", "gateway/", "tools/", "tests/")
LOCKS = re.compile(r"absl::Mutex\b|ABSL_GUARDED_BY|ABSL_EXCLUSIVE_LOCKS_REQUIRED")
INCLUDE = re.compile(r'^#include "([^"]+)"', re.M)
TORCH = re.compile(r"#include <torch/")


def read(path):
    try:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def locks(path):
    text = read(path)
    if TORCH.search(text):
        return False
    if LOCKS.search(text):
        return True
    return any(LOCKS.search(read(h)) for h in INCLUDE.findall(text) if h.startswith(DIRS))


def clang_args(entry):
    args = shlex.split(entry["command"]) if "command" in entry else entry["arguments"]
    out, skip = [], False
    for a in args[1:]:
        if skip:
            skip = False
            continue
        if a in ("-o", "-c"):
            skip = True
            continue
        if a.startswith(("-fsanitize", "-fno-sanitize", "-g", "-O")) or a == entry["file"]:
            continue
        out.append(a)
    return out


def check(entry):
    cmd = (["clang++", "-fsyntax-only", "-Wthread-safety", "-Werror=thread-safety",
            "-Wno-unknown-warning-option"] + clang_args(entry) + [entry["file"]])
    r = subprocess.run(cmd, cwd=entry["directory"], capture_output=True, text=True)
    return entry["file"], r.returncode, r.stderr


def main():
    build = os.path.abspath(sys.argv[1])
    only = {os.path.abspath(f) for f in sys.argv[2:]}
    with open(os.path.join(build, "compile_commands.json")) as f:
        entries = json.load(f)
    chosen = []
    for e in entries:
        rel = os.path.relpath(e["file"], ROOT)
        if only and os.path.abspath(e["file"]) not in only:
            continue
        if rel.startswith(DIRS) and rel.endswith(".cc") and locks(rel):
            chosen.append(e)
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for path, rc, err in pool.map(check, chosen):
            if rc != 0:
                failed += 1
                sys.stderr.write(err)
    print(f"thread-safety analysis: {len(chosen)} files, {failed} with errors")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
