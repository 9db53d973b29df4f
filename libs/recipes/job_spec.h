// The job spec: what a job asks for, resolved once against the recipe
// registry into typed, complete parameters and a parsed dataset reference.
// The jobs service resolves a submission with it (and stores the complete
// hyperparameters); a trainer resolves the stored job with it again and reads
// only the typed values. No default lives anywhere but the recipe schemas in
// recipes.cc.
#pragma once

#include <cstdint>
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

namespace trainmesh::recipes {

// What every LibTorch recipe shares (recipes.cc: AddTrainingParameters).
struct TrainingParams {
  int64_t steps = 0;
  int64_t batch_size = 0;
  double learning_rate = 0;
  int64_t seed = 0;
  int64_t checkpoint_every = 0;
  double val_fraction = 0;
  // AdamW weight decay: lora-lm has no such parameter and trains without.
  double weight_decay = 0;
};

struct MlpPolicyParams {
  std::vector<int64_t> hidden_sizes;
  std::string activation;
  double dropout = 0;
};

struct TabularParams {
  std::string target_column;  // "": the last column
  std::string task;           // auto, classification, regression
  double test_fraction = 0;
  std::vector<int64_t> hidden_sizes;
  double dropout = 0;
};

struct LoraLmParams {
  int64_t context_length = 0;
  int64_t d_model = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t lora_rank = 0;
  double lora_alpha = 0;
  double lora_dropout = 0;
  std::string base_job;  // "": train a base model
  int64_t warmup_steps = 0;
  double grad_clip = 0;
};

struct ScriptParams {
  std::string command;
  std::vector<std::string> args;
  int64_t timeout_seconds = 0;  // 0: no limit
  int64_t total_steps = 0;      // 0: unknown
  int64_t seed = 0;
  bool network = false;
};

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
