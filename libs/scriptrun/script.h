// Running untrusted user commands (the `script` recipe). This is the one
// place that confines them: by default in a bubblewrap sandbox (new user,
// mount, pid, network, ipc and uts namespaces) as an unprivileged host user,
// where the system directories are read-only, only the job's work and output
// directories are writable, /tmp, /dev/shm and /proc are private, and nothing
// else of the host (the agent's state, keys, artifact store, other jobs) is
// mounted. Resource limits apply inside; the runner watches the bytes the
// script leaves behind. Output is read line by line as it comes; a cancel or
// a timeout sends SIGTERM to every process of the sandbox, then SIGKILLs its
// pid namespace (nothing, `setsid` daemons included, survives it).
//
// Without the sandbox (SandboxOptions::enabled false, an explicit unsafe
// choice of the caller) the command runs in a process group of its own as the
// unprivileged user, with the same rlimits, and sees the host.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace trainmesh::scriptrun {

// What one script may use. Zero turns a limit off unless said otherwise.
struct Limits {
  // Processes and threads in the sandbox at once (RLIMIT_NPROC). It is set
  // inside the sandbox's own user namespace, where Linux (>= 5.14) counts
  // processes per namespace, so it is per job even though jobs share a host
  // uid. Without the sandbox it counts every process of the host uid, so it is
  // only applied when the script runs as another user than the caller.
  int max_processes = 256;
  int max_open_files = 1024;                   // RLIMIT_NOFILE
  int64_t cpu_seconds = 0;                     // RLIMIT_CPU, per process
  int64_t memory_bytes = int64_t{8} << 30;     // RLIMIT_AS, per process
  int64_t max_file_bytes = int64_t{16} << 30;  // RLIMIT_FSIZE
  // Bytes the script may leave in its writable directories (work and output
  // dir together), checked by the runner several times a second; over it the
  // sandbox is killed and the result says so. A single file is also capped
  // just past it (RLIMIT_FSIZE) so that it cannot outrun the check.
  int64_t max_output_bytes = int64_t{16} << 30;
  // Files and directories there, for the same reason (and to bound the walk).
  int64_t max_output_files = 100000;
  // Size of each private in-memory filesystem (/tmp and /dev/shm).
  int64_t tmp_bytes = int64_t{1} << 30;
};

struct SandboxOptions {
  // Off: no namespaces (see the file comment); callers only turn it off when
  // an administrator asked for it explicitly.
  bool enabled = true;
  std::string bwrap = "/usr/bin/bwrap";
  // The host user the script runs as when the caller is root: `uid`/`gid`
  // when set (>= 0), else the account `user`. A caller that is not root runs
  // scripts as itself.
  std::string user = "nobody";
  int64_t uid = -1;
  int64_t gid = -1;
  // Host paths (files or directories) bound read-only at the same place, e.g.
  // the job's dataset. The system directories and a minimal /etc always are.
  std::vector<std::string> read_only;
  // Keep the host's network (and its /etc/hosts, /etc/resolv.conf). Off: a
  // network namespace with only its own loopback.
  bool network = false;
  Limits limits;
};

struct ScriptOptions {
  std::string command;
  std::vector<std::string> args;
  // Fresh directories for the job, writable inside at the same paths; Run
  // hands them to the script's user (chown, 0700) when the caller is root.
  // `output_dir` may be empty or inside `workdir`.
  std::string workdir;
  std::string output_dir;
  std::map<std::string, std::string> env;  // the whole environment
  absl::Duration timeout = absl::InfiniteDuration();
  // Between SIGTERM and SIGKILL on a stop or a timeout.
  absl::Duration kill_grace = absl::Seconds(5);
  SandboxOptions sandbox;
};

enum class Stream { kStdout, kStderr };

struct ScriptResult {
  int exit_code = 0;  // when exited
  int signal = 0;     // when killed by a signal
  bool timed_out = false;
  bool stopped = false;  // ended because `stop` was set
  // Killed because its directories held more than max_output_bytes (or
  // max_output_files); `output_bytes` is what the last check counted.
  bool output_limit_exceeded = false;
  int64_t output_bytes = 0;
  bool sandboxed = false;
  // The host user the script ran as: the owner of the files it made.
  uid_t uid = 0;
  gid_t gid = 0;
};

// Runs the command to its end. `on_line` gets every output line (without the
// newline; lines longer than 1 MiB are split). `stop` set to non-zero ends
// it. INVALID_ARGUMENT when the command cannot start (not found, not
// executable), with the reason; FAILED_PRECONDITION for an unknown user;
// UNAVAILABLE when the sandbox or the process cannot be set up.
absl::StatusOr<ScriptResult> Run(const ScriptOptions& options,
                                 const std::function<void(Stream, absl::string_view)>& on_line,
                                 const std::atomic<int>* stop);

// Runs `true` in a sandbox configured like `options` (in a scratch directory
// made under `scratch_parent`, default the system temp dir, so that a parent
// the script user cannot reach shows up here). OK when it works;
// FAILED_PRECONDITION with the reason when bubblewrap is missing, user
// namespaces are off, or the sandbox is disabled.
absl::Status SandboxAvailable(const SandboxOptions& options,
                              const std::string& scratch_parent = "");

}  // namespace trainmesh::scriptrun
