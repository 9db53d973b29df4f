// Script jobs: real child processes speaking the metric protocol.
#include "libs/training/script_job.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/scriptrun/testing/loopback_listener.h"
#include "libs/json/json.h"

namespace trainmesh::training {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

// The sandbox works here and on CI; elsewhere the sandbox's own tests skip,
// saying why, and the others run scripts unconfined.
const absl::Status& SandboxHere() {
  static const absl::Status* status = [] {
    auto* s = new absl::Status(scriptrun::SandboxAvailable(scriptrun::SandboxOptions{}));
    if (!s->ok()) std::cerr << "NOTE: no sandbox on this machine; its tests skip: " << *s << "\n";
    return s;
  }();
  return *status;
}

#define REQUIRE_SANDBOX() \
  if (!SandboxHere().ok()) GTEST_SKIP() << "no sandbox here: " << SandboxHere()

using Listener = scriptrun::LoopbackListener;

int Mode(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 07777) : -1;
}

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
    bool Logged(const std::string& text) const {
      for (const auto& line : system) {
        if (line.find(text) != std::string::npos) return true;
      }
      return false;
    }
  };

  Outcome RunScript(const std::string& script, const std::string& extra_hp = "",
                    const std::string& dataset = "synthetic://none",
                    std::atomic<int>* stop = nullptr,
                    const std::function<void(AttemptOptions&)>& tweak = nullptr) {
    Outcome out;
    AttemptOptions o;
    o.job.set_id(kJobId);
    o.job.set_owner("users/ada");
    o.job.set_model("script");
    o.job.set_dataset_url(dataset);
    const std::string hp =
        absl::StrFormat(R"({"command": "/bin/sh", "args": ["-c", %s], "total_steps": 4%s})",
                        Quote(script), extra_hp);
    EXPECT_TRUE(json::ToStruct(hp, o.job.mutable_hyperparameters()).ok()) << hp;
    o.attempt = 2;
    o.job_token = "job-token-abc";
    o.datasets.data_root = dir_ + "/data";
    o.store = store_.get();
    o.scripts.work_root = dir_ + "/work";
    o.scripts.policy.sandbox.enabled = SandboxHere().ok();
    o.stop = stop;
    o.sink.metrics = [&](std::vector<trainmesh::v1::MetricPoint> p) {
      out.points.insert(out.points.end(), p.begin(), p.end());
      if (stop != nullptr) *stop = training::kCancel;
    };
    o.sink.log = [&](std::string line) { out.system.push_back(std::move(line)); };
    o.sink.progress = [&](const trainmesh::v1::Progress& p) { out.progress = p; };
    o.output = [&](trainmesh::v1::LogLine::Stream s, std::string line) {
      out.output.push_back({s, std::move(line)});
    };
    o.chart = [&](trainmesh::v1::Chart c) { out.charts.push_back(std::move(c)); };
    if (tweak) tweak(o);
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
  EXPECT_THAT(out.output,
              Contains(std::pair{trainmesh::v1::LogLine::STDOUT, std::string("starting")}));
  EXPECT_THAT(out.output,
              Contains(std::pair{trainmesh::v1::LogLine::STDERR, std::string("warning: slow")}));
  EXPECT_EQ(out.progress.step(), 4);
  EXPECT_DOUBLE_EQ(out.progress.train_loss(), 0.5);
  EXPECT_EQ(out.result.artifact.uri(), absl::StrCat("artifact:", kJobId, "/model.pt"));
  EXPECT_EQ(*store_->Read(out.result.artifact.uri()), "weights");
  EXPECT_TRUE(store_->Path(kJobId, "config.json").ok());
  google::protobuf::Struct meta;
  ASSERT_TRUE(
      json::ToStruct(*store_->Read(absl::StrCat("artifact:", kJobId, "/model.json")), &meta).ok());
  EXPECT_EQ(meta.fields().at("metrics").struct_value().fields().at("train_loss").number_value(),
            0.5);
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
    EXPECT_THAT(out.output,
                Not(Contains(std::pair{trainmesh::v1::LogLine::STDOUT, std::string("0")})));
  }
  // Without an output model, the artifact is the run's description.
  EXPECT_EQ(out.result.artifact.uri(), absl::StrCat("artifact:", kJobId, "/model.json"));
}

