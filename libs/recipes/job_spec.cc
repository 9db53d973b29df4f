#include "libs/recipes/job_spec.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/recipes/recipes.h"
#include "libs/recipes/validation.h"

namespace trainmesh::recipes {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

// Fills `params` from a resolved (complete, checked) Struct: each field is the
// parameter of its name, of the matching type. A field the recipe lacks is
// allowed only where it is `optional` in params.proto; any other mismatch
// between params.proto and the schemas is this library's bug (the tests
// resolve every recipe), reported as an internal error.
absl::Status Fill(const Struct& hp, google::protobuf::Message* params) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Descriptor& d = *params->GetDescriptor();
  const google::protobuf::Reflection& r = *params->GetReflection();
  for (int i = 0; i < d.field_count(); ++i) {
    const FieldDescriptor* f = d.field(i);
    auto it = hp.fields().find(f->name());
    if (it == hp.fields().end()) {
      if (f->has_optional_keyword()) continue;
      return absl::InternalError(absl::StrCat(d.name(), ".", f->name(), ": no such parameter"));
    }
    const Value& v = it->second;
    const bool list = v.kind_case() == Value::kListValue;
    if (f->is_repeated() != list) {
      return absl::InternalError(absl::StrCat(d.name(), ".", f->name(), ": list mismatch"));
    }
    // One value into the field (appended where it is repeated).
    auto put = [&](const Value& e) -> absl::Status {
      const Value::KindCase kind =
          f->cpp_type() == FieldDescriptor::CPPTYPE_STRING ? Value::kStringValue
          : f->cpp_type() == FieldDescriptor::CPPTYPE_BOOL ? Value::kBoolValue
                                                           : Value::kNumberValue;
      if (e.kind_case() != kind) {
        return absl::InternalError(absl::StrCat(d.name(), ".", f->name(), ": type mismatch"));
      }
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT64: {
          const auto n = static_cast<int64_t>(e.number_value());
          f->is_repeated() ? r.AddInt64(params, f, n) : r.SetInt64(params, f, n);
          return absl::OkStatus();
        }
        case FieldDescriptor::CPPTYPE_DOUBLE:
          r.SetDouble(params, f, e.number_value());
          return absl::OkStatus();
        case FieldDescriptor::CPPTYPE_STRING:
          f->is_repeated() ? r.AddString(params, f, e.string_value())
                           : r.SetString(params, f, e.string_value());
          return absl::OkStatus();
        case FieldDescriptor::CPPTYPE_BOOL:
          r.SetBool(params, f, e.bool_value());
          return absl::OkStatus();
        default:
          return absl::InternalError(absl::StrCat(d.name(), ".", f->name(), ": unsupported type"));
      }
    };
    if (!list) {
      if (absl::Status s = put(v); !s.ok()) return s;
      continue;
    }
    for (const Value& e : v.list_value().values()) {
      if (absl::Status s = put(e); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

// The recipe's typed parameters from the complete hyperparameters.
absl::Status Type(JobSpec* spec) {
  const Struct& hp = spec->hyperparameters;
  if (spec->recipe == kScript) return Fill(hp, &spec->params.emplace<ScriptParams>());
  if (absl::Status s = Fill(hp, &spec->training.emplace()); !s.ok()) return s;
  if (spec->recipe == kMlpPolicy) return Fill(hp, &spec->params.emplace<MlpPolicyParams>());
  if (spec->recipe == kTabular) return Fill(hp, &spec->params.emplace<TabularParams>());
  if (spec->recipe == kLoraLm) return Fill(hp, &spec->params.emplace<LoraLmParams>());
  return absl::InternalError(absl::StrCat("no typed parameters for recipe ", spec->recipe));
}

}  // namespace

std::string RecipeNames() {
  std::vector<std::string> names;
  for (const auto& r : Recipes()) names.push_back(r.name());
  return absl::StrJoin(names, ", ");
}

std::optional<JobSpec> ResolveJobSpec(absl::string_view recipe_name, const Struct& hyperparameters,
                                      absl::string_view dataset_url, const std::string& prefix,
                                      status::FieldViolations* violations) {
  const size_t before = violations->violations().size();
  const trainmesh::v1::Recipe* recipe = FindRecipe(recipe_name);
  if (recipe_name.empty()) {
    violations->Add(absl::StrCat(prefix, ".model"),
                    absl::StrCat("is required: one of ", RecipeNames()));
  } else if (recipe == nullptr) {
    violations->Add(absl::StrCat(prefix, ".model"),
                    absl::StrCat("unknown recipe \"", recipe_name, "\"; one of ", RecipeNames()));
  }
  const std::string url_field = absl::StrCat(prefix, ".dataset_url");
  std::optional<DatasetRef> dataset = ValidateDatasetUrl(recipe, dataset_url, url_field, violations);
  JobSpec spec;
  if (recipe != nullptr) {
    spec.recipe = recipe->name();
    spec.hyperparameters = ResolveHyperparameters(
        *recipe, hyperparameters, absl::StrCat(prefix, ".hyperparameters"), violations);
  }
  if (violations->violations().size() != before) return std::nullopt;
  spec.dataset = *std::move(dataset);  // set when nothing was violated
  if (absl::Status typed = Type(&spec); !typed.ok()) {
    violations->Add(absl::StrCat(prefix, ".model"), std::string(typed.message()));
    return std::nullopt;
  }
  return spec;
}

absl::StatusOr<JobSpec> ResolveJobSpec(const trainmesh::v1::Job& job) {
  status::FieldViolations violations;
  auto spec =
      ResolveJobSpec(job.model(), job.hyperparameters(), job.dataset_url(), "job", &violations);
  if (!spec.has_value()) return violations.ToStatus("the job does not resolve");
  return *std::move(spec);
}

}  // namespace trainmesh::recipes
