// libFuzzer target for the dataset URL grammar: any input is refused with
// INVALID_ARGUMENT or parsed into a reference that keeps the grammar's
// promises (a file path stays below the data root, a pin is 64 lowercase hex
// digits, the URL to fetch carries no fragment), and a parsed http(s)
// reference written back parses to the same reference.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/recipes/dataset_url.h"

namespace {

using trainmesh::recipes::DatasetRef;

void Check(bool ok) {
  if (!ok) std::abort();
}

bool LowerHex(const std::string& s) {
  for (char c : s) {
    if (!absl::ascii_isdigit(c) && !(c >= 'a' && c <= 'f')) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<DatasetRef> ref = trainmesh::recipes::ParseDatasetUrl(input);
  if (!ref.ok()) {
    Check(absl::IsInvalidArgument(ref.status()) && !ref.status().message().empty());
    return 0;
  }
  switch (ref->scheme) {
    case DatasetRef::Scheme::kFile:
      Check(absl::StartsWith(ref->path, "/") && ref->path.size() >= 2);
      Check(ref->path.find('\0') == std::string::npos);
      for (absl::string_view part : absl::StrSplit(ref->path, '/')) Check(part != "..");
      break;
    case DatasetRef::Scheme::kHttp: {
      Check(absl::StartsWithIgnoreCase(ref->url, "http://") ||
            absl::StartsWithIgnoreCase(ref->url, "https://"));
      Check(ref->url.find('#') == std::string::npos);
      Check(ref->sha256.empty() || (ref->sha256.size() == 64 && LowerHex(ref->sha256)));
      const std::string again =
          ref->sha256.empty() ? ref->url : absl::StrCat(ref->url, "#sha256=", ref->sha256);
      absl::StatusOr<DatasetRef> reparsed = trainmesh::recipes::ParseDatasetUrl(again);
      Check(reparsed.ok() && reparsed->scheme == DatasetRef::Scheme::kHttp &&
            reparsed->url == ref->url && reparsed->sha256 == ref->sha256);
      break;
    }
    case DatasetRef::Scheme::kSynthetic:
      Check(!ref->generator.empty() && ref->generator.find('?') == std::string::npos);
      for (const auto& [key, value] : ref->params) Check(!key.empty());
      break;
  }
  return 0;
}
