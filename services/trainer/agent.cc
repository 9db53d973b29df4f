#include "services/trainer/agent.h"

#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "libs/log/log.h"
#include "libs/recipes/recipes.h"
#include "libs/rpc/call.h"
#include "libs/telemetry/metrics.h"
#include "libs/training/nvml.h"
#include "libs/training/script_job.h"
#include "libs/training/training.h"
#include "services/trainer/metrics_reporter.h"

namespace trainmesh::trainer {

using google::protobuf::util::TimeUtil;
using trainmesh::v1::Assignment;
using trainmesh::v1::LogLine;

// One assignment in flight: what the training thread, the heartbeat thread
// and the agent share.
struct Agent::JobRun {
  explicit JobRun(const Assignment& a) : assignment(a), token(a.job_token()) {}

  std::string Token() {
    absl::MutexLock l(&mu);
    return token;
  }
  // What the heartbeat loop wakes for: the attempt ended, or it started
  // running (to say so at once).
  bool Wakeful() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return finished || state_changed; }

  const Assignment assignment;
  std::atomic<int> stop{training::kKeepGoing};
  std::atomic<bool> lost{false};  // the scheduler gave the job to another attempt
  MetricsReporter* reporter = nullptr;

  absl::Mutex mu;
  bool finished ABSL_GUARDED_BY(mu) = false;  // the attempt returned
  std::string token ABSL_GUARDED_BY(mu);
  trainmesh::v1::Progress progress ABSL_GUARDED_BY(mu);
  bool running ABSL_GUARDED_BY(mu) =
      false;  // past set-up: the first step (or script line) happened
  bool state_changed ABSL_GUARDED_BY(mu) = false;
  std::optional<trainmesh::v1::Artifact> checkpoint ABSL_GUARDED_BY(mu);
};

namespace {

// Prometheus: training steps done by this agent's jobs (rate() is the
// agent's throughput in steps/s) and attempts ended by outcome; every series
// exists from the start.
struct TrainerCounters {
  telemetry::Registry& registry = telemetry::Registry::Default();
  telemetry::Counter& steps =
      registry.AddCounter("trainmesh_trainer_steps_total", "Training steps done by this agent.", {})
          .With({});
  telemetry::Family<telemetry::Counter>& attempts = registry.AddCounter(
      "trainmesh_trainer_attempts_total",
      "Job attempts this agent ended, by outcome (completed, failed, cancelled, preempted, lost).",
      {"outcome"});
  TrainerCounters() {
    for (const char* outcome : {"completed", "failed", "cancelled", "preempted", "lost"})
      attempts.With({outcome});
  }
};

TrainerCounters& Counters() {
  static auto* counters = new TrainerCounters();
  return *counters;
}

const char* OutcomeName(training::Outcome outcome) {
  switch (outcome) {
    case training::Outcome::kCompleted:
      return "completed";
    case training::Outcome::kCancelled:
      return "cancelled";
    case training::Outcome::kPreempted:
      return "preempted";
    case training::Outcome::kFailed:
      return "failed";
  }
  return "failed";
}

bool Permanent(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::ALREADY_EXISTS:
      return true;
    default:
      return false;
  }
}

std::string ReadStateFile(const std::string& path) {
  if (path.empty()) return "";
  std::ifstream in(path);
  std::string id;
  std::getline(in, id);
  return std::string(absl::StripAsciiWhitespace(id));
}

void WriteStateFile(const std::string& path, const std::string& id) {
  if (path.empty()) return;
  const std::string tmp = absl::StrCat(path, ".tmp");
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << id << "\n";
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    TM_LOG(Warning, "cannot save the agent id").With("path", path);
  }
}

