#include "libs/recipes/job_spec.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/recipes/recipes.h"
#include "libs/recipes/validation.h"

namespace trainmesh::recipes {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

// Readers of a resolved (complete, checked) Struct: every name is present
// with its schema's type, so there is nothing to fall back to.
class Reader {
 public:
  explicit Reader(const Struct& s) : s_(s) {}
  const Value& operator[](const std::string& name) const {
    auto it = s_.fields().find(name);
    return it == s_.fields().end() ? Value::default_instance() : it->second;
  }
  double Float(const std::string& name) const { return (*this)[name].number_value(); }
  int64_t Int(const std::string& name) const { return static_cast<int64_t>(Float(name)); }
  const std::string& String(const std::string& name) const {
    return (*this)[name].string_value();
  }
  bool Bool(const std::string& name) const { return (*this)[name].bool_value(); }
  std::vector<int64_t> Ints(const std::string& name) const {
    std::vector<int64_t> out;
    for (const Value& v : (*this)[name].list_value().values()) {
      out.push_back(static_cast<int64_t>(v.number_value()));
    }
    return out;
  }
  std::vector<std::string> Strings(const std::string& name) const {
    std::vector<std::string> out;
    for (const Value& v : (*this)[name].list_value().values()) out.push_back(v.string_value());
    return out;
  }
  bool Has(const std::string& name) const { return s_.fields().count(name) > 0; }

 private:
  const Struct& s_;
};

TrainingParams Training(const Reader& hp) {
  TrainingParams t;
  t.steps = hp.Int("steps");
  t.batch_size = hp.Int("batch_size");
  t.learning_rate = hp.Float("learning_rate");
  t.seed = hp.Int("seed");
  t.checkpoint_every = hp.Int("checkpoint_every");
  t.val_fraction = hp.Float("val_fraction");
  if (hp.Has("weight_decay")) t.weight_decay = hp.Float("weight_decay");
  return t;
}

void Type(JobSpec* spec) {
  const Reader hp(spec->hyperparameters);
  if (spec->recipe == kScript) {
    ScriptParams p;
    p.command = hp.String("command");
    p.args = hp.Strings("args");
    p.timeout_seconds = hp.Int("timeout_seconds");
    p.total_steps = hp.Int("total_steps");
    p.seed = hp.Int("seed");
    p.network = hp.Bool("network");
    spec->params = std::move(p);
    return;
  }
  spec->training = Training(hp);
  if (spec->recipe == kMlpPolicy) {
    MlpPolicyParams p;
    p.hidden_sizes = hp.Ints("hidden_sizes");
    p.activation = hp.String("activation");
    p.dropout = hp.Float("dropout");
    spec->params = std::move(p);
  } else if (spec->recipe == kTabular) {
    TabularParams p;
    p.target_column = hp.String("target_column");
    p.task = hp.String("task");
    p.test_fraction = hp.Float("test_fraction");
    p.hidden_sizes = hp.Ints("hidden_sizes");
    p.dropout = hp.Float("dropout");
    spec->params = std::move(p);
  } else if (spec->recipe == kLoraLm) {
    LoraLmParams p;
    p.context_length = hp.Int("context_length");
    p.d_model = hp.Int("d_model");
    p.n_layers = hp.Int("n_layers");
    p.n_heads = hp.Int("n_heads");
    p.lora_rank = hp.Int("lora_rank");
    p.lora_alpha = hp.Float("lora_alpha");
    p.lora_dropout = hp.Float("lora_dropout");
    p.base_job = hp.String("base_job");
    p.warmup_steps = hp.Int("warmup_steps");
    p.grad_clip = hp.Float("grad_clip");
    spec->params = std::move(p);
  }
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
    violations->Add(absl::StrCat(prefix, ".model"), absl::StrCat("is required: one of ", RecipeNames()));
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
  Type(&spec);
  return spec;
}

absl::StatusOr<JobSpec> ResolveJobSpec(const trainmesh::v1::Job& job) {
  status::FieldViolations violations;
  auto spec = ResolveJobSpec(job.model(), job.hyperparameters(), job.dataset_url(), "job",
                             &violations);
  if (!spec.has_value()) return violations.ToStatus("the job does not resolve");
  return *std::move(spec);
}

}  // namespace trainmesh::recipes
