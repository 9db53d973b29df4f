#include "libs/artifacts/artifact_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"

namespace trainmesh::artifacts {
namespace {

bool ValidJob(absl::string_view id) {
  return id.size() == 36 && std::all_of(id.begin(), id.end(), [](char c) {
           return absl::ascii_isxdigit(static_cast<unsigned char>(c)) || c == '-';
         });
}

// One folder or file name of an artifact's path.
bool ValidSegment(absl::string_view name) {
  return !name.empty() && name.size() <= 128 && name[0] != '.' &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ||
                  c == '_';
         });
}

constexpr size_t kMaxNameBytes = 512;
constexpr int kMaxNameDepth = 8;

}  // namespace

bool ArtifactStore::ValidName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) return false;
  int depth = 0;
  for (absl::string_view segment : absl::StrSplit(name, '/')) {
    if (++depth > kMaxNameDepth || !ValidSegment(segment)) return false;
  }
  return true;
}

namespace {

absl::Status Check(const std::string& job_id, const std::string& name) {
  if (!ValidJob(job_id)) return absl::InvalidArgumentError(absl::StrCat("bad job id ", job_id));
  if (!ArtifactStore::ValidName(name))
    return absl::InvalidArgumentError(absl::StrCat("bad artifact name ", name));
  return absl::OkStatus();
}

absl::Status Errno(const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// Directories the store makes are private to its user (0700): artifacts are
// other users' models and data.
absl::Status MakeDirs(const std::string& path) {
  std::string partial;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || (path[i] == '/' && i > 0)) {
      partial = path.substr(0, i);
      if (mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) return Errno("mkdir " + partial);
    }
  }
  return absl::OkStatus();
}

// The folder of <root>/<job>/<name> ("figures/loss.png" lives in <job>/figures).
std::string FolderOf(const std::string& root, const std::string& job_id, const std::string& name) {
  const size_t slash = name.rfind('/');
  return slash == std::string::npos ? absl::StrCat(root, "/", job_id)
                                    : absl::StrCat(root, "/", job_id, "/", name.substr(0, slash));
}

int64_t StepOf(absl::string_view name) {
  // "checkpoint-000123.pt" -> 123
  size_t dash = name.rfind('-'), dot = name.rfind('.');
  int64_t step = -1;
  if (dash != absl::string_view::npos && dot != absl::string_view::npos && dot > dash) {
    (void)absl::SimpleAtoi(name.substr(dash + 1, dot - dash - 1), &step);
  }
  return step;
}

}  // namespace

std::string ArtifactStore::Uri(const std::string& job_id, const std::string& name) {
  return absl::StrCat("artifact:", job_id, "/", name);
}

bool ArtifactStore::IsJobUri(absl::string_view uri, absl::string_view job_id) {
  const std::string prefix = absl::StrCat("artifact:", job_id, "/");
  return !job_id.empty() && absl::StartsWith(uri, prefix) && uri.size() > prefix.size() &&
         uri.find("..") == absl::string_view::npos;
}

absl::StatusOr<std::string> ArtifactStore::Location(const std::string& job_id,
                                                    const std::string& name) const {
  if (absl::Status s = Check(job_id, name); !s.ok()) return s;
  return absl::StrCat(root_, "/", job_id, "/", name);
}

absl::StatusOr<std::string> ArtifactStore::Path(const std::string& job_id,
                                                const std::string& name) const {
  absl::StatusOr<std::string> path = Location(job_id, name);
  if (!path.ok()) return path;
  struct stat st;
  if (stat(path->c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("artifact ", Uri(job_id, name), " not found"));
  }
  return path;
}

absl::StatusOr<std::string> ArtifactStore::Path(const std::string& uri) const {
  absl::string_view rest = uri;
  if (!absl::ConsumePrefix(&rest, "artifact:")) {
    return absl::InvalidArgumentError(absl::StrCat("not an artifact uri: ", uri));
  }
  const size_t slash = rest.find('/');
  if (slash == absl::string_view::npos)
    return absl::InvalidArgumentError("artifact uri needs job/name");
  return Path(std::string(rest.substr(0, slash)), std::string(rest.substr(slash + 1)));
}

absl::StatusOr<std::string> ArtifactStore::ScratchPath(const std::string& job_id,
                                                       const std::string& name) {
  if (absl::Status s = Check(job_id, name); !s.ok()) return s;
  const std::string dir = FolderOf(root_, job_id, name);
  if (absl::Status s = MakeDirs(dir); !s.ok()) return s;
  const absl::string_view base = absl::string_view(name).substr(name.rfind('/') + 1);
  return absl::StrCat(dir, "/.", base, ".", getpid(), ".", absl::ToUnixNanos(absl::Now()), ".tmp");
}

absl::StatusOr<trainmesh::v1::Artifact> ArtifactStore::Adopt(const std::string& job_id,
                                                             const std::string& name,
                                                             const std::string& path,
                                                             int64_t step) {
  absl::StatusOr<std::string> target = Location(job_id, name);
  if (!target.ok()) return target.status();
  if (absl::Status s = MakeDirs(FolderOf(root_, job_id, name)); !s.ok()) return s;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    fchmod(fd, 0600);  // readable by the store's user only, like its folders
    fsync(fd);
    close(fd);
  }
  if (rename(path.c_str(), target->c_str()) != 0) return Errno("rename " + path);
  struct stat st;
  if (stat(target->c_str(), &st) != 0) return Errno("stat " + *target);
  absl::StatusOr<std::string> sha = Sha256File(*target);
  if (!sha.ok()) return sha.status();
  trainmesh::v1::Artifact artifact;
  artifact.set_uri(Uri(job_id, name));
  artifact.set_size_bytes(st.st_size);
  artifact.set_sha256(*sha);
  artifact.set_step(step);
  *artifact.mutable_create_time() =
      google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(absl::Now()));
  return artifact;
}

