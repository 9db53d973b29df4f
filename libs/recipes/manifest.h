// model.json, the manifest of a finished job's model: written by one function
// for every recipe (LibTorch and script alike) and read back by one (a
// lora-lm fine-tune reads its base job's).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"
#include "trainmesh/v1/jobs.pb.h"

namespace trainmesh::recipes {

inline constexpr absl::string_view kManifestFormat = "trainmesh-model/1";

struct ModelManifest {
  std::string job_id;
  std::string owner;
  std::string recipe;
  std::string dataset_url;
  google::protobuf::Struct hyperparameters;
  // The model's shape, enough to rebuild it (LibTorch recipes); empty for a
  // script.
  google::protobuf::Struct architecture;
  int64_t step = 0;
  int attempt = 0;
  std::string trained_on;  // "cpu", "cuda"; "" when not known
  std::string weights;     // "model.pt", or "" when there are none
  // The final metrics; non-finite values are left out.
  std::vector<std::pair<std::string, double>> metrics;
};

// The manifest of `job`'s attempt, its identity and spec filled in.
ModelManifest ManifestOf(const trainmesh::v1::Job& job, int attempt);

// JSON, stamped with the format and the time of writing.
std::string ManifestJson(const ModelManifest& manifest);

// INVALID_ARGUMENT when `json` is not a manifest.
absl::StatusOr<ModelManifest> ParseManifest(absl::string_view json);

}  // namespace trainmesh::recipes
