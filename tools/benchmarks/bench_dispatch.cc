// Submit → claimed latency with idle agents: K agents long-poll AcquireJob;
// one client submits N jobs one after another (each once the previous one was
// claimed) through the jobs service, and the time from the CreateJob call to
// the AcquireJob response that carries the job is recorded. Each claimed job
// is completed at once, so every agent is idle again. Prints one JSON line.
//   bench_dispatch --jobs-endpoint H:P --scheduler-endpoint H:P --token JWT
//                  --agent-key KEY [--agents K] [--submissions N] [--warmup W]
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "tools/cli/args.h"
#include "trainmesh/v1/jobs.grpc.pb.h"
#include "trainmesh/v1/scheduler.grpc.pb.h"

namespace {

using namespace trainmesh;

void Authorize(grpc::ClientContext& ctx, const std::string& credential, absl::Duration deadline) {
  ctx.AddMetadata("authorization", "Bearer " + credential);
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  auto args = cli::Parse(std::vector<std::string>(argv + 1, argv + argc),
                         {"jobs-endpoint", "scheduler-endpoint", "token", "agent-key", "agents",
                          "submissions", "warmup"},
                         {}, {});
  if (!args.ok()) {
    std::fprintf(stderr, "%s\n", std::string(args.status().message()).c_str());
    return 2;
  }
  int agents = 4, submissions = 200, warmup = 10;
  (void)absl::SimpleAtoi(args->Get("agents", "4"), &agents);
  (void)absl::SimpleAtoi(args->Get("submissions", "200"), &submissions);
  (void)absl::SimpleAtoi(args->Get("warmup", "10"), &warmup);
  const std::string token = args->Get("token"), key = args->Get("agent-key");
  auto jobs = v1::JobService::NewStub(
      grpc::CreateChannel(args->Get("jobs-endpoint"), grpc::InsecureChannelCredentials()));
  auto scheduler = v1::SchedulerService::NewStub(
      grpc::CreateChannel(args->Get("scheduler-endpoint"), grpc::InsecureChannelCredentials()));

  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, absl::Time> claimed;  // job id -> when its AcquireJob returned
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};

  std::vector<std::string> ids;
  for (int a = 0; a < agents; ++a) {
    grpc::ClientContext ctx;
    Authorize(ctx, key, absl::Seconds(10));
    v1::RegisterAgentRequest request;
    request.mutable_agent()->set_name(absl::StrCat("bench-agent-", a));
    request.mutable_agent()->set_max_concurrent_jobs(1);
    request.mutable_agent()->mutable_capabilities()->set_device_type("cpu");
    request.mutable_agent()->mutable_capabilities()->add_recipes("mlp-policy");
    v1::Agent agent;
    grpc::Status s = scheduler->RegisterAgent(&ctx, request, &agent);
    if (!s.ok()) {
      std::fprintf(stderr, "RegisterAgent: %s\n", s.error_message().c_str());
      return 1;
    }
    ids.push_back(agent.id());
  }
  std::vector<std::thread> threads;
  for (int a = 0; a < agents; ++a) {
    threads.emplace_back([&, a] {
      while (!stop) {
        grpc::ClientContext ctx;
        Authorize(ctx, key, absl::Seconds(20));
        v1::AcquireJobRequest request;
        request.set_agent_id(ids[a]);
        request.mutable_wait()->set_seconds(5);
        v1::AcquireJobResponse response;
        grpc::Status s = scheduler->AcquireJob(&ctx, request, &response);
        const absl::Time now = absl::Now();
        if (!s.ok()) {
          if (!stop && errors.fetch_add(1) < 3) std::fprintf(stderr, "AcquireJob: %s\n", s.error_message().c_str());
          continue;
        }
        if (!response.has_assignment()) continue;
        const auto& assignment = response.assignment();
        {
          std::lock_guard<std::mutex> l(mu);
          claimed[assignment.job().id()] = now;
        }
        cv.notify_all();
        grpc::ClientContext done;
        Authorize(done, key, absl::Seconds(10));
        v1::CompleteJobRequest complete;
        complete.set_job_id(assignment.job().id());
        complete.set_job_token(assignment.job_token());
        v1::CompleteJobResponse out;
        s = scheduler->CompleteJob(&done, complete, &out);
        if (!s.ok() && errors.fetch_add(1) < 3) std::fprintf(stderr, "CompleteJob: %s\n", s.error_message().c_str());
      }
    });
  }

  v1::CreateJobRequest create;
  create.mutable_job()->set_model("mlp-policy");
  create.mutable_job()->set_dataset_url("synthetic://reach");
  (*create.mutable_job()->mutable_hyperparameters()->mutable_fields())["steps"].set_number_value(10);
  std::vector<double> latencies;
  for (int i = 0; i < warmup + submissions; ++i) {
    grpc::ClientContext ctx;
    Authorize(ctx, token, absl::Seconds(10));
    v1::Job job;
    const absl::Time t0 = absl::Now();
    grpc::Status s = jobs->CreateJob(&ctx, create, &job);
    if (!s.ok()) {
      std::fprintf(stderr, "CreateJob: %s\n", s.error_message().c_str());
      return 1;
    }
    std::unique_lock<std::mutex> l(mu);
    if (!cv.wait_for(l, std::chrono::seconds(30), [&] { return claimed.count(job.id()) > 0; })) {
      std::fprintf(stderr, "job %s was not claimed within 30 s\n", job.id().c_str());
      return 1;
    }
    if (i >= warmup) latencies.push_back(absl::ToDoubleMilliseconds(claimed[job.id()] - t0));
  }
  stop = true;
  for (auto& t : threads) t.join();
  double sum = 0;
  for (double v : latencies) sum += v;
  std::printf(
      "{\"agents\": %d, \"submissions\": %zu, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, "
      "\"max_ms\": %.3f, \"mean_ms\": %.3f, \"errors\": %d}\n",
      agents, latencies.size(), Percentile(latencies, 0.5), Percentile(latencies, 0.9),
      Percentile(latencies, 0.99), Percentile(latencies, 1.0), sum / static_cast<double>(latencies.size()),
      errors.load());
  return 0;
}