// This process's CPU share and resident memory since the previous sample.
class UsageSampler {
 public:
  trainmesh::v1::DeviceUsage Sample(int gpu_index) {
    trainmesh::v1::DeviceUsage u;
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
                       1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    const absl::Time now = absl::Now();
    const double wall = absl::ToDoubleSeconds(now - last_time_);
    const long cores = std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
    if (wall > 0 && last_cpu_ >= 0)
      u.set_cpu_utilization(std::min(1.0, (cpu - last_cpu_) / wall / cores));
    last_cpu_ = cpu;
    last_time_ = now;
    std::ifstream statm("/proc/self/statm");
    long pages = 0, resident = 0;
    if (statm >> pages >> resident) u.set_memory_used_bytes(resident * sysconf(_SC_PAGESIZE));
    if (auto gpu = training::nvml::Sample(gpu_index); gpu.has_value()) {
      u.set_gpu_utilization(gpu->gpu_utilization);
      u.set_gpu_memory_used_bytes(gpu->gpu_memory_used_bytes);
      u.set_gpu_memory_total_bytes(gpu->gpu_memory_total_bytes);
    }
    return u;
  }

 private:
  double last_cpu_ = -1;
  absl::Time last_time_ = absl::Now();
};

}  // namespace

Agent::Agent(AgentOptions options,
             std::shared_ptr<trainmesh::v1::SchedulerService::StubInterface> scheduler,
             std::shared_ptr<trainmesh::v1::MetricsService::StubInterface> metrics,
             training::AttemptRunner runner)
    : options_(std::move(options)),
      scheduler_(std::move(scheduler)),
      metrics_(std::move(metrics)),
      store_(options_.artifact_root),
      runner_(std::move(runner)) {
  device_type_ = training::ProbeDevice(options_.device).device_type;
  Counters();
}

Agent::~Agent() = default;

std::string Agent::agent_id() const {
  absl::MutexLock l(&mu_);
  return agent_id_;
}

grpc::ClientContext* Agent::NewContext(std::unique_ptr<grpc::ClientContext>& holder,
                                       absl::Duration deadline) const {
  holder = std::make_unique<grpc::ClientContext>();
  rpc::Prepare(holder.get(), options_.api_key, deadline);
  return holder.get();
}

absl::Status Agent::Register() {
  const training::DeviceInfo device = training::ProbeDevice(options_.device);
  trainmesh::v1::RegisterAgentRequest request;
  auto* agent = request.mutable_agent();
  agent->set_name(options_.name);
  agent->set_shared_pool(options_.shared_pool);
  agent->set_max_concurrent_jobs(options_.slots);
  agent->set_version(options_.version);
  agent->set_allow_scripts(options_.allow_scripts);
  agent->set_allow_shared_scripts(options_.allow_shared_scripts);
  auto* caps = agent->mutable_capabilities();
  caps->set_device_type(device.device_type);
  caps->set_gpu_count(device.gpu_count);
  caps->set_gpu_model(device.gpu_model);
  caps->set_gpu_memory_bytes(device.gpu_memory_bytes);
  caps->set_cpu_cores(device.cpu_cores);
  caps->set_memory_bytes(device.memory_bytes);
  for (const std::string& r : training::SupportedRecipes()) caps->add_recipes(r);
  if (options_.allow_scripts) caps->add_recipes(std::string(recipes::kScript));
  std::string id = agent_id();
  if (id.empty()) id = ReadStateFile(options_.state_file);
  absl::Duration backoff = absl::Milliseconds(200);
  while (true) {
    {
      absl::MutexLock l(&mu_);
      if (shutting_down_) return absl::CancelledError("shutting down");
    }
    request.set_agent_id(id);
    std::unique_ptr<grpc::ClientContext> ctx;
    trainmesh::v1::Agent registered;
    const grpc::Status s =
        scheduler_->RegisterAgent(NewContext(ctx, absl::Seconds(10)), request, &registered);
    if (s.ok()) {
      {
        absl::MutexLock l(&mu_);
        agent_id_ = registered.id();
      }
      WriteStateFile(options_.state_file, registered.id());
      registered_ = true;
      TM_LOG(Info, "agent registered")
          .With("agent_id", registered.id())
          .With("name", registered.name())
          .With("owner", registered.owner())
          .With("device", device.device_type)
          .With("slots", options_.slots)
          .With("shared_pool", registered.shared_pool());
      return absl::OkStatus();
    }
    if (!id.empty() && (s.error_code() == grpc::StatusCode::NOT_FOUND ||
                        s.error_code() == grpc::StatusCode::PERMISSION_DENIED)) {
      TM_LOG(Warning, "the saved agent id is not ours; registering anew").With("agent_id", id);
      id.clear();
      continue;
    }
    if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
        s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
        s.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
      return absl::PermissionDeniedError(absl::StrCat("cannot register: ", s.error_message()));
    }
    TM_LOG(Warning, "scheduler unreachable; retrying registration")
        .With("error", s.error_message())
        .With("retry_in", absl::FormatDuration(backoff));
    {
      absl::MutexLock l(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&shutting_down_), backoff);
    }
    backoff = std::min(absl::Seconds(5), 2 * backoff);
  }
}

