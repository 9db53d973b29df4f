#include "libs/recipes/manifest.h"

#include <algorithm>
#include <cmath>

#include "google/protobuf/util/time_util.h"
#include "libs/json/json.h"

namespace trainmesh::recipes {

using google::protobuf::Struct;
using google::protobuf::Value;

ModelManifest ManifestOf(const trainmesh::v1::Job& job, int attempt) {
  ModelManifest m;
  m.job_id = job.id();
  m.owner = job.owner();
  m.recipe = job.model();
  m.dataset_url = job.dataset_url();
  m.hyperparameters = job.hyperparameters();
  m.attempt = attempt;
  return m;
}

std::string ManifestJson(const ModelManifest& m) {
  Struct meta;
  auto& f = *meta.mutable_fields();
  f["format"].set_string_value(std::string(kManifestFormat));
  f["job_id"].set_string_value(m.job_id);
  f["owner"].set_string_value(m.owner);
  f["recipe"].set_string_value(m.recipe);
  f["dataset_url"].set_string_value(m.dataset_url);
  *f["hyperparameters"].mutable_struct_value() = m.hyperparameters;
  if (!m.architecture.fields().empty()) *f["architecture"].mutable_struct_value() = m.architecture;
  f["step"].set_number_value(static_cast<double>(m.step));
  f["attempt"].set_number_value(m.attempt);
  if (!m.trained_on.empty()) f["trained_on"].set_string_value(m.trained_on);
  if (!m.weights.empty()) f["weights"].set_string_value(m.weights);
  f["created"].set_string_value(google::protobuf::util::TimeUtil::ToString(
      google::protobuf::util::TimeUtil::GetCurrentTime()));
  auto* metrics = f["metrics"].mutable_struct_value()->mutable_fields();
  for (const auto& [name, value] : m.metrics) {
    if (std::isfinite(value)) (*metrics)[name].set_number_value(value);
  }
  return json::FromStruct(meta);
}

absl::StatusOr<ModelManifest> ParseManifest(absl::string_view json) {
  Struct meta;
  if (auto s = json::ToStruct(json, &meta); !s.ok()) {
    return absl::InvalidArgumentError("the model.json is not a JSON object");
  }
  const auto& f = meta.fields();
  auto get = [&](const char* name) -> const Value& {
    auto it = f.find(name);
    return it == f.end() ? Value::default_instance() : it->second;
  };
  if (get("format").string_value() != kManifestFormat) {
    return absl::InvalidArgumentError("the model.json is not a trainmesh model manifest");
  }
  ModelManifest m;
  m.job_id = get("job_id").string_value();
  m.owner = get("owner").string_value();
  m.recipe = get("recipe").string_value();
  m.dataset_url = get("dataset_url").string_value();
  m.hyperparameters = get("hyperparameters").struct_value();
  m.architecture = get("architecture").struct_value();
  // Bounded before the cast: a double past the integer's range is undefined.
  m.step = static_cast<int64_t>(std::clamp(get("step").number_value(), 0.0, 1e15));
  m.attempt = static_cast<int>(std::clamp(get("attempt").number_value(), 0.0, 1e6));
  m.trained_on = get("trained_on").string_value();
  m.weights = get("weights").string_value();
  for (const auto& [name, value] : get("metrics").struct_value().fields()) {
    if (value.kind_case() == Value::kNumberValue) m.metrics.emplace_back(name, value.number_value());
  }
  return m;
}

}  // namespace trainmesh::recipes
