// Validation of what a user submits against the recipe registry: each problem
// becomes a field violation naming the exact field, so a form can show it next
// to the input and a CLI user knows what to fix.
#pragma once

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"
#include "libs/recipes/dataset_url.h"
#include "libs/status/field_violations.h"
#include "trainmesh/v1/recipes.pb.h"

namespace trainmesh::recipes {

// Checks `given` against `recipe`'s schema and returns the complete
// hyperparameters with defaults filled in. Unknown keys, wrong types,
// out-of-range values, missing required values and cross-field rules each add
// a violation at "<field_prefix>.<name>". A JSON null means "the default".
google::protobuf::Struct ResolveHyperparameters(const trainmesh::v1::Recipe& recipe,
                                                const google::protobuf::Struct& given,
                                                const std::string& field_prefix,
                                                status::FieldViolations* violations);

// file:///path (relative to the trainer's data root, no ".."), http(s)://host/…,
// or synthetic://<generator>?k=v… where the generator is one `recipe` reads
// (any generator when recipe is null). The parsed reference when it is valid;
// else what is wrong is added to `violations`.
std::optional<DatasetRef> ValidateDatasetUrl(const trainmesh::v1::Recipe* recipe, absl::string_view url,
                                             const std::string& field, status::FieldViolations* violations);

}  // namespace trainmesh::recipes
