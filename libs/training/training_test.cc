// Real training runs, small enough for CI: each recipe learns, reports every
// step, checkpoints, resumes exactly, stops when told, and fails clearly on
// bad input.
#include "libs/training/training.h"

#include <unistd.h>

#include <cmath>
#include <fstream>
#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/json/json.h"

namespace trainmesh::training {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

class TrainingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = absl::StrCat(::testing::TempDir(), "training-XXXXXX");
    dir_ = mkdtemp(t.data());
    store_ = std::make_unique<artifacts::ArtifactStore>(dir_ + "/artifacts");
    data_root_ = dir_ + "/data";
    mkdir(data_root_.c_str(), 0755);
  }

  v1::Job MakeJob(const std::string& id, const std::string& recipe, const std::string& dataset,
                  const std::string& hyperparameters, const std::string& owner = "users/ada") {
    v1::Job job;
    job.set_id(id);
    job.set_owner(owner);
    job.set_model(recipe);
    job.set_dataset_url(dataset);
    EXPECT_TRUE(json::ToStruct(hyperparameters, job.mutable_hyperparameters()).ok());
    return job;
  }

  struct Run {
    RunResult result;
    std::map<std::string, std::vector<std::pair<int64_t, double>>> series;
    std::vector<std::string> logs;
    std::vector<v1::Artifact> checkpoints;
    int progress_reports = 0;

    double Last(const std::string& name) const {
      auto it = series.find(name);
      return it == series.end() || it->second.empty() ? std::nan("") : it->second.back().second;
    }
    double First(const std::string& name) const {
      auto it = series.find(name);
      return it == series.end() || it->second.empty() ? std::nan("") : it->second.front().second;
    }
  };

  // Trains `job`; `stop_at` > 0 sets `stop_value` when that step is reported.
  Run Train(const v1::Job& job, std::optional<v1::Artifact> resume = std::nullopt, int64_t stop_at = 0,
            int stop_value = kCancel) {
    Run run;
    std::atomic<int> stop{kKeepGoing};
    RunOptions o;
    o.job = job;
    o.device = "cpu";
    o.threads = 1;
    o.datasets.data_root = data_root_;
    o.store = store_.get();
    o.resume_from = resume;
    o.stop = &stop;
    o.sink.metrics = [&](std::vector<v1::MetricPoint> points) {
      for (const auto& p : points) run.series[p.name()].push_back({p.step(), p.value()});
    };
    o.sink.log = [&](std::string line) { run.logs.push_back(std::move(line)); };
    o.sink.progress = [&](const v1::Progress& p) {
      ++run.progress_reports;
      if (stop_at > 0 && p.step() == stop_at) stop = stop_value;
    };
    o.sink.checkpoint = [&](const v1::Artifact& a) { run.checkpoints.push_back(a); };
    run.result = training::Train(o);
    return run;
  }

  std::string Slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  std::string dir_, data_root_;
  std::unique_ptr<artifacts::ArtifactStore> store_;
};

std::string Id(int n) { return absl::StrFormat("00000000-0000-4000-8000-%012d", n); }

constexpr char kPolicy[] =
    R"({"steps": 300, "batch_size": 64, "learning_rate": 0.003, "hidden_sizes": [64, 64],
        "checkpoint_every": 100, "val_fraction": 0.1, "seed": 1})";

TEST_F(TrainingTest, MlpPolicyLearnsTheReachingExpertAndExportsAModel) {
  const Run run = Train(MakeJob(Id(1), "mlp-policy", "synthetic://reach?samples=4000", kPolicy));
  ASSERT_EQ(run.result.outcome, Outcome::kCompleted) << run.result.error;
  EXPECT_EQ(run.result.device_type, "cpu");
  // A point of each per-step series at every step; validation 20 times.
  EXPECT_EQ(run.series.at("train_loss").size(), 300u);
  EXPECT_EQ(run.series.at("learning_rate").size(), 300u);
  EXPECT_EQ(run.series.at("val_loss").size(), 20u);
  EXPECT_GT(run.Last("samples_per_second"), 0);
  EXPECT_LT(run.Last("val_loss"), 0.3 * run.First("val_loss"));
  EXPECT_EQ(run.result.progress.step(), 300);
  EXPECT_DOUBLE_EQ(run.result.progress.fraction(), 1.0);
  EXPECT_GT(run.result.progress.epoch(), 0);
  // Checkpoints at 100 and 200, the final model, its description.
  ASSERT_EQ(run.checkpoints.size(), 2u);
  EXPECT_EQ(run.checkpoints[1].step(), 200);
  EXPECT_EQ(run.result.artifact.uri(), "artifact:" + Id(1) + "/model.pt");
  EXPECT_GT(run.result.artifact.size_bytes(), 4 * (8 * 64 + 64 * 64 + 64 * 2));
  google::protobuf::Struct meta;
  ASSERT_TRUE(json::ToStruct(Slurp(*store_->Path(Id(1), "model.json")), &meta).ok());
  EXPECT_EQ(meta.fields().at("recipe").string_value(), "mlp-policy");
  EXPECT_EQ(meta.fields().at("owner").string_value(), "users/ada");
  EXPECT_EQ(meta.fields().at("architecture").struct_value().fields().at("inputs").number_value(), 8);
  EXPECT_TRUE(meta.fields().at("metrics").struct_value().fields().count("val_loss"));
  EXPECT_GT(run.result.device_seconds, 0);
}

