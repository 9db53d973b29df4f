// Fast JSON for google.protobuf.Struct (hyperparameters, labels) and JSON
// string escaping. protobuf's JsonFormat is general but slow (it walks type
// descriptors for every value); these run on every CreateJob and every job
// row read, so they are written out by hand.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"

namespace trainmesh::json {

// Appends `s` as a JSON string literal (quotes included).
void AppendString(std::string* out, absl::string_view s);

// Compact JSON; numbers in their shortest round-trip form; NaN and infinities
// (which JSON cannot express) as null.
std::string FromStruct(const google::protobuf::Struct& s);
void AppendValue(std::string* out, const google::protobuf::Value& v);

struct ParseOptions {
  // Accept the literals NaN, Infinity and -Infinity (not JSON, but what
  // Python's json.dumps writes for non-finite floats).
  bool allow_nonfinite = false;
};

// Parses a JSON object. INVALID_ARGUMENT with the offset of the first error.
absl::Status ToStruct(absl::string_view text, google::protobuf::Struct* out,
                      ParseOptions options = {});

}  // namespace trainmesh::json
