// The job spec: what a job asks for, resolved once against the recipe
// registry into typed, complete parameters and a parsed dataset reference.
// The jobs service resolves a submission with it (and stores the complete
// hyperparameters); a trainer resolves the stored job with it again and reads
// only the typed values. No default lives anywhere but the recipe schemas in
// recipes.cc.
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"
#include "libs/recipes/dataset_url.h"
#include "libs/status/field_violations.h"
#include "trainmesh/v1/jobs.pb.h"
#include "trainmesh/v1/params.pb.h"

namespace trainmesh::recipes {

// Each recipe's typed parameters (protos/trainmesh/v1/params.proto: a field
// per hyperparameter of the schema).
using TrainingParams = trainmesh::v1::TrainingParams;
using MlpPolicyParams = trainmesh::v1::MlpPolicyParams;
using TabularParams = trainmesh::v1::TabularParams;
using LoraLmParams = trainmesh::v1::LoraLmParams;
using ScriptParams = trainmesh::v1::ScriptParams;

struct JobSpec {
  std::string recipe;
  // Complete: every parameter of the recipe, defaults filled in.
  google::protobuf::Struct hyperparameters;
  DatasetRef dataset;
  // Present for the LibTorch recipes (all but script).
  std::optional<TrainingParams> training;
  std::variant<MlpPolicyParams, TabularParams, LoraLmParams, ScriptParams> params;
};

// Resolves a submission: the recipe name at "<prefix>.model", its
// hyperparameters at "<prefix>.hyperparameters.<name>", the dataset URL at
// "<prefix>.dataset_url". nullopt when anything is wrong (each problem is in
// `violations`).
std::optional<JobSpec> ResolveJobSpec(absl::string_view recipe,
                                      const google::protobuf::Struct& hyperparameters,
                                      absl::string_view dataset_url, const std::string& prefix,
                                      status::FieldViolations* violations);

// A stored job, as a trainer resolves it. INVALID_ARGUMENT naming every
// problem (a job stored before a schema change may no longer resolve).
absl::StatusOr<JobSpec> ResolveJobSpec(const trainmesh::v1::Job& job);

// "mlp-policy, lora-lm, …" for messages.
std::string RecipeNames();

}  // namespace trainmesh::recipes
