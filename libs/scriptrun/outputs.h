// What a script leaves behind, read safely. The script's directories are
// hostile input: any name may be a symbolic link (to /etc/shadow), a FIFO
// (that blocks a reader forever), a device, a socket, or a hard link to a
// file of another user. Every path component is opened relative to its
// parent's descriptor with O_NOFOLLOW, so no link is followed anywhere in a
// path; only regular files owned by the script's user are handed on, as an
// open descriptor (never a path to open again), with nested directory names
// kept ("figures/loss.png").
//
// Reading as root is safe under two conditions the callers keep: the script
// is dead when its outputs are collected (Run kills its whole pid namespace),
// so nothing changes under the walk; and a file owned by the script's user is
// one that user could read anyway (an owner can always chmod), so root reads
// nothing on its behalf that it could not.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace trainmesh::scriptrun {

struct CollectOptions {
  // Only files owned by this user are collected.
  uid_t owner = 0;
  // The sum of the collected files' sizes may not pass this.
  int64_t max_bytes = int64_t{16} << 30;
  int64_t max_files = 10000;
  int max_depth = 16;
};

struct OutputFile {
  std::string name;  // relative, '/'-separated: "model.pt", "figures/loss.png"
  int fd = -1;       // open for reading; valid during the callback only
  int64_t size = 0;  // st_size when opened
};

struct CollectReport {
  std::vector<std::string> collected;
  // "name: why" for each entry left out (links, FIFOs, devices, sockets,
  // files of another user, too deep).
  std::vector<std::string> skipped;
  int64_t bytes = 0;
  // The files did not fit max_bytes/max_files: collection stopped there.
  bool over_limit = false;
};

// Walks `dir` (itself opened with O_NOFOLLOW; it must be a real directory)
// and calls `take` for each regular file of `options.owner`, in name order. An
// error from `take` stops the walk and is returned. NOT_FOUND when `dir` is
// missing; FAILED_PRECONDITION when it is a link or not a directory.
absl::StatusOr<CollectReport> CollectOutputs(
    const std::string& dir, const CollectOptions& options,
    const std::function<absl::Status(const OutputFile&)>& take);

// What a directory tree holds, counted without following links: bytes (the
// larger of size and allocated blocks for each entry) and entries. Stops
// counting past `max_entries`. For the runner's output limit.
struct TreeUsage {
  int64_t bytes = 0;
  int64_t entries = 0;
};
TreeUsage MeasureTree(const std::string& dir, int64_t max_entries);

}  // namespace trainmesh::scriptrun