absl::Status Agent::Run() {
  scripts_.allowed = options_.allow_scripts;
  scripts_.work_root = options_.work_root;
  scripts_.allow_network = options_.allow_script_network;
  if (options_.allow_scripts) {
    scriptrun::SandboxOptions sandbox;
    sandbox.enabled = options_.sandbox;
    sandbox.user = options_.script_user;
    sandbox.limits = options_.script_limits;
    scripts_.policy = training::DecideScriptPolicy(sandbox, options_.unsafe_scripts_without_sandbox,
                                                   options_.work_root);
    if (!scripts_.policy.refusal.empty()) {
      TM_LOG(Error, "script jobs will be refused").With("error", scripts_.policy.refusal);
    } else if (!scripts_.policy.warning.empty()) {
      TM_LOG(Warning, "script jobs run without a sandbox").With("error", scripts_.policy.warning);
    } else {
      TM_LOG(Info, "script jobs run in a sandbox")
          .With("user", options_.script_user)
          .With("network", options_.allow_script_network ? "when the job asks" : "never");
    }
  }
  if (absl::Status s = Register(); !s.ok()) return absl::IsCancelled(s) ? absl::OkStatus() : s;
  std::vector<std::thread> slots;
  for (int i = 0; i < std::max(1, options_.slots); ++i) slots.emplace_back([this, i] { Slot(i); });
  for (auto& t : slots) t.join();
  return absl::OkStatus();
}

void Agent::Shutdown() {
  absl::MutexLock l(&mu_);
  if (shutting_down_) return;
  shutting_down_ = true;
  for (grpc::ClientContext* poll : polls_) poll->TryCancel();
  for (JobRun* run : runs_) {
    int expected = training::kKeepGoing;
    run->stop.compare_exchange_strong(expected, training::kPreempt);
  }
}

