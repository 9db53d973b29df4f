// Script jobs: real child processes speaking the metric protocol.
#include "services/trainer/script_job.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/json/json.h"

namespace trainmesh::trainer {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Quote(const std::string& s) {
  std::string out;
  json::AppendString(&out, s);
  return out;
}

constexpr char kJobId[] = "00000000-0000-4000-8000-00000000005c";

class ScriptJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = absl::StrCat(::testing::TempDir(), "script-XXXXXX");
    dir_ = mkdtemp(t.data());
    chmod(dir_.c_str(), 0755);
    store_ = std::make_unique<artifacts::ArtifactStore>(dir_ + "/artifacts");
    mkdir((dir_ + "/data").c_str(), 0755);
    mkdir((dir_ + "/work").c_str(), 0755);
    setenv("TRAINMESH_AGENT_API_KEY", "tm_agent_secret", 1);  // what the script must never see
  }

  struct Outcome {
    training::RunResult result;
    std::vector<trainmesh::v1::MetricPoint> points;
    std::vector<std::pair<trainmesh::v1::LogLine::Stream, std::string>> output;
    std::vector<std::string> system;
    std::vector<trainmesh::v1::Chart> charts;
    trainmesh::v1::Progress progress;
    bool Printed(const std::string& text) const {
      for (const auto& [s, line] : output) {
        if (line.find(text) != std::string::npos) return true;
      }
      return false;
    }
  };

  Outcome RunScript(const std::string& script, const std::string& extra_hp = "",
                    const std::string& dataset = "synthetic://none", std::atomic<int>* stop = nullptr) {
    Outcome out;
    ScriptJobOptions o;
    o.job.set_id(kJobId);
    o.job.set_owner("users/ada");
    o.job.set_model("script");
    o.job.set_dataset_url(dataset);
    const std::string hp = absl::StrFormat(R"({"command": "/bin/sh", "args": ["-c", %s], "total_steps": 4%s})",
                                           Quote(script), extra_hp);
    EXPECT_TRUE(json::ToStruct(hp, o.job.mutable_hyperparameters()).ok()) << hp;
    o.attempt = 2;
    o.job_token = "job-token-abc";
    o.datasets.data_root = dir_ + "/data";
    o.store = store_.get();
    o.work_root = dir_ + "/work";
    o.stop = stop;
    o.sink.metrics = [&](std::vector<trainmesh::v1::MetricPoint> p) {
      out.points.insert(out.points.end(), p.begin(), p.end());
      if (stop != nullptr) *stop = training::kCancel;
    };
    o.sink.log = [&](std::string line) { out.system.push_back(std::move(line)); };
    o.sink.progress = [&](const trainmesh::v1::Progress& p) { out.progress = p; };
    o.output = [&](trainmesh::v1::LogLine::Stream s, std::string line) { out.output.push_back({s, std::move(line)}); };
    o.chart = [&](trainmesh::v1::Chart c) { out.charts.push_back(std::move(c)); };
    out.result = RunScriptJob(o);
    return out;
  }

  std::string dir_;
  std::unique_ptr<artifacts::ArtifactStore> store_;
};

