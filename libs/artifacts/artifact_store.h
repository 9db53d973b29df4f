// Where checkpoints and final models live: a directory tree shared by the
// trainers (which write) and the jobs service (which serves downloads). One
// machine: a local directory; a cluster: the same volume mounted on every
// trainer and jobs replica (a ReadWriteMany volume), or a FUSE-mounted bucket.
//
// Layout: <root>/<job_id>/<name>. Artifacts are named "artifact:<job>/<name>".
// Writes are atomic (temp file, fsync, rename), so a reader never sees half a
// file and a crash leaves the previous checkpoint intact. Folders the store
// makes are 0700 and its files 0600: only the store's user reads them.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "trainmesh/v1/common.pb.h"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX

namespace trainmesh::artifacts {

class ArtifactStore {
 public:
  explicit ArtifactStore(std::string root) : root_(std::move(root)) {}

  // Stores `bytes` as <job>/<name>. INVALID_ARGUMENT for a bad job id or name.
  absl::StatusOr<trainmesh::v1::Artifact> Put(const std::string& job_id, const std::string& name,
                                              absl::string_view bytes, int64_t step);
  // Moves a finished local file in (same filesystem: a rename).
  absl::StatusOr<trainmesh::v1::Artifact> Adopt(const std::string& job_id, const std::string& name,
                                                const std::string& path, int64_t step);
  // A fresh path inside the store for `job_id` to write before Adopt.
  absl::StatusOr<std::string> ScratchPath(const std::string& job_id, const std::string& name);
  // Copies what `fd` reads to its end in as <job>/<name>, at most `max_bytes`
  // (RESOURCE_EXHAUSTED past it, and nothing is stored). For a file opened
  // safely by someone who must not hand over a path (a script's outputs).
  absl::StatusOr<trainmesh::v1::Artifact> PutFromFd(const std::string& job_id,
                                                    const std::string& name, int fd,
                                                    int64_t max_bytes, int64_t step);

  // The file behind an artifact; NOT_FOUND when absent.
  absl::StatusOr<std::string> Path(const std::string& uri) const;
  absl::StatusOr<std::string> Path(const std::string& job_id, const std::string& name) const;
  absl::StatusOr<std::string> Read(const std::string& uri) const;

  // Calls `chunk(data, offset, total)` over the file; stops when it returns false.
  absl::Status Stream(const std::string& job_id, const std::string& name, size_t chunk_bytes,
                      const std::function<bool(absl::string_view, int64_t, int64_t)>& chunk) const;

  // Deletes <job>/<prefix>* files except the newest `keep` (by step in the name).
  absl::Status Prune(const std::string& job_id, const std::string& prefix, int keep);

  // The file <job>/<prefix>* with the highest step in its name ("-<step>."),
  // if any: what a new attempt resumes from even when its predecessor died
  // before telling anyone about its last checkpoint.
  std::optional<trainmesh::v1::Artifact> Latest(const std::string& job_id,
                                                const std::string& prefix) const;

  static std::string Uri(const std::string& job_id, const std::string& name);
  // Whether `uri` names a file of `job_id` (what a trainer may report for
  // the job it runs; never another job's).
  static bool IsJobUri(absl::string_view uri, absl::string_view job_id);
  // A name an artifact may have: up to 8 '/'-separated parts (a script's
  // "figures/loss.png"), each letters, digits, '.', '-', '_', not starting
  // with '.', at most 128 characters; 512 in all.
  static bool ValidName(absl::string_view name);
  // ValidName's rule, in words for error messages.
  static constexpr char kNameRule[] =
      "a file of the job's artifacts: up to 8 '/'-separated parts of letters, digits, '.', "
      "'-', '_' (none starting with '.'), e.g. model.pt or figures/loss.png";
  const std::string& root() const { return root_; }

 private:
  // <job>/<prefix>* as (step, name), by step.
  std::vector<std::pair<int64_t, std::string>> List(const std::string& job_id,
                                                    const std::string& prefix) const;
  absl::StatusOr<std::string> Location(const std::string& job_id, const std::string& name) const;
  std::string root_;
};

// SHA-256 fed piece by piece (a download hashes what it sends as it sends it).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(absl::string_view bytes);
  // Hex digest of everything fed so far; starts over.
  std::string HexDigest();

 private:
  ::evp_md_ctx_st* ctx_;
};

// Hex SHA-256 of a file.
absl::StatusOr<std::string> Sha256File(const std::string& path);

}  // namespace trainmesh::artifacts
