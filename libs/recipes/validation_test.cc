#include "libs/recipes/validation.h"

#include <map>

#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "libs/recipes/recipes.h"

namespace trainmesh::recipes {
namespace {

using status::FieldViolation;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

google::protobuf::Struct Json(const std::string& json) {
  google::protobuf::Struct s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &s).ok()) << json;
  return s;
}

struct Result {
  google::protobuf::Struct resolved;
  std::vector<FieldViolation> violations;
};

Result Resolve(absl::string_view recipe, const std::string& json) {
  status::FieldViolations violations;
  Result r;
  r.resolved =
      ResolveHyperparameters(*FindRecipe(recipe), Json(json), "job.hyperparameters", &violations);
  r.violations = violations.violations();
  return r;
}

std::vector<FieldViolation> Dataset(absl::string_view recipe, absl::string_view url) {
  status::FieldViolations violations;
  ValidateDatasetUrl(recipe.empty() ? nullptr : FindRecipe(recipe), url, "job.dataset_url",
                     &violations);
  return violations.violations();
}

TEST(RecipesTest, RegistryHasTheFourRecipesWithSharedParameters) {
  std::vector<std::string> names;
  for (const auto& r : Recipes()) names.push_back(r.name());
  EXPECT_THAT(names, ::testing::ElementsAre("mlp-policy", "lora-lm", "tabular", "script"));
  for (absl::string_view name : {kMlpPolicy, kLoraLm, kTabular}) {
    std::vector<std::string> params;
    for (const auto& p : FindRecipe(name)->parameters()) params.push_back(p.name());
    for (const char* shared :
         {"steps", "batch_size", "learning_rate", "seed", "checkpoint_every", "val_fraction"}) {
      EXPECT_NE(std::find(params.begin(), params.end(), shared), params.end())
          << name << " lacks " << shared;
    }
  }
  EXPECT_EQ(FindRecipe("nope"), nullptr);
}

TEST(ValidationTest, FillsDefaults) {
  Result r = Resolve(kMlpPolicy, R"({"steps": 50})");
  EXPECT_THAT(r.violations, IsEmpty());
  const auto& f = r.resolved.fields();
  EXPECT_EQ(f.at("steps").number_value(), 50);
  EXPECT_EQ(f.at("batch_size").number_value(), 64);
  EXPECT_EQ(f.at("activation").string_value(), "relu");
  ASSERT_EQ(f.at("hidden_sizes").list_value().values_size(), 2);
  EXPECT_EQ(f.at("hidden_sizes").list_value().values(0).number_value(), 256);
}

TEST(ValidationTest, NullMeansDefault) {
  Result r = Resolve(kMlpPolicy, R"({"steps": null})");
  EXPECT_THAT(r.violations, IsEmpty());
  EXPECT_EQ(r.resolved.fields().at("steps").number_value(), 1000);
}

TEST(ValidationTest, UnknownKeyNamesTheKnownOnes) {
  Result r = Resolve(kMlpPolicy, R"({"stepz": 5})");
  ASSERT_EQ(r.violations.size(), 1u);
  EXPECT_EQ(r.violations[0].field, "job.hyperparameters.stepz");
  EXPECT_THAT(r.violations[0].description, HasSubstr("unknown hyperparameter"));
  EXPECT_THAT(r.violations[0].description, HasSubstr("steps"));
}

TEST(ValidationTest, WrongTypesAndRangesEachGetAViolation) {
  Result r = Resolve(kMlpPolicy,
                     R"({"steps": 0, "batch_size": 3.5, "learning_rate": "fast",
                         "activation": "sigmoid", "hidden_sizes": [64, -1], "dropout": 2})");
  std::map<std::string, std::string> by_field;
  for (const auto& v : r.violations) by_field[v.field] = v.description;
  EXPECT_EQ(r.violations.size(), 6u);
  EXPECT_EQ(by_field["job.hyperparameters.steps"], "must be >= 1, got 0");
  EXPECT_EQ(by_field["job.hyperparameters.batch_size"], "must be an integer, got 3.5");
  EXPECT_EQ(by_field["job.hyperparameters.learning_rate"], "must be a number, got a string");
  EXPECT_THAT(by_field["job.hyperparameters.activation"], HasSubstr("must be one of relu, tanh"));
  EXPECT_EQ(by_field["job.hyperparameters.hidden_sizes"], "item 1 must be >= 1, got -1");
  EXPECT_EQ(by_field["job.hyperparameters.dropout"], "must be <= 0.9, got 2");
}

TEST(ValidationTest, ListBounds) {
  Result r = Resolve(kTabular, R"({"hidden_sizes": []})");
  ASSERT_EQ(r.violations.size(), 1u);
  EXPECT_THAT(r.violations[0].description, HasSubstr("at least 1"));
}

