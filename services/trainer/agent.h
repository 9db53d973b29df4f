// The trainer agent: registers with the scheduler (keeping its id in a state
// file across restarts), long-polls for work on N slots, runs each assignment
// through the attempt runner (libs/training/attempt.h: a LibTorch recipe or a
// user script), heartbeats while it runs (a cancel or a lost lease stops it
// within one interval), streams metrics and logs, and reports the outcome. Shutdown() checkpoints
// running jobs and gives their leases back so another agent resumes them at once.
#pragma once

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/artifacts/artifact_store.h"
#include "libs/datasets/datasets.h"
#include "libs/scriptrun/script.h"
#include "libs/training/attempt.h"
#include "trainmesh/v1/metrics.grpc.pb.h"
#include "trainmesh/v1/scheduler.grpc.pb.h"

namespace trainmesh::trainer {

struct AgentOptions {
  std::string name;
  // The agent's API key (scope "agent"); jobs never see it.
  std::string api_key;
  // Where the agent keeps its id between restarts ("" keeps none).
  std::string state_file;
  int slots = 1;
  std::string device = "auto";
  int threads = 0;
  bool shared_pool = false;
  bool allow_scripts = true;
  bool allow_shared_scripts = false;
  datasets::DatasetOptions datasets;
  std::string artifact_root;
  // Fresh working directories for script jobs are made under it.
  std::string work_root;
  std::string script_user = "nobody";
  // Script jobs run in a bubblewrap sandbox (libs/scriptrun). Without one
  // that works (probed at start) they are refused, unless the administrator
  // chose to run them unconfined.
  bool sandbox = true;
  bool unsafe_scripts_without_sandbox = false;
  // Jobs that ask for the network get it only where this is on.
  bool allow_script_network = false;
  scriptrun::Limits script_limits;
  absl::Duration acquire_wait = absl::Seconds(30);
  absl::Duration checkpoint_interval = absl::Minutes(5);
  // How long outcome reports are retried while the scheduler is unreachable.
  absl::Duration report_patience = absl::Minutes(30);
  std::string version = "dev";
};

class Agent {
 public:
  // `runner` runs each attempt (tests hand in their own).
  Agent(AgentOptions options,
        std::shared_ptr<trainmesh::v1::SchedulerService::StubInterface> scheduler,
        std::shared_ptr<trainmesh::v1::MetricsService::StubInterface> metrics,
        training::AttemptRunner runner = training::RunAttempt);
  ~Agent();

  // Registers (retrying while the scheduler is unreachable), then runs the
  // slots until Shutdown(); returns once every running job is reported.
  absl::Status Run();
  // Stops taking work; running jobs checkpoint and are released.
  void Shutdown();

  std::string agent_id() const;
  int running() const { return running_.load(); }
  bool registered() const { return registered_.load(); }

 private:
  struct JobRun;

  absl::Status Register();
  void Slot(int index);
  void Execute(const trainmesh::v1::Assignment& assignment);
  void HeartbeatLoop(JobRun& run);
  void Report(JobRun& run, const std::string& what,
              const std::function<grpc::Status(grpc::ClientContext*)>& call);
  grpc::ClientContext* NewContext(std::unique_ptr<grpc::ClientContext>& holder,
                                  absl::Duration deadline) const;

  const AgentOptions options_;
  const std::shared_ptr<trainmesh::v1::SchedulerService::StubInterface> scheduler_;
  const std::shared_ptr<trainmesh::v1::MetricsService::StubInterface> metrics_;
  artifacts::ArtifactStore store_;
  std::string device_type_;
  const training::AttemptRunner runner_;
  // Decided in Run() before the slots start; read-only after.
  training::ScriptSettings scripts_;

  mutable absl::Mutex mu_;
  std::string agent_id_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::set<grpc::ClientContext*> polls_ ABSL_GUARDED_BY(mu_);  // in-flight AcquireJob calls
  std::set<JobRun*> runs_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> running_{0};
  std::atomic<bool> registered_{false};
};

}  // namespace trainmesh::trainer