TEST_F(ScriptJobTest, MetricsLogsChartsProgressAndTheModelFile) {
  const Outcome out = RunScript(R"(
    echo 'starting'
    echo '{"chart": {"title": "Loss", "metrics": ["train_loss"]}}'
    for s in 1 2 3 4; do echo "{\"step\": $s, \"metrics\": {\"train_loss\": 0.$((9 - s))}}"; done
    echo 'warning: slow' >&2
    printf 'weights' > "$TRAINMESH_OUTPUT_DIR/model.pt"
    echo '{"epochs": 1}' > "$TRAINMESH_OUTPUT_DIR/config.json"
  )");
  ASSERT_EQ(out.result.outcome, training::Outcome::kCompleted) << out.result.error;
  ASSERT_EQ(out.points.size(), 4u);
  EXPECT_EQ(out.points[3].step(), 4);
  EXPECT_DOUBLE_EQ(out.points[3].value(), 0.5);
  ASSERT_EQ(out.charts.size(), 1u);
  EXPECT_EQ(out.charts[0].title(), "Loss");
  EXPECT_THAT(out.output, Contains(std::pair{trainmesh::v1::LogLine::STDOUT, std::string("starting")}));
  EXPECT_THAT(out.output, Contains(std::pair{trainmesh::v1::LogLine::STDERR, std::string("warning: slow")}));
  EXPECT_EQ(out.progress.step(), 4);
  EXPECT_DOUBLE_EQ(out.progress.train_loss(), 0.5);
  EXPECT_EQ(out.result.artifact.uri(), absl::StrCat("artifact:", kJobId, "/model.pt"));
  EXPECT_EQ(*store_->Read(out.result.artifact.uri()), "weights");
  EXPECT_TRUE(store_->Path(kJobId, "config.json").ok());
  google::protobuf::Struct meta;
  ASSERT_TRUE(json::ToStruct(*store_->Read(absl::StrCat("artifact:", kJobId, "/model.json")), &meta).ok());
  EXPECT_EQ(meta.fields().at("metrics").struct_value().fields().at("train_loss").number_value(), 0.5);
  // The working directory is gone.
  EXPECT_NE(access((dir_ + "/work/" + kJobId + "-2").c_str(), F_OK), 0);
}

TEST_F(ScriptJobTest, TheEnvironmentHoldsTheJobTokenAndNothingOfTheAgent) {
  const Outcome out = RunScript("env; id -u");
  ASSERT_EQ(out.result.outcome, training::Outcome::kCompleted) << out.result.error;
  EXPECT_TRUE(out.Printed("TRAINMESH_JOB_TOKEN=job-token-abc"));
  EXPECT_TRUE(out.Printed("TRAINMESH_JOB_ID=" + std::string(kJobId)));
  EXPECT_TRUE(out.Printed("TRAINMESH_ATTEMPT=2"));
  EXPECT_TRUE(out.Printed("TRAINMESH_HYPERPARAMETERS={"));
  EXPECT_FALSE(out.Printed("tm_agent_secret"));
  EXPECT_FALSE(out.Printed("TRAINMESH_AGENT_API_KEY"));
  if (geteuid() == 0) {
    EXPECT_THAT(out.output, Not(Contains(std::pair{trainmesh::v1::LogLine::STDOUT, std::string("0")})));
  }
  // Without an output model, the artifact is the run's description.
  EXPECT_EQ(out.result.artifact.uri(), absl::StrCat("artifact:", kJobId, "/model.json"));
}

TEST_F(ScriptJobTest, AFailingScriptIsTheUsersFailureWithItsLastLines) {
  const Outcome out = RunScript("echo 'loading data'; echo 'Traceback: KeyError: label' >&2; exit 3");
  EXPECT_EQ(out.result.outcome, training::Outcome::kFailed);
  EXPECT_EQ(out.result.error_kind, trainmesh::v1::ERROR_KIND_USER);
  EXPECT_THAT(out.result.error, HasSubstr("exited with code 3"));
  EXPECT_THAT(out.result.error, HasSubstr("Traceback: KeyError: label"));

  const Outcome slow = RunScript("echo begin; sleep 30", R"(, "timeout_seconds": 1)");
  EXPECT_EQ(slow.result.error_kind, trainmesh::v1::ERROR_KIND_USER);
  EXPECT_THAT(slow.result.error, HasSubstr("timeout_seconds"));

  const Outcome outside = RunScript("true", "", "file:///../../../../../../../../etc/passwd");
  EXPECT_EQ(outside.result.error_kind, trainmesh::v1::ERROR_KIND_USER);
  EXPECT_THAT(outside.result.error, HasSubstr("outside the data root"));
}

TEST_F(ScriptJobTest, CancelEndsTheScript) {
  std::atomic<int> stop{training::kKeepGoing};
  const Outcome out = RunScript(R"(echo '{"step": 1, "metrics": {"x": 1}}'; sleep 60; echo never)", "",
                                "synthetic://none", &stop);
  EXPECT_EQ(out.result.outcome, training::Outcome::kCancelled);
  EXPECT_FALSE(out.Printed("never"));
  EXPECT_LT(out.result.device_seconds, 30);
}

}  // namespace
}  // namespace trainmesh::trainer