void Agent::Slot(int index) {
  absl::Duration backoff = absl::Milliseconds(200);
  while (true) {
    trainmesh::v1::AcquireJobRequest request;
    std::unique_ptr<grpc::ClientContext> ctx;
    {
      absl::MutexLock l(&mu_);
      if (shutting_down_) return;
      request.set_agent_id(agent_id_);
      NewContext(ctx, options_.acquire_wait + absl::Seconds(15));
      polls_.insert(ctx.get());
    }
    request.mutable_wait()->set_seconds(absl::ToInt64Seconds(options_.acquire_wait));
    trainmesh::v1::AcquireJobResponse response;
    const grpc::Status s = scheduler_->AcquireJob(ctx.get(), request, &response);
    bool stopping;
    {
      absl::MutexLock l(&mu_);
      polls_.erase(ctx.get());
      stopping = shutting_down_;
    }
    if (s.ok()) {
      backoff = absl::Milliseconds(200);
      if (!response.has_assignment()) continue;
      if (stopping) {
        // Claimed as we were leaving: give it straight back.
        JobRun run(response.assignment());
        Report(run, "release", [&](grpc::ClientContext* c) {
          trainmesh::v1::ReleaseJobRequest release;
          release.set_job_id(run.assignment.job().id());
          release.set_job_token(run.Token());
          release.set_reason("agent shutting down");
          trainmesh::v1::ReleaseJobResponse out;
          return scheduler_->ReleaseJob(c, release, &out);
        });
        return;
      }
      Execute(response.assignment());
      continue;
    }
    if (stopping) return;
    if (s.error_code() == grpc::StatusCode::NOT_FOUND ||
        s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      // Forgotten or draining: register again (the same id when it is still ours).
      TM_LOG(Warning, "the scheduler does not know this agent as active; registering again")
          .With("slot", index)
          .With("error", s.error_message());
      if (!Register().ok()) return;
      continue;
    }
    TM_LOG(Warning, "cannot acquire work; retrying")
        .With("slot", index)
        .With("error", s.error_message())
        .With("retry_in", absl::FormatDuration(backoff));
    {
      absl::MutexLock l(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&shutting_down_), backoff);
    }
    backoff = std::min(absl::Seconds(5), 2 * backoff);
  }
}

void Agent::Report(JobRun& run, const std::string& what,
                   const std::function<grpc::Status(grpc::ClientContext*)>& call) {
  const absl::Time give_up = absl::Now() + options_.report_patience;
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    std::unique_ptr<grpc::ClientContext> ctx;
    const grpc::Status s = call(NewContext(ctx, absl::Seconds(10)));
    if (s.ok()) return;
    if (Permanent(s)) {
      TM_LOG(Warning, "the scheduler refused a report")
          .With("job_id", run.assignment.job().id())
          .With("attempt", run.assignment.attempt())
          .With("report", what)
          .With("error", s.error_message());
      return;
    }
    bool stopping;
    {
      absl::MutexLock l(&mu_);
      stopping = shutting_down_;
    }
    // While shutting down, the lease (and the reaper) will settle it.
    if (absl::Now() + backoff > give_up || (stopping && backoff > absl::Seconds(3))) {
      TM_LOG(Error, "giving up on a report; the lease will expire and the reaper settles the job")
          .With("job_id", run.assignment.job().id())
          .With("report", what)
          .With("error", s.error_message());
      return;
    }
    TM_LOG(Warning, "scheduler unreachable; retrying a report")
        .With("job_id", run.assignment.job().id())
        .With("report", what)
        .With("error", s.error_message());
    absl::SleepFor(backoff);
    backoff = std::min(absl::Seconds(5), 2 * backoff);
  }
}

