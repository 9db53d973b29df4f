// Where a job's data comes from (torch-free): file:// under a data root (no
// ".." or symlink escapes), http(s):// downloaded with a size limit and an
// optional checksum (URL fragment "#sha256=<hex>"), synthetic://<name>?k=v.
// Every problem is the user's (a bad URL, a missing file): INVALID_ARGUMENT
// or NOT_FOUND with a message meant for them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace trainmesh::datasets {

struct DatasetOptions {
  std::string data_root;
  std::string cache_dir;
  int64_t max_download_bytes = int64_t{2} << 30;
  absl::Duration download_timeout = absl::Minutes(10);
};

struct Source {
  // A local file, or a generator with parameters.
  std::string path;
  std::string generator;
  std::map<std::string, std::string> params;

  bool synthetic() const { return !generator.empty(); }
  // A numeric parameter, or `fallback`; INVALID_ARGUMENT when not a number.
  absl::StatusOr<double> Number(const std::string& key, double fallback) const;
};

absl::StatusOr<Source> Resolve(absl::string_view url, const DatasetOptions& options);

// A CSV file with a header row (RFC 4180 quoting).
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};
absl::StatusOr<Table> ReadCsv(const std::string& path, size_t max_rows = 50'000'000);

absl::StatusOr<std::string> ReadText(const std::string& path, int64_t max_bytes);

}  // namespace trainmesh::datasets