TEST_F(TrainingTest, AResumedRunTakesExactlyTheStepsOfAnUninterruptedOne) {
  const v1::Job job = MakeJob(Id(2), "mlp-policy", "synthetic://pendulum?samples=3000",
                              R"({"steps": 120, "batch_size": 32, "hidden_sizes": [32],
                                  "dropout": 0.1, "checkpoint_every": 0, "seed": 5})");
  const Run whole = Train(job);
  ASSERT_EQ(whole.result.outcome, Outcome::kCompleted) << whole.result.error;

  v1::Job split = job;
  split.set_id(Id(3));
  const Run first = Train(split, std::nullopt, /*stop_at=*/50, kPreempt);
  ASSERT_EQ(first.result.outcome, Outcome::kPreempted);
  ASSERT_TRUE(first.result.checkpoint.has_value());
  EXPECT_EQ(first.result.checkpoint->step(), 50);
  const Run second = Train(split, first.result.checkpoint);
  ASSERT_EQ(second.result.outcome, Outcome::kCompleted) << second.result.error;
  EXPECT_THAT(second.logs, Contains(HasSubstr("resumed from checkpoint at step 50")));
  EXPECT_EQ(second.series.at("train_loss").front().first, 51);  // not from 0
  // Same batches, same dropout masks, same optimizer state: the same weights.
  EXPECT_EQ(Slurp(*store_->Path(Id(3), "model.pt")), Slurp(*store_->Path(Id(2), "model.pt")));
  EXPECT_EQ(second.Last("train_loss"), whole.Last("train_loss"));

  // A successor told of no checkpoint (its predecessor was killed before it
  // could report one) still resumes from the job's newest.
  v1::Job killed = job;
  killed.set_id(Id(20));
  ASSERT_EQ(Train(killed, std::nullopt, /*stop_at=*/70, kPreempt).result.outcome, Outcome::kPreempted);
  const Run successor = Train(killed);
  ASSERT_EQ(successor.result.outcome, Outcome::kCompleted) << successor.result.error;
  EXPECT_THAT(successor.logs, Contains(HasSubstr("resumed from checkpoint at step 70")));
  EXPECT_EQ(Slurp(*store_->Path(Id(20), "model.pt")), Slurp(*store_->Path(Id(2), "model.pt")));
}

TEST_F(TrainingTest, CancelStopsAtOnceAndFailuresAreTheUsersWithAReason) {
  const Run cancelled = Train(MakeJob(Id(4), "mlp-policy", "synthetic://reach?samples=2000", kPolicy),
                              std::nullopt, /*stop_at=*/10, kCancel);
  EXPECT_EQ(cancelled.result.outcome, Outcome::kCancelled);
  EXPECT_EQ(cancelled.result.progress.step(), 10);
  EXPECT_FALSE(store_->Path(Id(4), "model.pt").ok());

  const Run missing = Train(MakeJob(Id(5), "tabular", "file:///nope.csv", "{}"));
  EXPECT_EQ(missing.result.outcome, Outcome::kFailed);
  EXPECT_EQ(missing.result.error_kind, v1::ERROR_KIND_USER);
  EXPECT_THAT(missing.result.error, HasSubstr("does not exist"));

  std::ofstream(data_root_ + "/bad.csv") << "a,b\n1,2\n";
  const Run bad = Train(MakeJob(Id(6), "mlp-policy", "file:///bad.csv", "{}"));
  EXPECT_EQ(bad.result.error_kind, v1::ERROR_KIND_USER);
  EXPECT_THAT(bad.result.error, HasSubstr("obs_*"));

  const Run unknown = Train(MakeJob(Id(7), "mlp-policy", "synthetic://nothing", "{}"));
  EXPECT_THAT(unknown.result.error, HasSubstr("unknown synthetic dataset nothing"));
}