void Agent::HeartbeatLoop(JobRun& run) {
  const auto& a = run.assignment;
  absl::Duration interval = absl::Seconds(a.heartbeat_interval().seconds()) +
                            absl::Nanoseconds(a.heartbeat_interval().nanos());
  if (interval <= absl::ZeroDuration()) interval = absl::Seconds(2);
  UsageSampler usage;
  absl::Time last_tick = absl::Now();
  const int gpu = device_type_ == "cuda" ? 0 : -1;
  while (true) {
    trainmesh::v1::HeartbeatRequest request;
    {
      absl::MutexLock l(&run.mu);
      run.mu.AwaitWithTimeout(absl::Condition(&run, &JobRun::Wakeful), interval);
      if (run.finished) break;
      run.state_changed = false;
      request.set_state(run.running ? trainmesh::v1::Job::RUNNING
                                    : trainmesh::v1::Job::INITIALIZING);
      *request.mutable_progress() = run.progress;
      if (run.checkpoint.has_value()) *request.mutable_checkpoint() = *run.checkpoint;
      request.set_job_token(run.token);
    }
    request.set_job_id(a.job().id());
    *request.mutable_usage() = usage.Sample(gpu);
    const absl::Time now = absl::Now();
    run.reporter->AddDeviceSeconds(absl::ToDoubleSeconds(now - last_tick));
    run.reporter->Usage(request.usage());
    last_tick = now;
    std::unique_ptr<grpc::ClientContext> ctx;
    trainmesh::v1::HeartbeatResponse response;
    const grpc::Status s =
        scheduler_->Heartbeat(NewContext(ctx, absl::Seconds(10)), request, &response);
    if (s.ok()) {
      if (!response.job_token().empty()) {
        absl::MutexLock l(&run.mu);
        run.token = response.job_token();
      }
      if (response.cancel_requested()) {
        int expected = training::kKeepGoing;
        if (run.stop.compare_exchange_strong(expected, training::kCancel)) {
          run.reporter->Log(LogLine::SYSTEM, "cancel requested; stopping");
          TM_LOG(Info, "job cancelled; stopping").With("job_id", a.job().id());
        }
      }
    } else if (Permanent(s)) {
      // Requeued to another attempt (our lease ran out) or gone: stop, report nothing.
      TM_LOG(Warning, "the scheduler no longer lets this attempt run; abandoning it")
          .With("job_id", a.job().id())
          .With("attempt", a.attempt())
          .With("error", s.error_message());
      run.lost = true;
      run.stop = training::kCancel;
    } else {
      TM_LOG(Warning, "heartbeat failed; training on")
          .With("job_id", a.job().id())
          .With("error", s.error_message());
    }
  }
  run.reporter->AddDeviceSeconds(absl::ToDoubleSeconds(absl::Now() - last_tick));
}

