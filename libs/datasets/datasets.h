// Where a job's data comes from (torch-free): file:// under a data root (no
// ".." or symlink escapes), http(s):// downloaded with a size limit and an
// optional content pin (the URL fragment "#sha256=<64 hex digits>"),
// synthetic://<name>?k=v. A download reaches only outward addresses (see
// libs/netpolicy): every address it connects to, on every redirect, is
// checked after resolution, and errors name the host and the HTTP status,
// never the URL's query (it may carry a credential) nor a byte of the
// response. Every problem is the user's (a bad URL, a missing file):
// INVALID_ARGUMENT, NOT_FOUND or PERMISSION_DENIED with a message meant for
// them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/datasets/formats.h"
#include "libs/netpolicy/address_policy.h"
#include "libs/recipes/dataset_url.h"

namespace trainmesh::datasets {

struct DatasetOptions {
  std::string data_root;
  std::string cache_dir;
  int64_t max_download_bytes = int64_t{2} << 30;
  absl::Duration download_timeout = absl::Minutes(10);
  // Which addresses downloads may reach; the default refuses every inward one.
  netpolicy::Policy address_policy;
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

// The local file or generator a parsed dataset URL names, downloading an http(s)
// one into options.cache_dir (a download is reused while its pin matches).
// INVALID_ARGUMENT for a malformed URL or pin, a download over the size limit
// or not matching its pin; PERMISSION_DENIED for an address the policy
// refuses; NOT_FOUND for a missing file, an HTTP error or a host that cannot
// be reached; FAILED_PRECONDITION when the options lack a data root or cache.
absl::StatusOr<Source> Resolve(const recipes::DatasetRef& ref, const DatasetOptions& options);

// A CSV file (see ParseCsv). NOT_FOUND when it cannot be read.
absl::StatusOr<Table> ReadCsv(const std::string& path, size_t max_rows = 50'000'000);

// At most `max_bytes` of a file. NOT_FOUND when it cannot be read.
absl::StatusOr<std::string> ReadText(const std::string& path, int64_t max_bytes);

}  // namespace trainmesh::datasets
