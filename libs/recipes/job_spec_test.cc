#include "libs/recipes/job_spec.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "libs/recipes/manifest.h"
#include "libs/recipes/recipes.h"

namespace trainmesh::recipes {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

google::protobuf::Struct Json(const std::string& json) {
  google::protobuf::Struct s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &s).ok()) << json;
  return s;
}

JobSpec MustResolve(absl::string_view recipe, const std::string& json, absl::string_view url) {
  status::FieldViolations v;
  auto spec = ResolveJobSpec(recipe, Json(json), url, "job", &v);
  EXPECT_TRUE(spec.has_value()) << v.ToStatus();
  return spec.has_value() ? *spec : JobSpec{};
}

// The schema's default for `name` in `recipe`, read from the registry itself.
double SchemaDefault(absl::string_view recipe, const std::string& name) {
  for (const auto& p : FindRecipe(recipe)->parameters()) {
    if (p.name() == name) return p.default_value().number_value();
  }
  ADD_FAILURE() << recipe << " has no " << name;
  return std::nan("");
}

TEST(JobSpecTest, TrainingDefaultsAreEachRecipesOwn) {
  for (absl::string_view recipe : {kMlpPolicy, kLoraLm, kTabular}) {
    const std::string url = absl::StrCat("synthetic://", SyntheticDatasets(recipe).front());
    const JobSpec spec = MustResolve(recipe, "{}", url);
    ASSERT_TRUE(spec.training.has_value()) << recipe;
    EXPECT_EQ(spec.training->steps(), SchemaDefault(recipe, "steps")) << recipe;
    EXPECT_EQ(spec.training->batch_size(), SchemaDefault(recipe, "batch_size")) << recipe;
    EXPECT_EQ(spec.training->learning_rate(), SchemaDefault(recipe, "learning_rate")) << recipe;
    EXPECT_EQ(spec.training->checkpoint_every(), SchemaDefault(recipe, "checkpoint_every"));
    EXPECT_EQ(spec.training->val_fraction(), SchemaDefault(recipe, "val_fraction")) << recipe;
  }
  // Where the trainer's old fallbacks (1000 steps, batch 64, lr 1e-3) disagreed.
  const JobSpec lm = MustResolve(kLoraLm, "{}", "synthetic://text");
  EXPECT_EQ(lm.training->steps(), 2000);
  EXPECT_EQ(lm.training->batch_size(), 16);
  EXPECT_DOUBLE_EQ(lm.training->learning_rate(), 3e-4);
  EXPECT_EQ(lm.training->weight_decay(), 0);  // lora-lm has none
  const auto& lora = std::get<LoraLmParams>(lm.params);
  EXPECT_EQ(lora.context_length(), 128);
  EXPECT_EQ(lora.n_heads(), 4);
  EXPECT_EQ(lora.lora_rank(), 8);
  EXPECT_EQ(lora.warmup_steps(), 100);
  EXPECT_EQ(lora.base_job(), "");
  const JobSpec tab = MustResolve(kTabular, "{}", "synthetic://blobs");
  EXPECT_EQ(tab.training->batch_size(), 128);
  EXPECT_DOUBLE_EQ(tab.training->weight_decay(), 1e-4);
  const auto& table = std::get<TabularParams>(tab.params);
  EXPECT_THAT(table.hidden_sizes(), ElementsAre(128, 64));
  EXPECT_EQ(table.task(), "auto");
  EXPECT_DOUBLE_EQ(table.dropout(), 0.1);
  // The stored hyperparameters are complete.
  EXPECT_EQ(tab.hyperparameters.fields().size(), FindRecipe(kTabular)->parameters().size());
}

TEST(JobSpecTest, GivenValuesAreTyped) {
  const JobSpec mlp =
      MustResolve(kMlpPolicy, R"({"steps": 7, "hidden_sizes": [32, 16, 8], "activation": "tanh"})",
                  "synthetic://reach?samples=100");
  EXPECT_EQ(mlp.training->steps(), 7);
  const auto& p = std::get<MlpPolicyParams>(mlp.params);
  EXPECT_THAT(p.hidden_sizes(), ElementsAre(32, 16, 8));
  EXPECT_EQ(p.activation(), "tanh");
  EXPECT_EQ(mlp.dataset.generator, "reach");
  EXPECT_THAT(mlp.dataset.params, ::testing::UnorderedElementsAre(Pair("samples", "100")));

  const JobSpec script = MustResolve(
      kScript, R"({"command": "python3", "args": ["-c", "x"], "network": true, "seed": 4})",
      "synthetic://none");
  EXPECT_FALSE(script.training.has_value());
  const auto& s = std::get<ScriptParams>(script.params);
  EXPECT_EQ(s.command(), "python3");
  EXPECT_THAT(s.args(), ElementsAre("-c", "x"));
  EXPECT_TRUE(s.network());
  EXPECT_EQ(s.seed(), 4);
  EXPECT_EQ(s.timeout_seconds(), 0);
}