TEST_F(TrainingTest, TabularClassifiesAndRegressesWithHeldOutTestMetrics) {
  const Run blobs = Train(MakeJob(Id(8), "tabular", "synthetic://blobs?rows=3000&features=6&classes=3",
                                  R"({"steps": 200, "batch_size": 64, "hidden_sizes": [32]})"));
  ASSERT_EQ(blobs.result.outcome, Outcome::kCompleted) << blobs.result.error;
  EXPECT_GT(blobs.Last("val_accuracy"), 0.9);
  EXPECT_GT(blobs.Last("test_accuracy"), 0.9);
  EXPECT_THAT(blobs.logs, Contains(HasSubstr("3 classes")));

  const Run friedman = Train(MakeJob(Id(9), "tabular", "synthetic://friedman?rows=4000",
                                     R"({"steps": 400, "batch_size": 64, "learning_rate": 0.003})"));
  ASSERT_EQ(friedman.result.outcome, Outcome::kCompleted) << friedman.result.error;
  EXPECT_GT(friedman.Last("test_r2"), 0.6);
  EXPECT_LT(friedman.Last("test_rmse"), 3.0);

  // A CSV with a text feature, missing values and a text target.
  std::ofstream csv(data_root_ + "/people.csv");
  csv << "age,city,income,label\n";
  for (int i = 0; i < 600; ++i) {
    const bool rich = i % 3 == 0;
    csv << 20 + i % 50 << "," << (rich ? "Paris" : (i % 2 ? "Lyon" : "Nice")) << ","
        << (i % 17 == 0 ? "" : std::to_string(rich ? 90 + i % 10 : 30 + i % 10)) << "," << (rich ? "high" : "low")
        << "\n";
  }
  csv.close();
  const Run people = Train(MakeJob(Id(10), "tabular", "file:///people.csv",
                                   R"({"steps": 150, "target_column": "label"})"));
  ASSERT_EQ(people.result.outcome, Outcome::kCompleted) << people.result.error;
  EXPECT_GT(people.Last("test_accuracy"), 0.9);

  const Run wrong = Train(MakeJob(Id(11), "tabular", "file:///people.csv", R"({"target_column": "salary"})"));
  EXPECT_THAT(wrong.result.error, HasSubstr("target_column salary is not a column"));
}

constexpr char kTinyLm[] =
    R"({"steps": 80, "batch_size": 8, "context_length": 32, "d_model": 32, "n_layers": 2,
        "n_heads": 2, "learning_rate": 0.003, "warmup_steps": 10, "checkpoint_every": 0})";

TEST_F(TrainingTest, LoraLmTrainsABaseThenFineTunesOnlyTheAdapters) {
  const Run base = Train(MakeJob(Id(12), "lora-lm", "synthetic://text?bytes=40000", kTinyLm));
  ASSERT_EQ(base.result.outcome, Outcome::kCompleted) << base.result.error;
  EXPECT_LT(base.Last("val_perplexity"), 0.5 * base.First("val_perplexity"));
  EXPECT_GT(base.Last("tokens_per_second"), 0);
  EXPECT_GT(base.First("learning_rate"), 0);
  EXPECT_LT(base.series.at("learning_rate").front().second, base.series.at("learning_rate")[20].second);  // warm-up
  EXPECT_TRUE(base.series.count("grad_norm"));

  const Run tuned = Train(MakeJob(Id(13), "lora-lm", "synthetic://text?bytes=40000&seed=9",
                                  R"({"steps": 40, "batch_size": 8, "base_job": "00000000-0000-4000-8000-000000000012", "lora_rank": 4,
                                      "learning_rate": 0.01, "warmup_steps": 0})"));
  ASSERT_EQ(tuned.result.outcome, Outcome::kCompleted) << tuned.result.error;
  EXPECT_THAT(tuned.logs, Contains(HasSubstr("fine-tuning " + Id(12) + " with LoRA rank 4")));
  // 2 layers × (q, v) × (A: 4×32 + B: 32×4) adapter weights are all that train.
  EXPECT_THAT(tuned.logs, Contains(HasSubstr(", 1024 trainable")));
  // Starting from the base, it is already far better than a fresh model.
  EXPECT_LT(tuned.First("val_perplexity"), base.First("val_perplexity"));
  google::protobuf::Struct meta;
  ASSERT_TRUE(json::ToStruct(Slurp(*store_->Path(Id(13), "model.json")), &meta).ok());
  EXPECT_EQ(meta.fields().at("architecture").struct_value().fields().at("lora").struct_value().fields().at("rank").number_value(), 4);

  const Run stolen = Train(MakeJob(Id(14), "lora-lm", "synthetic://text?bytes=40000",
                                   R"({"steps": 5, "base_job": "00000000-0000-4000-8000-000000000012"})", "users/eve"));
  EXPECT_EQ(stolen.result.error_kind, v1::ERROR_KIND_USER);
  EXPECT_THAT(stolen.result.error, HasSubstr("belongs to another user"));
  const Run none = Train(MakeJob(Id(15), "lora-lm", "synthetic://text?bytes=40000",
                                 R"({"steps": 5, "base_job": "00000000-0000-4000-8000-000000000016"})"));
  EXPECT_THAT(none.result.error, HasSubstr("must be a COMPLETED lora-lm job"));
}

TEST(DeviceTest, ProbeAndMatmul) {
  const DeviceInfo info = ProbeDevice("auto");
  EXPECT_THAT(info.device_type, ::testing::AnyOf("cpu", "cuda"));
  EXPECT_GT(info.cpu_cores, 0);
  EXPECT_GT(MatmulGflops(1, 128), 0);
  EXPECT_THAT(SupportedRecipes(), Contains("lora-lm"));
}

}  // namespace
}  // namespace trainmesh::training