void Agent::Execute(const Assignment& assignment) {
  const trainmesh::v1::Job& job = assignment.job();
  JobRun run(assignment);
  {
    absl::MutexLock l(&mu_);
    runs_.insert(&run);
    if (shutting_down_) run.stop = training::kPreempt;
  }
  running_.fetch_add(1);
  ReporterOptions reporter_options;
  reporter_options.device_type = device_type_;
  MetricsReporter reporter(
      metrics_, job.id(), assignment.attempt(), [&run] { return run.Token(); }, reporter_options);
  run.reporter = &reporter;
  TM_LOG(Info, "job claimed")
      .With("job_id", job.id())
      .With("attempt", assignment.attempt())
      .With("recipe", job.model())
      .With("resume_from", assignment.resume_from().uri());
  reporter.Log(LogLine::SYSTEM, absl::StrCat("attempt ", assignment.attempt(), " on agent ",
                                             options_.name, " (", device_type_, ")"));
  std::thread heartbeats([this, &run] { HeartbeatLoop(run); });

  training::Sink sink;
  sink.metrics = [&](std::vector<trainmesh::v1::MetricPoint> points) {
    reporter.Points(std::move(points));
  };
  sink.log = [&](std::string line) { reporter.Log(LogLine::SYSTEM, std::move(line)); };
  // Steps counted so far: an attempt that resumes starts at its checkpoint's
  // step; steps done again after a rewind are not counted twice.
  int64_t counted_step = assignment.resume_from().step();
  sink.progress = [&](const trainmesh::v1::Progress& p) {
    absl::MutexLock l(&run.mu);
    if (p.step() > counted_step) {
      Counters().steps.Add(static_cast<double>(p.step() - counted_step));
      counted_step = p.step();
    }
    run.progress = p;
    if (!run.running && (p.step() > 0 || job.model() == recipes::kScript)) {
      run.running = true;
      run.state_changed = true;  // the heartbeat loop wakes for it
    }
  };
  sink.checkpoint = [&](const trainmesh::v1::Artifact& a) {
    absl::MutexLock l(&run.mu);
    run.checkpoint = a;
  };

  training::AttemptOptions attempt;
  attempt.job = job;
  attempt.attempt = assignment.attempt();
  attempt.job_token = run.Token();
  if (assignment.has_resume_from()) attempt.resume_from = assignment.resume_from();
  attempt.device = options_.device;
  attempt.threads = options_.threads;
  attempt.datasets = options_.datasets;
  attempt.store = &store_;
  attempt.stop = &run.stop;
  attempt.checkpoint_interval = options_.checkpoint_interval;
  attempt.scripts = scripts_;
  attempt.sink = sink;
  attempt.output = [&](LogLine::Stream stream, std::string line) {
    reporter.Log(stream, std::move(line));
  };
  attempt.chart = [&](trainmesh::v1::Chart chart) { reporter.Chart(std::move(chart)); };
  const training::RunResult result = runner_(attempt);
  {
    absl::MutexLock l(&run.mu);
    run.finished = true;
  }
  heartbeats.join();

  const std::string& id = job.id();
  std::optional<trainmesh::v1::Artifact> checkpoint = result.checkpoint;
  if (!checkpoint.has_value()) {
    absl::MutexLock l(&run.mu);
    checkpoint = run.checkpoint;
  }
  Counters().attempts.With({run.lost ? "lost" : OutcomeName(result.outcome)}).Add();
  if (run.lost) {
    // Another attempt owns the job now; nothing of ours is wanted.
    reporter.Finish(absl::Seconds(1));
  } else {
    switch (result.outcome) {
      case training::Outcome::kCompleted: {
        reporter.Finish(absl::Seconds(30));
        Report(run, "complete", [&](grpc::ClientContext* c) {
          trainmesh::v1::CompleteJobRequest request;
          request.set_job_id(id);
          request.set_job_token(run.Token());
          *request.mutable_artifact() = result.artifact;
          *request.mutable_progress() = result.progress;
          trainmesh::v1::CompleteJobResponse out;
          return scheduler_->CompleteJob(c, request, &out);
        });
        TM_LOG(Info, "job completed").With("job_id", id).With("artifact", result.artifact.uri());
        break;
      }
      case training::Outcome::kFailed: {
        reporter.Log(LogLine::SYSTEM, absl::StrCat("failed: ", result.error));
        reporter.Finish(absl::Seconds(30));
        Report(run, "fail", [&](grpc::ClientContext* c) {
          trainmesh::v1::FailJobRequest request;
          request.set_job_id(id);
          request.set_job_token(run.Token());
          request.set_error(result.error);
          request.set_kind(result.error_kind);
          if (checkpoint.has_value()) *request.mutable_checkpoint() = *checkpoint;
          trainmesh::v1::FailJobResponse out;
          return scheduler_->FailJob(c, request, &out);
        });
        TM_LOG(Info, "job failed")
            .With("job_id", id)
            .With("kind", trainmesh::v1::ErrorKind_Name(result.error_kind))
            .With("error", result.error.substr(0, 500));
        break;
      }
      case training::Outcome::kCancelled:
      case training::Outcome::kPreempted: {
        const bool preempted = result.outcome == training::Outcome::kPreempted;
        if (preempted) {
          reporter.Log(LogLine::SYSTEM,
                       checkpoint.has_value()
                           ? absl::StrCat("agent shutting down: checkpointed at step ",
                                          checkpoint->step(), "; the job goes back to the queue")
                           : "agent shutting down; the job goes back to the queue");
        }
        reporter.Finish(preempted ? absl::Seconds(5) : absl::Seconds(30));
        Report(run, "release", [&](grpc::ClientContext* c) {
          trainmesh::v1::ReleaseJobRequest request;
          request.set_job_id(id);
          request.set_job_token(run.Token());
          request.set_reason(preempted ? "agent shutting down" : "cancelled");
          if (checkpoint.has_value()) *request.mutable_checkpoint() = *checkpoint;
          trainmesh::v1::ReleaseJobResponse out;
          return scheduler_->ReleaseJob(c, request, &out);
        });
        TM_LOG(Info, preempted ? "job released" : "job stopped").With("job_id", id);
        break;
      }
    }
  }
  {
    absl::MutexLock l(&mu_);
    runs_.erase(&run);
  }
  running_.fetch_sub(1);
}

}  // namespace trainmesh::trainer
