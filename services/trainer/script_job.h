// The `script` recipe: a user's command run as untrusted code (see
// libs/scriptrun) in a fresh working directory. Its stdout speaks the
// JSON-lines metric protocol (libs/lineproto); everything else it prints is
// logged. The environment holds only what the job needs — its own job token,
// never the agent's credentials.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "libs/artifacts/artifact_store.h"
#include "libs/datasets/datasets.h"
#include "libs/training/training.h"
#include "trainmesh/v1/jobs.pb.h"
#include "trainmesh/v1/metrics.pb.h"

namespace trainmesh::trainer {

struct ScriptJobOptions {
  trainmesh::v1::Job job;
  int attempt = 1;
  std::string job_token;
  datasets::DatasetOptions datasets;
  artifacts::ArtifactStore* store = nullptr;
  std::string work_root;
  std::string user = "nobody";
  int64_t memory_bytes = int64_t{16} << 30;
  const std::atomic<int>* stop = nullptr;
  // metrics, progress and system log lines, as for LibTorch recipes.
  training::Sink sink;
  // The script's own output lines (stdout that is not a metric, and stderr).
  std::function<void(trainmesh::v1::LogLine::Stream, std::string)> output;
  std::function<void(trainmesh::v1::Chart)> chart;
};

// Runs the script to its end. Completed: the files the script left in
// $TRAINMESH_OUTPUT_DIR become artifacts, the job's artifact being model.pt
// when there is one, else a model.json describing the run. A non-zero exit, a
// signal or a timeout is the user's failure, with the last output lines.
training::RunResult RunScriptJob(const ScriptJobOptions& options);

}  // namespace trainmesh::trainer