TEST(ValidationTest, RequiredParameter) {
  Result missing = Resolve(kScript, R"({})");
  ASSERT_EQ(missing.violations.size(), 1u);
  EXPECT_EQ(missing.violations[0].field, "job.hyperparameters.command");
  EXPECT_THAT(missing.violations[0].description, HasSubstr("required"));
  Result blank = Resolve(kScript, R"({"command": "  "})");
  ASSERT_EQ(blank.violations.size(), 1u);
  EXPECT_EQ(blank.violations[0].description, "must not be empty");
  Result ok = Resolve(kScript, R"({"command": "python3", "args": ["train.py", "--fast"]})");
  EXPECT_THAT(ok.violations, IsEmpty());
}

TEST(ValidationTest, CrossFieldRules) {
  Result heads = Resolve(kLoraLm, R"({"d_model": 100, "n_heads": 3})");
  ASSERT_EQ(heads.violations.size(), 1u);
  EXPECT_EQ(heads.violations[0].field, "job.hyperparameters.n_heads");
  Result split = Resolve(kTabular, R"({"val_fraction": 0.5, "test_fraction": 0.5})");
  ASSERT_EQ(split.violations.size(), 1u);
  EXPECT_EQ(split.violations[0].field, "job.hyperparameters.test_fraction");
}

TEST(DatasetUrlTest, AcceptsTheFourSchemes) {
  EXPECT_THAT(Dataset(kTabular, "file:///data/adult.csv"), IsEmpty());
  EXPECT_THAT(Dataset(kTabular, "https://example.com/adult.csv"), IsEmpty());
  EXPECT_THAT(Dataset(kTabular, "HTTP://example.com/a.csv?x=1"), IsEmpty());
  EXPECT_THAT(Dataset(kTabular, "synthetic://blobs?rows=100&classes=3"), IsEmpty());
}

TEST(DatasetUrlTest, RejectsWithReasons) {
  auto first = [](const std::vector<FieldViolation>& v) {
    return v.empty() ? std::string() : v[0].description;
  };
  EXPECT_THAT(first(Dataset(kTabular, "")), HasSubstr("required"));
  EXPECT_THAT(first(Dataset(kTabular, "ftp://x/y")), HasSubstr("scheme must be one of"));
  EXPECT_THAT(first(Dataset(kTabular, "/data/x.csv")), HasSubstr("scheme must be one of"));
  EXPECT_THAT(first(Dataset(kTabular, "file:///data/../../etc/passwd")), HasSubstr(".."));
  EXPECT_THAT(first(Dataset(kTabular, "file://relative.csv")), HasSubstr("file:///"));
  EXPECT_THAT(first(Dataset(kTabular, "https:///nohost")), HasSubstr("host"));
  EXPECT_THAT(first(Dataset(kTabular, "synthetic://reach")), HasSubstr("blobs, friedman"));
  EXPECT_THAT(first(Dataset(kTabular, "synthetic://blobs?rows")), HasSubstr("key=value"));
  EXPECT_THAT(first(Dataset(kTabular, "https://a b")), HasSubstr("spaces"));
  EXPECT_EQ(Dataset(kTabular, "ftp://x")[0].field, "job.dataset_url");
}

// The pin grammar libs/datasets reads (and the README shows): the fragment.
TEST(DatasetUrlTest, Sha256PinsAreFragments) {
  auto first = [](const std::vector<FieldViolation>& v) {
    return v.empty() ? std::string() : v[0].description;
  };
  const std::string hex(64, 'a');
  EXPECT_THAT(Dataset(kTabular, "https://example.com/a.csv#sha256=" + hex), IsEmpty());
  EXPECT_THAT(Dataset(kTabular, "https://example.com/a.csv?x=1#sha256=" + std::string(64, 'F')),
              IsEmpty());
  for (const std::string& fragment :
       {std::string("#sha256=abc"), "#sha256=" + hex + "0", "#sha256=" + std::string(64, 'g'),
        std::string("#x"), std::string("#"), "#SHA256=" + hex}) {
    EXPECT_EQ(first(Dataset(kTabular, "https://example.com/a.csv" + fragment)),
              "may end only in a content pin, #sha256=<64 hex digits>")
        << fragment;
  }
  EXPECT_EQ(first(Dataset(kTabular, "https://example.com/a.csv?x=1&sha256=" + hex)),
            "pins its content in the query, which is sent and pins nothing: write "
            "#sha256=<64 hex digits>");
  // Another query parameter of that name is the server's business.
  EXPECT_THAT(Dataset(kTabular, "https://example.com/a.csv?sha256=latest"), IsEmpty());
}

}  // namespace
}  // namespace trainmesh::recipes
