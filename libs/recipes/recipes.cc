#include "libs/recipes/recipes.h"

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"

namespace trainmesh::recipes {
namespace {

using trainmesh::v1::ParameterSpec;
using trainmesh::v1::Recipe;

constexpr double kMaxSteps = 1e9;

ParameterSpec Number(ParameterSpec::Type type, const std::string& name, double default_value,
                     double min, double max, const std::string& group, const std::string& help) {
  ParameterSpec p;
  p.set_name(name);
  p.set_type(type);
  p.mutable_default_value()->set_number_value(default_value);
  p.set_min(min);
  p.set_max(max);
  p.set_group(group);
  p.set_help(help);
  return p;
}

ParameterSpec Int(const std::string& name, double default_value, double min, double max,
                  const std::string& group, const std::string& help) {
  return Number(ParameterSpec::INT, name, default_value, min, max, group, help);
}

ParameterSpec Float(const std::string& name, double default_value, double min, double max,
                    const std::string& group, const std::string& help) {
  return Number(ParameterSpec::FLOAT, name, default_value, min, max, group, help);
}

ParameterSpec String(const std::string& name, std::optional<std::string> default_value,
                     std::vector<std::string> allowed, const std::string& group,
                     const std::string& help) {
  ParameterSpec p;
  p.set_name(name);
  p.set_type(ParameterSpec::STRING);
  if (default_value.has_value()) {
    p.mutable_default_value()->set_string_value(*default_value);
  } else {
    p.set_required(true);
  }
  for (auto& a : allowed) p.add_allowed_values(a);
  p.set_group(group);
  p.set_help(help);
  return p;
}

ParameterSpec Bool(const std::string& name, bool default_value, const std::string& group,
                   const std::string& help) {
  ParameterSpec p;
  p.set_name(name);
  p.set_type(ParameterSpec::BOOL);
  p.mutable_default_value()->set_bool_value(default_value);
  p.set_group(group);
  p.set_help(help);
  return p;
}

ParameterSpec IntList(const std::string& name, std::vector<int> default_value, double min,
                      double max, int min_items, int max_items, const std::string& group,
                      const std::string& help) {
  ParameterSpec p;
  p.set_name(name);
  p.set_type(ParameterSpec::INT_LIST);
  auto* list = p.mutable_default_value()->mutable_list_value();
  for (int v : default_value) list->add_values()->set_number_value(v);
  p.set_min(min);
  p.set_max(max);
  p.set_min_items(min_items);
  p.set_max_items(max_items);
  p.set_group(group);
  p.set_help(help);
  return p;
}

ParameterSpec StringList(const std::string& name, int max_items, const std::string& group,
                         const std::string& help) {
  ParameterSpec p;
  p.set_name(name);
  p.set_type(ParameterSpec::STRING_LIST);
  p.mutable_default_value()->mutable_list_value();
  p.set_max_items(max_items);
  p.set_group(group);
  p.set_help(help);
  return p;
}

// What every LibTorch recipe shares.
void AddTrainingParameters(Recipe* r, double default_steps, double default_batch,
                           double default_lr) {
  *r->add_parameters() =
      Int("steps", default_steps, 1, kMaxSteps, "training", "Optimizer steps to train for.");
  *r->add_parameters() =
      Int("batch_size", default_batch, 1, 65536, "training", "Examples per optimizer step.");
  *r->add_parameters() =
      Float("learning_rate", default_lr, 1e-8, 10, "training", "Optimizer learning rate.");
  *r->add_parameters() = Int("seed", 0, 0, 2147483647, "training",
                             "Random seed for initialisation, shuffling and data splits.");
  *r->add_parameters() =
      Int("checkpoint_every", 500, 0, kMaxSteps, "training",
          "Save a checkpoint every this many steps (0: only at the end). A requeued or "
          "resumed job continues from the latest one.");
  *r->add_parameters() =
      Float("val_fraction", 0.1, 0, 0.5, "data", "Share of the dataset held out for validation.");
}

std::vector<Recipe> Build() {
  std::vector<Recipe> out;
  {
    Recipe r;
    r.set_name(std::string(kMlpPolicy));
    r.set_title("MLP policy (behaviour cloning)");
    r.set_description(
        "Learns a policy that maps observations to actions from demonstrations (the robotics "
        "case). The dataset is a CSV or synthetic set of (observation, action) rows; the loss "
        "is the mean squared error against the demonstrated actions.");
    AddTrainingParameters(&r, 1000, 64, 1e-3);
    *r.add_parameters() =
        IntList("hidden_sizes", {256, 256}, 1, 8192, 1, 16, "model", "Width of each hidden layer.");
    *r.add_parameters() = String("activation", "relu", {"relu", "tanh", "gelu"}, "model",
                                 "Activation between hidden layers.");
    *r.add_parameters() = Float("dropout", 0, 0, 0.9, "model", "Dropout after each hidden layer.");
    *r.add_parameters() = Float("weight_decay", 0, 0, 1, "training", "AdamW weight decay.");
    r.add_dataset_examples("synthetic://reach?samples=20000&obs_dim=8&act_dim=2");
    r.add_dataset_examples("synthetic://pendulum?samples=50000");
    r.add_dataset_examples("file:///demos/pick_place.csv");
    out.push_back(std::move(r));
  }
  {
    Recipe r;
    r.set_name(std::string(kLoraLm));
    r.set_title("Causal language model with LoRA");
    r.set_description(
        "A small decoder-only transformer over bytes. With base_job set, the base model "
        "(that job's artifact) is frozen and LoRA adapters on the attention projections are "
        "trained; without it, a base model is trained from scratch.");
    AddTrainingParameters(&r, 2000, 16, 3e-4);
    *r.add_parameters() =
        Int("context_length", 128, 8, 4096, "model", "Tokens (bytes) of context per example.");
    *r.add_parameters() = Int("d_model", 128, 16, 4096, "model", "Transformer width.");
    *r.add_parameters() = Int("n_layers", 4, 1, 48, "model", "Transformer blocks.");
    *r.add_parameters() =
        Int("n_heads", 4, 1, 64, "model", "Attention heads; must divide d_model.");
    *r.add_parameters() = Int("lora_rank", 8, 1, 512, "lora", "Rank of the LoRA adapters.");
    *r.add_parameters() =
        Float("lora_alpha", 16, 0.01, 4096, "lora", "LoRA scaling numerator (scale = alpha/rank).");
    *r.add_parameters() = Float("lora_dropout", 0, 0, 0.9, "lora", "Dropout on the LoRA path.");
    *r.add_parameters() = String("base_job", "", {}, "lora",
                                 "Id of a COMPLETED lora-lm job whose model is fine-tuned. "
                                 "Empty: train a base model from scratch.");
    *r.add_parameters() =
        Int("warmup_steps", 100, 0, kMaxSteps, "training", "Linear learning-rate warm-up steps.");
    *r.add_parameters() =
        Float("grad_clip", 1.0, 0, 1000, "training", "Clip the gradient norm (0: off).");
    r.add_dataset_examples("synthetic://text?bytes=2000000");
    r.add_dataset_examples("https://example.com/corpus.txt");
    r.add_dataset_examples("file:///corpora/notes.txt");
    out.push_back(std::move(r));
  }
  {
    Recipe r;
    r.set_name(std::string(kTabular));
    r.set_title("Tabular MLP");
    r.set_description(
        "Classification or regression on a CSV with a header row, with train, validation and "
        "test splits; numeric columns are standardised and text columns one-hot encoded.");
    AddTrainingParameters(&r, 1000, 128, 1e-3);
    *r.add_parameters() =
        String("target_column", "", {}, "data", "Column to predict. Empty: the last column.");
    *r.add_parameters() =
        String("task", "auto", {"auto", "classification", "regression"}, "data",
               "auto: classification when the target is text or has few distinct integers.");
    *r.add_parameters() =
        Float("test_fraction", 0.1, 0, 0.5, "data", "Share of the dataset held out for test.");
    *r.add_parameters() =
        IntList("hidden_sizes", {128, 64}, 1, 8192, 1, 16, "model", "Width of each hidden layer.");
    *r.add_parameters() = Float("dropout", 0.1, 0, 0.9, "model", "Dropout after hidden layers.");
    *r.add_parameters() = Float("weight_decay", 1e-4, 0, 1, "training", "AdamW weight decay.");
    r.add_dataset_examples("synthetic://blobs?rows=10000&features=16&classes=4");
    r.add_dataset_examples("synthetic://friedman?rows=10000");
    r.add_dataset_examples("https://example.com/adult.csv");
    out.push_back(std::move(r));
  }
  {
    Recipe r;
    r.set_name(std::string(kScript));
    r.set_title("Script");
    r.set_description(
        "Runs a command with any framework. Every stdout line like "
        "{\"step\": 3, \"metrics\": {\"train_loss\": 0.5}} becomes metric points; other "
        "lines become logs. The dataset URL is passed as TRAINMESH_DATASET_URL; a non-zero "
        "exit fails the job.");
    *r.add_parameters() = String("command", std::nullopt, {}, "script",
                                 "Executable to run (searched on the agent's PATH).");
    *r.add_parameters() = StringList("args", 256, "script", "Arguments passed to the command.");
    *r.add_parameters() = Int("timeout_seconds", 0, 0, 30 * 86400, "script",
                              "Kill the command after this long (0: no limit).");
    *r.add_parameters() = Int("total_steps", 0, 0, 1e12, "script",
                              "Steps the script will report, for progress and ETA (0: unknown).");
    *r.add_parameters() =
        Int("seed", 0, 0, 2147483647, "script", "Passed to the command as TRAINMESH_SEED.");
    *r.add_parameters() =
        Bool("network", false, "script",
             "Let the command reach the network. Only agents started with --allow_script_network "
             "grant it; on others the job fails. Off: the sandbox has only its own loopback.");
    r.add_dataset_examples("synthetic://none");
    r.add_dataset_examples("https://example.com/data.parquet");
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

const std::vector<Recipe>& Recipes() {
  static const auto* recipes = new std::vector<Recipe>(Build());
  return *recipes;
}

const Recipe* FindRecipe(absl::string_view name) {
  for (const Recipe& r : Recipes()) {
    if (r.name() == name) return &r;
  }
  return nullptr;
}

std::vector<std::string> SyntheticDatasets(absl::string_view recipe) {
  if (recipe == kMlpPolicy) return {"reach", "pendulum"};
  if (recipe == kLoraLm) return {"text"};
  if (recipe == kTabular) return {"blobs", "friedman"};
  if (recipe == kScript) return {"none"};
  return {};
}

}  // namespace trainmesh::recipes
