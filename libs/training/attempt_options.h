// What one attempt of a job is given, whatever its kind (attempt.h runs it).
// Torch-free, like training.h.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "libs/artifacts/artifact_store.h"
#include "libs/datasets/datasets.h"
#include "libs/scriptrun/script.h"
#include "libs/training/training.h"
#include "trainmesh/v1/jobs.pb.h"
#include "trainmesh/v1/metrics.pb.h"

namespace trainmesh::training {

// How scripts are confined here (script_job.h: DecideScriptPolicy).
struct ScriptPolicy {
  scriptrun::SandboxOptions sandbox;  // enabled: in the sandbox
  // Non-empty: scripts are refused with this error (it names the flag that
  // would let them run).
  std::string refusal;
  // Non-empty: scripts run unconfined; say so loudly at start-up.
  std::string warning;
};

// How an agent runs script jobs, decided once at its start.
struct ScriptSettings {
  // False: script jobs fail as the user's error ("this agent does not run
  // scripts"); the scheduler does not send them where it knows.
  bool allowed = true;
  // The sandbox (or why scripts are refused here): DecideScriptPolicy.
  ScriptPolicy policy;
  // Fresh working directories are made under it.
  std::string work_root;
  // Jobs that ask for the network get it only where this is on.
  bool allow_network = false;
};

struct AttemptOptions {
  trainmesh::v1::Job job;
  int attempt = 1;
  // The attempt's own credential (a script sees it; never the agent's).
  std::string job_token;
  // Where the attempt resumes (a checkpoint of an earlier attempt or job).
  std::optional<trainmesh::v1::Artifact> resume_from;
  // LibTorch recipes: the device ("auto", "cpu", "cuda", "cuda:N") and CPU
  // intra-op threads (0: LibTorch's default).
  std::string device = "auto";
  int threads = 0;
  datasets::DatasetOptions datasets;
  artifacts::ArtifactStore* store = nullptr;
  // kKeepGoing, kCancel or kPreempt: set by the agent, read by the attempt.
  const std::atomic<int>* stop = nullptr;
  absl::Duration checkpoint_interval = absl::Minutes(5);
  ScriptSettings scripts;
  // Metrics, progress, system log lines and checkpoints.
  Sink sink;
  // A script's own output lines (stdout that is not a metric, and stderr)
  // and the charts it declares.
  std::function<void(trainmesh::v1::LogLine::Stream, std::string)> output;
  std::function<void(trainmesh::v1::Chart)> chart;
};

}  // namespace trainmesh::training
