// The ids the mesh's tables are keyed by are UUIDs (uuid columns). A string of
// any other form names nothing: callers answer NOT_FOUND or a field violation
// before it reaches SQL, where it would be an error.
#pragma once

#include "absl/strings/string_view.h"

namespace trainmesh::pg {

// True for the textual form of a UUID (8-4-4-4-12 hex digits, either case).
bool IsUuid(absl::string_view id);

}  // namespace trainmesh::pg
