// Running untrusted user commands (the `script` recipe): in a process group of
// their own, in a fresh working directory, as an unprivileged user when the
// agent runs as root, with resource limits and only the environment given.
// Output is read line by line as it comes; a cancel or a timeout ends the
// whole group (SIGTERM, then SIGKILL).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace trainmesh::scriptrun {

struct ScriptOptions {
  std::string command;
  std::vector<std::string> args;
  std::string workdir;
  std::map<std::string, std::string> env;  // the whole environment
  absl::Duration timeout = absl::InfiniteDuration();
  int64_t memory_bytes = int64_t{8} << 30;  // address space
  int64_t max_file_bytes = int64_t{16} << 30;
  // Run as this user when started as root ("" keeps the current user).
  std::string user = "nobody";
  absl::Duration kill_grace = absl::Seconds(5);
};

enum class Stream { kStdout, kStderr };

struct ScriptResult {
  int exit_code = 0;         // when exited
  int signal = 0;            // when killed by a signal
  bool timed_out = false;
  bool stopped = false;      // ended because `stop` was set
};

// Runs the command to its end. `on_line` gets every output line (without the
// newline; lines longer than 1 MiB are split). `stop` set to non-zero ends
// the group. INVALID_ARGUMENT when the command cannot start (not found, not
// executable), with the reason.
absl::StatusOr<ScriptResult> Run(const ScriptOptions& options,
                                 const std::function<void(Stream, absl::string_view)>& on_line,
                                 const std::atomic<int>* stop);

}  // namespace trainmesh::scriptrun