TEST(JobSpecTest, EveryProblemIsAFieldViolation) {
  status::FieldViolations v;
  EXPECT_FALSE(ResolveJobSpec("nope", Json("{}"), "ftp://x", "job", &v).has_value());
  ASSERT_EQ(v.violations().size(), 2u);
  EXPECT_EQ(v.violations()[0].field, "job.model");
  EXPECT_THAT(v.violations()[0].description, HasSubstr("mlp-policy, lora-lm, tabular, script"));
  EXPECT_EQ(v.violations()[1].field, "job.dataset_url");

  trainmesh::v1::Job job;
  job.set_model(std::string(kLoraLm));
  job.set_dataset_url("synthetic://text");
  (*job.mutable_hyperparameters()->mutable_fields())["n_heads"].set_number_value(5);
  auto stored = ResolveJobSpec(job);
  EXPECT_EQ(stored.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(stored.status().message(), HasSubstr("job.hyperparameters.n_heads"));
}

TEST(DatasetRefTest, OneParseForEveryScheme) {
  auto file = ParseDatasetUrl("file:///data/my%20file.csv");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->scheme, DatasetRef::Scheme::kFile);
  EXPECT_EQ(file->path, "/data/my file.csv");
  // ".." is refused however it is spelled.
  EXPECT_THAT(ParseDatasetUrl("file:///data/%2e%2e/secret").status().message(), HasSubstr(".."));
  EXPECT_FALSE(ParseDatasetUrl("file:///a%00b").ok());

  const std::string hex(64, 'A');
  auto http = ParseDatasetUrl("HTTPS://example.com/a.csv?x=1#sha256=" + hex);
  ASSERT_TRUE(http.ok()) << http.status();
  EXPECT_EQ(http->scheme, DatasetRef::Scheme::kHttp);
  EXPECT_EQ(http->url, "HTTPS://example.com/a.csv?x=1");
  EXPECT_EQ(http->sha256, std::string(64, 'a'));
  auto unpinned = ParseDatasetUrl("http://example.com/a.csv");
  ASSERT_TRUE(unpinned.ok());
  EXPECT_EQ(unpinned->url, "http://example.com/a.csv");
  EXPECT_EQ(unpinned->sha256, "");

  auto synthetic = ParseDatasetUrl("synthetic://text?bytes=20&name=a+b%21");
  ASSERT_TRUE(synthetic.ok());
  EXPECT_TRUE(synthetic->synthetic());
  EXPECT_THAT(synthetic->params,
              ::testing::UnorderedElementsAre(Pair("bytes", "20"), Pair("name", "a b!")));

  EXPECT_THAT(ParseDatasetUrl("gopher://x").status().message(),
              HasSubstr("scheme gopher is not supported"));
  EXPECT_THAT(ParseDatasetUrl("x").status().message(), HasSubstr("the URL has none"));
}

TEST(ManifestTest, WrittenAndReadBackByOneOwner) {
  trainmesh::v1::Job job;
  job.set_id("job-1");
  job.set_owner("alice");
  job.set_model(std::string(kLoraLm));
  job.set_dataset_url("synthetic://text");
  (*job.mutable_hyperparameters()->mutable_fields())["steps"].set_number_value(3);
  ModelManifest m = ManifestOf(job, 2);
  (*m.architecture.mutable_fields())["d_model"].set_number_value(64);
  m.step = 3;
  m.trained_on = "cpu";
  m.weights = "model.pt";
  m.metrics = {{"train_loss", 0.5}, {"val_loss", std::nan("")}};
  auto back = ParseManifest(ManifestJson(m));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->job_id, "job-1");
  EXPECT_EQ(back->owner, "alice");
  EXPECT_EQ(back->recipe, "lora-lm");
  EXPECT_EQ(back->attempt, 2);
  EXPECT_EQ(back->step, 3);
  EXPECT_EQ(back->trained_on, "cpu");
  EXPECT_EQ(back->weights, "model.pt");
  EXPECT_EQ(back->architecture.fields().at("d_model").number_value(), 64);
  EXPECT_EQ(back->hyperparameters.fields().at("steps").number_value(), 3);
  EXPECT_THAT(back->metrics, ElementsAre(Pair("train_loss", 0.5)));  // NaN left out

  EXPECT_FALSE(ParseManifest("{}").ok());
  EXPECT_FALSE(ParseManifest("not json").ok());
  EXPECT_TRUE(ParseManifest(R"({"format": "trainmesh-model/1", "step": 1e300})").ok());
}

}  // namespace
}  // namespace trainmesh::recipes