TEST_F(ScriptJobTest, AFailingScriptIsTheUsersFailureWithItsLastLines) {
  const Outcome out =
      RunScript("echo 'loading data'; echo 'Traceback: KeyError: label' >&2; exit 3");
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
  const Outcome out = RunScript(R"(echo '{"step": 1, "metrics": {"x": 1}}'; sleep 60; echo never)",
                                "", "synthetic://none", &stop);
  EXPECT_EQ(out.result.outcome, training::Outcome::kCancelled);
  EXPECT_FALSE(out.Printed("never"));
  EXPECT_LT(out.result.device_seconds, 30);
}

TEST_F(ScriptJobTest, OutputsAreCollectedWithTheirFoldersAndNeverThroughALink) {
  REQUIRE_SANDBOX();
  const Outcome out = RunScript(R"(
    cat /etc/shadow >/dev/null 2>&1 && echo shadow-readable || echo shadow-refused
    cd "$TRAINMESH_OUTPUT_DIR"
    mkdir figures && printf png > figures/loss.png
    printf weights > model.pt
    ln -s /etc/shadow x.txt
    ln -s /etc figures/etc
    mkfifo pipe
  )");
  ASSERT_EQ(out.result.outcome, training::Outcome::kCompleted) << out.result.error;
  EXPECT_TRUE(out.Printed("shadow-refused"));
  EXPECT_FALSE(out.Printed("shadow-readable"));
  // The nested file, with its folder; the model.
  EXPECT_EQ(*store_->Read(absl::StrCat("artifact:", kJobId, "/figures/loss.png")), "png");
  EXPECT_EQ(out.result.artifact.uri(), absl::StrCat("artifact:", kJobId, "/model.pt"));
  // Not the link (nor /etc/shadow through it), not the FIFO (which did not
  // hang the collection either): skipped, and said so.
  EXPECT_EQ(store_->Path(kJobId, "x.txt").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Path(kJobId, "pipe").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Path(kJobId, "figures/etc").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(out.Logged("skipped output x.txt: a symbolic link"));
  EXPECT_TRUE(out.Logged("skipped output pipe: a FIFO"));
  EXPECT_TRUE(out.Logged("skipped output figures/etc: a symbolic link"));
  // The store keeps them to its own user.
  const std::string job_dir = absl::StrCat(dir_, "/artifacts/", kJobId);
  EXPECT_EQ(Mode(job_dir), 0700);
  EXPECT_EQ(Mode(job_dir + "/figures"), 0700);
  EXPECT_EQ(Mode(job_dir + "/figures/loss.png"), 0600);
  EXPECT_EQ(Mode(job_dir + "/model.pt"), 0600);
}

TEST_F(ScriptJobTest, TheAgentTheStoreAndOtherJobsAreOutOfReach) {
  REQUIRE_SANDBOX();
  constexpr char kOther[] = "00000000-0000-4000-8000-0000000000aa";
  ASSERT_TRUE(store_->Put(kOther, "model.pt", "someone else's weights", 1).ok());
  // Another job's working directory beside this one's.
  const std::string other_work = absl::StrCat(dir_, "/work/", kOther, "-1");
  ASSERT_EQ(mkdir(other_work.c_str(), 0755), 0);
  std::ofstream(other_work + "/notes.txt") << "private";
  const Outcome out = RunScript(absl::StrCat(
      "cat ", dir_, "/artifacts/", kOther, "/model.pt 2>/dev/null || echo other-artifact-refused;",
      "ls ", dir_, "/artifacts >/dev/null 2>&1 && echo store-listed || echo store-refused;", "cat ",
      other_work, "/notes.txt 2>/dev/null || echo other-work-refused;", "ls ", dir_, "/work;",
      "cat /proc/", getpid(),
      "/environ >/dev/null 2>&1 && echo agent-environ-readable || echo agent-environ-refused;",
      "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c 'tm_agent_[s]ecret'; true"));
  ASSERT_EQ(out.result.outcome, training::Outcome::kCompleted) << out.result.error;
  EXPECT_TRUE(out.Printed("other-artifact-refused"));
  EXPECT_TRUE(out.Printed("store-refused"));
  EXPECT_TRUE(out.Printed("other-work-refused"));
  EXPECT_FALSE(out.Printed(kOther));  // the work root shows only this job's folder
  EXPECT_TRUE(out.Printed(absl::StrCat(kJobId, "-2")));
  EXPECT_TRUE(out.Printed("agent-environ-refused"));
  EXPECT_THAT(out.output, Contains(std::pair{trainmesh::v1::LogLine::STDOUT, std::string("0")}));
  EXPECT_FALSE(out.Printed("someone else's weights"));
}

TEST_F(ScriptJobTest, TheNetworkOnlyWhenTheJobAsksAndTheAgentAllows) {
  REQUIRE_SANDBOX();
  Listener host;
  ASSERT_NE(host.port, 0);
  const std::string connect = absl::StrCat(
      "exec python3 -c 'import socket\ntry:\n  socket.create_connection((\"127.0.0.1\", ",
      host.port,
      "), timeout=5); print(\"connected\")\nexcept OSError as e:\n  print(\"refused:\", e)'");
  auto allow = [](AttemptOptions& o) { o.scripts.allow_network = true; };
  // The agent allows it, the job does not ask: no network.
  const Outcome quiet = RunScript(connect, "", "synthetic://none", nullptr, allow);
  ASSERT_EQ(quiet.result.outcome, training::Outcome::kCompleted) << quiet.result.error;
  EXPECT_TRUE(quiet.Printed("refused"));
  EXPECT_FALSE(quiet.Printed("connected"));
  // The job asks, the agent does not allow it: the job fails, saying why.
  const Outcome refused = RunScript(connect, R"(, "network": true)");
  EXPECT_EQ(refused.result.outcome, training::Outcome::kFailed);
  EXPECT_EQ(refused.result.error_kind, trainmesh::v1::ERROR_KIND_USER);
  EXPECT_THAT(refused.result.error, HasSubstr("--allow_script_network"));
  EXPECT_TRUE(refused.output.empty());  // it never ran
  // Both: it connects.
  const Outcome granted =
      RunScript(connect, R"(, "network": true)", "synthetic://none", nullptr, allow);
  ASSERT_EQ(granted.result.outcome, training::Outcome::kCompleted) << granted.result.error;
  EXPECT_TRUE(granted.Printed("connected"));
}

TEST_F(ScriptJobTest, AGigabyteOfOutputIsCutWithAClearError) {
  REQUIRE_SANDBOX();
  const Outcome out = RunScript(
      R"(i=0; while [ $i -lt 100 ]; do head -c 10000000 /dev/zero > "$TRAINMESH_OUTPUT_DIR/part-$i"; i=$((i+1)); done)",
      "", "synthetic://none", nullptr,
      [](AttemptOptions& o) { o.scripts.policy.sandbox.limits.max_output_bytes = 16 << 20; });
  EXPECT_EQ(out.result.outcome, training::Outcome::kFailed);
  EXPECT_EQ(out.result.error_kind, trainmesh::v1::ERROR_KIND_USER);
  EXPECT_THAT(out.result.error, HasSubstr("more than 16 MiB"));
  EXPECT_THAT(out.result.error, HasSubstr("--script_max_output_bytes"));
  EXPECT_EQ(store_->Path(kJobId, "part-0").status().code(),
            absl::StatusCode::kNotFound);  // nothing kept
}

TEST_F(ScriptJobTest, WithoutAWorkingSandboxScriptsAreRefusedUnlessTheAdminSaidOtherwise) {
  scriptrun::SandboxOptions broken;
  broken.bwrap = "/nonexistent/bwrap";
  const ScriptPolicy refused = DecideScriptPolicy(broken, /*unsafe_without_sandbox=*/false, dir_);
  EXPECT_THAT(refused.refusal, HasSubstr("--unsafe_scripts_without_sandbox"));
  EXPECT_THAT(refused.refusal, HasSubstr("bubblewrap is not installed"));
  const ScriptPolicy unsafe = DecideScriptPolicy(broken, /*unsafe_without_sandbox=*/true, dir_);
  EXPECT_TRUE(unsafe.refusal.empty());
  EXPECT_FALSE(unsafe.sandbox.enabled);
  EXPECT_THAT(unsafe.warning, HasSubstr("WITHOUT a sandbox"));
  scriptrun::SandboxOptions off;
  off.enabled = false;
  EXPECT_THAT(DecideScriptPolicy(off, false, dir_).refusal, HasSubstr("--sandbox=false"));
  if (SandboxHere().ok()) {
    const ScriptPolicy fine = DecideScriptPolicy(scriptrun::SandboxOptions{}, false, dir_);
    EXPECT_TRUE(fine.refusal.empty()) << fine.refusal;
    EXPECT_TRUE(fine.warning.empty());
    EXPECT_TRUE(fine.sandbox.enabled);
  }
}

}  // namespace
}  // namespace trainmesh::training
