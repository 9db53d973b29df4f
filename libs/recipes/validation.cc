#include "libs/recipes/validation.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "libs/recipes/dataset_url.h"
#include "libs/recipes/recipes.h"

namespace trainmesh::recipes {
namespace {

using google::protobuf::Value;
using trainmesh::v1::ParameterSpec;

constexpr size_t kMaxStringBytes = 4096;
constexpr double kMaxExactInt = 9007199254740992.0;  // 2^53
std::string FormatNumber(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrCat(static_cast<int64_t>(v));
  return absl::StrCat(v);
}

const char* KindName(const Value& v) {
  switch (v.kind_case()) {
    case Value::kNumberValue: return "a number";
    case Value::kStringValue: return "a string";
    case Value::kBoolValue: return "a boolean";
    case Value::kListValue: return "a list";
    case Value::kStructValue: return "an object";
    case Value::kNullValue: return "null";
    default: return "nothing";
  }
}

// Checks one number against type and bounds; returns an error text or "".
std::string CheckNumber(const ParameterSpec& spec, double v, bool integer) {
  if (!std::isfinite(v)) return "must be a finite number";
  if (integer && (v != std::floor(v) || std::fabs(v) > kMaxExactInt)) {
    return absl::StrCat("must be an integer, got ", v);
  }
  if (spec.has_min() && v < spec.min()) {
    return absl::StrCat("must be >= ", FormatNumber(spec.min()), ", got ", FormatNumber(v));
  }
  if (spec.has_max() && v > spec.max()) {
    return absl::StrCat("must be <= ", FormatNumber(spec.max()), ", got ", FormatNumber(v));
  }
  return "";
}

// Returns an error text, or "" when `v` fits `spec`.
std::string CheckValue(const ParameterSpec& spec, const Value& v) {
  switch (spec.type()) {
    case ParameterSpec::INT:
    case ParameterSpec::FLOAT:
      if (v.kind_case() != Value::kNumberValue) {
        return absl::StrCat("must be ", spec.type() == ParameterSpec::INT ? "an integer" : "a number",
                            ", got ", KindName(v));
      }
      return CheckNumber(spec, v.number_value(), spec.type() == ParameterSpec::INT);
    case ParameterSpec::STRING: {
      if (v.kind_case() != Value::kStringValue) {
        return absl::StrCat("must be a string, got ", KindName(v));
      }
      if (v.string_value().size() > kMaxStringBytes) {
        return absl::StrCat("must be at most ", kMaxStringBytes, " bytes");
      }
      if (spec.required() && absl::StripAsciiWhitespace(v.string_value()).empty()) {
        return "must not be empty";
      }
      if (spec.allowed_values_size() > 0) {
        for (const auto& a : spec.allowed_values()) {
          if (a == v.string_value()) return "";
        }
        return absl::StrCat("must be one of ", absl::StrJoin(spec.allowed_values(), ", "),
                            ", got \"", v.string_value(), "\"");
      }
      return "";
    }
    case ParameterSpec::BOOL:
      if (v.kind_case() != Value::kBoolValue) {
        return absl::StrCat("must be true or false, got ", KindName(v));
      }
      return "";
    case ParameterSpec::INT_LIST:
    case ParameterSpec::STRING_LIST: {
      const bool ints = spec.type() == ParameterSpec::INT_LIST;
      if (v.kind_case() != Value::kListValue) {
        return absl::StrCat("must be a list of ", ints ? "integers" : "strings", ", got ",
                            KindName(v));
      }
      const int n = v.list_value().values_size();
      if (n < spec.min_items()) {
        return absl::StrCat("must have at least ", spec.min_items(), " item(s)");
      }
      if (spec.max_items() > 0 && n > spec.max_items()) {
        return absl::StrCat("must have at most ", spec.max_items(), " items");
      }
      for (int i = 0; i < n; ++i) {
        const Value& item = v.list_value().values(i);
        std::string error;
        if (ints) {
          error = item.kind_case() == Value::kNumberValue
                      ? CheckNumber(spec, item.number_value(), true)
                      : absl::StrCat("must be an integer, got ", KindName(item));
        } else if (item.kind_case() != Value::kStringValue) {
          error = absl::StrCat("must be a string, got ", KindName(item));
        } else if (item.string_value().size() > kMaxStringBytes) {
          error = absl::StrCat("must be at most ", kMaxStringBytes, " bytes");
        }
        if (!error.empty()) return absl::StrCat("item ", i, " ", error);
      }
      return "";
    }
    default:
      return "has an unsupported type";
  }
}

double NumberOr(const google::protobuf::Struct& s, const std::string& key, double fallback) {
  auto it = s.fields().find(key);
  if (it == s.fields().end() || it->second.kind_case() != Value::kNumberValue) return fallback;
  return it->second.number_value();
}

// Rules that involve several parameters.
void CheckCrossField(const trainmesh::v1::Recipe& recipe, const google::protobuf::Struct& resolved,
                     const std::string& prefix, status::FieldViolations* violations) {
  if (recipe.name() == kLoraLm) {
    const double d_model = NumberOr(resolved, "d_model", 0);
    const double heads = NumberOr(resolved, "n_heads", 0);
    if (heads >= 1 && std::fmod(d_model, heads) != 0) {
      violations->Add(absl::StrCat(prefix, ".n_heads"),
                      absl::StrCat("must divide d_model (", FormatNumber(d_model), ")"));
    }
  }
  if (recipe.name() == kTabular) {
    const double held_out = NumberOr(resolved, "val_fraction", 0) +
                            NumberOr(resolved, "test_fraction", 0);
    if (held_out > 0.9) {
      violations->Add(absl::StrCat(prefix, ".test_fraction"),
                      "val_fraction + test_fraction must leave at least 10% for training");
    }
  }
}

}  // namespace

google::protobuf::Struct ResolveHyperparameters(const trainmesh::v1::Recipe& recipe,
                                                const google::protobuf::Struct& given,
                                                const std::string& field_prefix,
                                                status::FieldViolations* violations) {
  google::protobuf::Struct resolved;
  std::vector<std::string> known;
  for (const ParameterSpec& spec : recipe.parameters()) known.push_back(spec.name());
  // Unknown keys, reported in a stable (sorted) order.
  std::vector<std::string> unknown;
  for (const auto& [key, value] : given.fields()) {
    if (recipe.parameters().end() ==
        std::find_if(recipe.parameters().begin(), recipe.parameters().end(),
                     [&key = key](const ParameterSpec& s) { return s.name() == key; })) {
      unknown.push_back(key);
    }
  }
  std::sort(unknown.begin(), unknown.end());
  for (const std::string& key : unknown) {
    violations->Add(absl::StrCat(field_prefix, ".", key),
                    absl::StrCat("unknown hyperparameter for recipe ", recipe.name(),
                                 "; known: ", absl::StrJoin(known, ", ")));
  }
  for (const ParameterSpec& spec : recipe.parameters()) {
    const std::string field = absl::StrCat(field_prefix, ".", spec.name());
    auto it = given.fields().find(spec.name());
    const bool present = it != given.fields().end() && it->second.kind_case() != Value::kNullValue &&
                         it->second.kind_case() != Value::KIND_NOT_SET;
    if (!present) {
      if (spec.required()) {
        violations->Add(field, absl::StrCat("is required by recipe ", recipe.name()));
      } else {
        (*resolved.mutable_fields())[spec.name()] = spec.default_value();
      }
      continue;
    }
    std::string error = CheckValue(spec, it->second);
    if (!error.empty()) {
      violations->Add(field, error);
      continue;
    }
    (*resolved.mutable_fields())[spec.name()] = it->second;
  }
  CheckCrossField(recipe, resolved, field_prefix, violations);
  return resolved;
}

std::optional<DatasetRef> ValidateDatasetUrl(const trainmesh::v1::Recipe* recipe, absl::string_view url,
                                             const std::string& field, status::FieldViolations* violations) {
  auto ref = ParseDatasetUrl(url);
  if (!ref.ok()) {
    violations->Add(field, std::string(ref.status().message()));
    return std::nullopt;
  }
  if (recipe != nullptr && ref->synthetic()) {
    std::vector<std::string> generators = SyntheticDatasets(recipe->name());
    if (std::find(generators.begin(), generators.end(), ref->generator) == generators.end()) {
      violations->Add(field, absl::StrCat("unknown synthetic dataset ", ref->generator,
                                          " for recipe ", recipe->name(),
                                          "; it has: ", absl::StrJoin(generators, ", ")));
      return std::nullopt;
    }
  }
  return *std::move(ref);
}

}  // namespace trainmesh::recipes
