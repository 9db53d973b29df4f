#include "libs/scriptrun/outputs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace trainmesh::scriptrun {
namespace {

// O_NONBLOCK: opening a FIFO that slipped past the type check must not wait
// for a writer. O_NOCTTY: a terminal never becomes ours.
constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC;
constexpr int kFileFlags = O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC;
// Deeper trees count as over the limit when measuring: each level holds a
// descriptor open.
constexpr int kMaxMeasureDepth = 64;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// The entries of an open directory, sorted, without "." and "..".
std::vector<std::string> Names(int dirfd) {
  std::vector<std::string> names;
  const int copy = dup(dirfd);
  if (copy < 0) return names;
  DIR* d = fdopendir(copy);
  if (d == nullptr) {
    close(copy);
    return names;
  }
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

const char* KindOf(mode_t mode) {
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

bool Same(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

struct Walker {
  const CollectOptions& options;
  const std::function<absl::Status(const OutputFile&)>& take;
  CollectReport report;

  void Skip(const std::string& name, const std::string& why) {
    report.skipped.push_back(absl::StrCat(name, ": ", why));
  }

  absl::Status Walk(int dirfd, const std::string& prefix, int depth) {
    for (const std::string& name : Names(dirfd)) {
      if (report.over_limit) return absl::OkStatus();
      const std::string rel = prefix.empty() ? name : absl::StrCat(prefix, "/", name);
      struct stat st;
      if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        Skip(rel, std::strerror(errno));
        continue;
      }
      if (S_ISDIR(st.st_mode)) {
        if (depth + 1 >= options.max_depth) {
          Skip(rel, absl::StrCat("nested deeper than ", options.max_depth, " directories"));
          continue;
        }
        Fd sub(openat(dirfd, name.c_str(), kDirFlags));
        struct stat opened;
        if (sub.get() < 0 || fstat(sub.get(), &opened) != 0 || !Same(st, opened)) {
          Skip(rel, "changed while it was read");
          continue;
        }
        if (absl::Status s = Walk(sub.get(), rel, depth + 1); !s.ok()) return s;
        continue;
      }
      if (!S_ISREG(st.st_mode)) {
        Skip(rel, KindOf(st.st_mode));
        continue;
      }
      if (st.st_uid != options.owner) {
        // A hard link to someone else's file (root's, another job's).
        Skip(rel, absl::StrCat("owned by another user (uid ", st.st_uid, ")"));
        continue;
      }
      Fd fd(openat(dirfd, name.c_str(), kFileFlags));
      struct stat opened;
      if (fd.get() < 0 || fstat(fd.get(), &opened) != 0 || !S_ISREG(opened.st_mode) ||
          !Same(st, opened) || opened.st_uid != options.owner) {
        Skip(rel, "changed while it was read");
        continue;
      }
      if (static_cast<int64_t>(report.collected.size()) >= options.max_files ||
          report.bytes + opened.st_size > options.max_bytes) {
        report.over_limit = true;
        return absl::OkStatus();
      }
      if (absl::Status s = take(OutputFile{rel, fd.get(), opened.st_size}); !s.ok()) return s;
      report.bytes += opened.st_size;
      report.collected.push_back(rel);
    }
    return absl::OkStatus();
  }
};

void Measure(int dirfd, int depth, int64_t max_entries, TreeUsage& usage, bool& truncated) {
  for (const std::string& name : Names(dirfd)) {
    if (truncated) return;
    struct stat st;
    if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    usage.bytes +=
        std::max<int64_t>(S_ISREG(st.st_mode) ? st.st_size : 0, int64_t{st.st_blocks} * 512);
    if (++usage.entries > max_entries) {
      truncated = true;
      return;
    }
    if (!S_ISDIR(st.st_mode)) continue;
    if (depth + 1 >= kMaxMeasureDepth) {
      truncated = true;
      return;
    }
    Fd sub(openat(dirfd, name.c_str(), kDirFlags));
    if (sub.get() >= 0) Measure(sub.get(), depth + 1, max_entries, usage, truncated);
  }
}

}  // namespace

absl::StatusOr<CollectReport> CollectOutputs(
    const std::string& dir, const CollectOptions& options,
    const std::function<absl::Status(const OutputFile&)>& take) {
  Fd root(open(dir.c_str(), kDirFlags));
  if (root.get() < 0) {
    const int e = errno;
    if (e == ENOENT) return absl::NotFoundError(absl::StrCat("no output directory ", dir));
    if (e == ELOOP || e == ENOTDIR) {
      return absl::FailedPreconditionError(
          absl::StrCat("the output directory ", dir, " is not a directory"));
    }
    return absl::UnavailableError(absl::StrCat("cannot open ", dir, ": ", std::strerror(e)));
  }
  Walker walker{options, take, {}};
  if (absl::Status s = walker.Walk(root.get(), "", 0); !s.ok()) return s;
  return std::move(walker.report);
}

TreeUsage MeasureTree(const std::string& dir, int64_t max_entries) {
  TreeUsage usage;
  Fd root(open(dir.c_str(), kDirFlags));
  if (root.get() < 0) return usage;
  bool truncated = false;
  Measure(root.get(), 0, max_entries, usage, truncated);
  if (truncated) usage.entries = std::max(usage.entries, max_entries + 1);
  return usage;
}

}  // namespace trainmesh::scriptrun
