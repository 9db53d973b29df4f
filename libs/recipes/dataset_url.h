// The dataset URL grammar, the one place that knows it: what the jobs service
// accepts and what a trainer resolves are the same parse.
//
//   file:///<path>                  a file under the trainer's data root (no "..")
//   http(s)://host/…[#sha256=<hex>] a download, optionally pinned to its content
//   synthetic://<generator>?k=v&…   a generated dataset
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace trainmesh::recipes {

// How libs/datasets reads an http(s) dataset URL's content pin: its fragment
// (never sent), "sha256=" and 64 hex digits.
inline constexpr absl::string_view kPinGrammar = "#sha256=<64 hex digits>";

struct DatasetRef {
  enum class Scheme { kFile, kHttp, kSynthetic };
  Scheme scheme = Scheme::kSynthetic;
  // kFile: the percent-decoded path below the data root, starting with "/".
  std::string path;
  // kHttp: the URL to fetch (without its fragment) and its pin, lowercase hex
  // ("" when unpinned).
  std::string url;
  std::string sha256;
  // kSynthetic: the generator and its percent-decoded parameters.
  std::string generator;
  std::map<std::string, std::string> params;

  bool synthetic() const { return scheme == Scheme::kSynthetic; }
};

// INVALID_ARGUMENT whose message completes "the dataset URL …" ("must name a
// host"), for a field violation or an error.
absl::StatusOr<DatasetRef> ParseDatasetUrl(absl::string_view url);

}  // namespace trainmesh::recipes