absl::StatusOr<trainmesh::v1::Artifact> ArtifactStore::Put(const std::string& job_id,
                                                           const std::string& name,
                                                           absl::string_view bytes, int64_t step) {
  absl::StatusOr<std::string> scratch = ScratchPath(job_id, name);
  if (!scratch.ok()) return scratch.status();
  {
    std::ofstream out(*scratch, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) return Errno("write " + *scratch);
  }
  return Adopt(job_id, name, *scratch, step);
}

absl::StatusOr<trainmesh::v1::Artifact> ArtifactStore::PutFromFd(const std::string& job_id,
                                                                 const std::string& name, int fd,
                                                                 int64_t max_bytes, int64_t step) {
  absl::StatusOr<std::string> scratch = ScratchPath(job_id, name);
  if (!scratch.ok()) return scratch.status();
  const int out =
      open(scratch->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (out < 0) return Errno("create " + *scratch);
  absl::Status status;
  std::string buf(1 << 20, '\0');
  int64_t total = 0;
  while (status.ok()) {
    const ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = Errno("read " + name);
      break;
    }
    if (n == 0) break;
    total += n;
    if (total > max_bytes) {
      status =
          absl::ResourceExhaustedError(absl::StrCat(name, " is larger than ", max_bytes, " bytes"));
      break;
    }
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = write(out, buf.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        status = Errno("write " + *scratch);
        break;
      }
      done += w;
    }
  }
  if (close(out) != 0 && status.ok()) status = Errno("write " + *scratch);
  if (!status.ok()) {
    unlink(scratch->c_str());
    return status;
  }
  return Adopt(job_id, name, *scratch, step);
}

absl::StatusOr<std::string> ArtifactStore::Read(const std::string& uri) const {
  absl::StatusOr<std::string> path = Path(uri);
  if (!path.ok()) return path.status();
  std::ifstream in(*path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return bytes;
}

absl::Status ArtifactStore::Stream(
    const std::string& job_id, const std::string& name, size_t chunk_bytes,
    const std::function<bool(absl::string_view, int64_t, int64_t)>& chunk) const {
  absl::StatusOr<std::string> path = Path(job_id, name);
  if (!path.ok()) return path.status();
  std::ifstream in(*path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("artifact ", Uri(job_id, name), " not found"));
  in.seekg(0, std::ios::end);
  const int64_t total = in.tellg();
  in.seekg(0);
  std::string buf(chunk_bytes, '\0');
  int64_t offset = 0;
  do {
    in.read(buf.data(), static_cast<std::streamsize>(chunk_bytes));
    const std::streamsize n = in.gcount();
    if (!chunk(absl::string_view(buf.data(), static_cast<size_t>(n)), offset, total)) break;
    offset += n;
  } while (offset < total);
  return absl::OkStatus();
}

std::vector<std::pair<int64_t, std::string>> ArtifactStore::List(const std::string& job_id,
                                                                 const std::string& prefix) const {
  std::vector<std::pair<int64_t, std::string>> found;
  if (!ValidJob(job_id)) return found;
  DIR* d = opendir(absl::StrCat(root_, "/", job_id).c_str());
  if (d == nullptr) return found;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (absl::StartsWith(name, prefix) && ValidName(name)) found.emplace_back(StepOf(name), name);
  }
  closedir(d);
  std::sort(found.begin(), found.end());
  return found;
}

absl::Status ArtifactStore::Prune(const std::string& job_id, const std::string& prefix, int keep) {
  if (!ValidJob(job_id)) return absl::InvalidArgumentError("bad job id");
  const auto found = List(job_id, prefix);
  for (size_t i = 0; i + static_cast<size_t>(keep) < found.size(); ++i) {
    unlink(absl::StrCat(root_, "/", job_id, "/", found[i].second).c_str());
  }
  return absl::OkStatus();
}

std::optional<trainmesh::v1::Artifact> ArtifactStore::Latest(const std::string& job_id,
                                                             const std::string& prefix) const {
  const auto found = List(job_id, prefix);
  if (found.empty() || found.back().first < 0) return std::nullopt;
  struct stat st;
  const std::string path = absl::StrCat(root_, "/", job_id, "/", found.back().second);
  if (stat(path.c_str(), &st) != 0) return std::nullopt;
  trainmesh::v1::Artifact artifact;
  artifact.set_uri(Uri(job_id, found.back().second));
  artifact.set_size_bytes(st.st_size);
  artifact.set_step(found.back().first);
  return artifact;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::Update(absl::string_view bytes) { EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()); }

std::string Sha256::HexDigest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_, digest, &len);
  EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(digest), len));
}

absl::StatusOr<std::string> Sha256File(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  Sha256 hash;
  std::string buf(1 << 20, '\0');
  while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) {
    hash.Update(absl::string_view(buf.data(), static_cast<size_t>(in.gcount())));
  }
  return hash.HexDigest();
}

}  // namespace trainmesh::artifacts
