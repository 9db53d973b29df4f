// Training throughput of the C++ trainer's loop (training::Train, exactly what
// an agent runs): the time from step --skip to the last step of a job, in
// examples and tokens per second, next to torch's own float32 matmul
// throughput on the same threads. --lora first trains a one-step base model,
// then measures the LoRA fine-tune of it. Prints one JSON line.
//   bench_training --recipe mlp-policy|lora-lm [--lora] --dataset URL --hp JSON
//                  [--threads N] [--skip S]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/artifacts/artifact_store.h"
#include "libs/json/json.h"
#include "libs/training/training.h"
#include "tools/cli/args.h"
#include "trainmesh/v1/jobs.pb.h"

namespace {

using namespace trainmesh;

struct Measured {
  training::RunResult result;
  double seconds = 0;
  int64_t from = 0, to = 0;
  int64_t parameters = 0, trainable = 0;
};

Measured Run(const v1::Job& job, int threads, int64_t skip, artifacts::ArtifactStore* store) {
  Measured m;
  training::RunOptions o;
  o.job = job;
  o.device = "cpu";
  o.threads = threads;
  o.store = store;
  o.eval_every = int64_t{1} << 40;  // validation only at the end, outside the measured steps
  std::chrono::steady_clock::time_point start;
  o.sink.progress = [&](const v1::Progress& p) {
    if (p.step() == skip) {
      start = std::chrono::steady_clock::now();
      m.from = p.step();
    }
    if (p.step() > skip && p.step() < p.total_steps()) {
      m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      m.to = p.step();
    }
  };
  o.sink.log = [&](std::string line) {
    static const std::regex counts("model: ([0-9]+) parameters, ([0-9]+) trainable");
    std::smatch match;
    if (std::regex_search(line, match, counts)) {
      m.parameters = std::stoll(match[1]);
      m.trainable = std::stoll(match[2]);
    }
  };
  m.result = training::Train(o);
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  auto args = cli::Parse(std::vector<std::string>(argv + 1, argv + argc),
                         {"recipe", "dataset", "hp", "threads", "skip"}, {"lora"}, {});
  if (!args.ok()) {
    std::fprintf(stderr, "%s\n", std::string(args.status().message()).c_str());
    return 2;
  }
  int threads = 1;
  int64_t skip = 20;
  (void)absl::SimpleAtoi(args->Get("threads", "1"), &threads);
  (void)absl::SimpleAtoi(args->Get("skip", "20"), &skip);
  const std::string root = (std::filesystem::temp_directory_path() / absl::StrCat("bench-training-", getpid())).string();
  std::filesystem::create_directories(root);
  artifacts::ArtifactStore store(root);

  v1::Job job;
  job.set_id("00000000-0000-4000-8000-000000000001");
  job.set_owner("bench");
  job.set_model(args->Get("recipe", "mlp-policy"));
  job.set_dataset_url(args->Get("dataset", "synthetic://reach"));
  if (auto s = json::ToStruct(args->Get("hp", "{}"), job.mutable_hyperparameters()); !s.ok()) {
    std::fprintf(stderr, "--hp: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (args->Has("lora")) {
    v1::Job base = job;
    base.set_id("00000000-0000-4000-8000-000000000002");
    (*base.mutable_hyperparameters()->mutable_fields())["steps"].set_number_value(1);
    Measured b = Run(base, threads, 0, &store);
    if (b.result.outcome != training::Outcome::kCompleted) {
      std::fprintf(stderr, "base: %s\n", b.result.error.c_str());
      return 1;
    }
    (*job.mutable_hyperparameters()->mutable_fields())["base_job"].set_string_value(base.id());
  }
  Measured m = Run(job, threads, skip, &store);
  std::filesystem::remove_all(root);
  if (m.result.outcome != training::Outcome::kCompleted || m.to <= m.from) {
    std::fprintf(stderr, "training: %s\n", m.result.error.c_str());
    return 1;
  }
  const auto& f = job.hyperparameters().fields();
  const double batch = f.count("batch_size") ? f.at("batch_size").number_value() : 64;
  const double steps = static_cast<double>(m.to - m.from);
  std::printf(
      "{\"steps\": %.0f, \"seconds\": %.4f, \"steps_per_second\": %.3f, \"samples_per_second\": %.1f, "
      "\"parameters\": %lld, \"trainable\": %lld, \"threads\": %d, \"matmul_gflops\": %.2f}\n",
      steps, m.seconds, steps / m.seconds, steps * batch / m.seconds, static_cast<long long>(m.parameters),
      static_cast<long long>(m.trainable), threads, training::MatmulGflops(threads));
  return 0;
}
