#include "libs/training/script_job.h"

#include <signal.h>

#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <system_error>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "libs/json/json.h"
#include "libs/lineproto/lineproto.h"
#include "libs/recipes/job_spec.h"
#include "libs/recipes/manifest.h"
#include "libs/scriptrun/outputs.h"
#include "libs/scriptrun/script.h"

namespace trainmesh::training {
namespace {

namespace fs = std::filesystem;
using google::protobuf::util::TimeUtil;

constexpr size_t kTailLines = 30;
// Skipped outputs logged one by one; past this, only their number.
constexpr size_t kSkipsLogged = 20;

training::RunResult UserFailure(training::RunResult r, std::string error) {
  r.outcome = training::Outcome::kFailed;
  r.error_kind = trainmesh::v1::ERROR_KIND_USER;
  r.error = std::move(error);
  return r;
}

training::RunResult InfraFailure(training::RunResult r, std::string error) {
  r.outcome = training::Outcome::kFailed;
  r.error_kind = trainmesh::v1::ERROR_KIND_INFRA;
  r.error = std::move(error);
  return r;
}

std::string Bytes(int64_t n) {
  if (n >= (int64_t{1} << 30) && n % (int64_t{1} << 30) == 0) return absl::StrCat(n >> 30, " GiB");
  if (n >= (int64_t{1} << 20) && n % (int64_t{1} << 20) == 0) return absl::StrCat(n >> 20, " MiB");
  return absl::StrCat(n, " bytes");
}

std::string SignalHint(int signal) {
  switch (signal) {
    case SIGKILL:
      return " (out of memory?)";
    case SIGXCPU:
      return " (it used up its CPU time, the agent's --script_cpu_seconds)";
    case SIGXFSZ:
      return " (a file grew past the size limit)";
    default:
      return "";
  }
}

}  // namespace

training::RunResult RunScriptJob(const AttemptOptions& o) {
  const absl::Time started = absl::Now();
  training::RunResult r;
  r.device_type = "cpu";
  auto finish = [&](training::RunResult result) {
    result.device_seconds = absl::ToDoubleSeconds(absl::Now() - started);
    return result;
  };
  auto system_log = [&](const std::string& line) {
    if (o.sink.log) o.sink.log(line);
  };
  auto spec = recipes::ResolveJobSpec(o.job);
  if (!spec.ok()) return finish(UserFailure(r, std::string(spec.status().message())));
  if (!std::holds_alternative<recipes::ScriptParams>(spec->params)) {
    return finish(InfraFailure(r, absl::StrCat("recipe ", spec->recipe, " is not a script")));
  }
  const auto& hp = std::get<recipes::ScriptParams>(spec->params);
  scriptrun::ScriptOptions run;
  run.command = hp.command();
  run.args.assign(hp.args().begin(), hp.args().end());
  if (hp.timeout_seconds() > 0) run.timeout = absl::Seconds(hp.timeout_seconds());
  const int64_t total_steps = hp.total_steps();
  const bool wants_network = hp.network();
  if (wants_network && !o.scripts.allow_network) {
    return finish(UserFailure(
        r,
        "the job asks for the network (hyperparameters.network) but this agent does not "
        "let scripts reach it (an administrator allows it with --allow_script_network); "
        "submit it without network or to an agent that allows it"));
  }

  // A fresh working directory, and the dataset where the script can read it.
  const fs::path work = fs::path(o.scripts.work_root) / absl::StrCat(o.job.id(), "-", o.attempt);
  std::error_code ec;
  fs::remove_all(work, ec);
  fs::create_directories(work / "output", ec);
  if (ec)
    return finish(InfraFailure(r, absl::StrCat("cannot make a working directory: ", ec.message())));
  // scriptrun hands both directories to the script's user.
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code e;
      fs::remove_all(dir, e);
    }
  } cleanup{work};
  std::string dataset_path;
  if (!spec->dataset.synthetic()) {
    auto source = datasets::Resolve(spec->dataset, o.datasets);
    if (!source.ok()) {
      return finish(absl::IsUnavailable(source.status()) ||
                            absl::IsDeadlineExceeded(source.status())
                        ? InfraFailure(r, std::string(source.status().message()))
                        : UserFailure(r, std::string(source.status().message())));
    }
    dataset_path = source->path;
  }
  run.workdir = work.string();
  run.output_dir = (work / "output").string();
  run.sandbox = o.scripts.policy.sandbox;
  run.sandbox.network = wants_network;
  // The dataset file is the one thing of the host the script reads.
  if (!dataset_path.empty()) run.sandbox.read_only.push_back(dataset_path);
  run.env = {
      {"PATH", "/usr/local/bin:/usr/bin:/bin"},
      {"HOME", work.string()},
      {"LANG", "C.UTF-8"},
      {"PYTHONUNBUFFERED", "1"},
      {"TRAINMESH_JOB_ID", o.job.id()},
      {"TRAINMESH_ATTEMPT", absl::StrCat(o.attempt)},
      {"TRAINMESH_JOB_TOKEN", o.job_token},
      {"TRAINMESH_DATASET_URL", o.job.dataset_url()},
      {"TRAINMESH_DATASET_PATH", dataset_path},
      {"TRAINMESH_OUTPUT_DIR", (work / "output").string()},
      {"TRAINMESH_SEED",
       absl::StrCat(hp.seed())},
      {"TRAINMESH_HYPERPARAMETERS", json::FromStruct(spec->hyperparameters)},
  };
  if (!dataset_path.empty()) {
    // The unprivileged user must be able to read it.
    system_log(absl::StrCat("dataset at ", dataset_path));
  }
  if (!run.sandbox.enabled) {
    system_log(
        "no sandbox: the script runs unconfined on this agent (--unsafe_scripts_without_sandbox)");
  }
  system_log(absl::StrCat("running ", run.command, run.args.empty() ? "" : " ",
                          absl::StrJoin(run.args, " ")));

  std::deque<std::string> tail;
  std::map<std::string, double> last;  // the latest value of each metric
  int64_t step = 0;
  trainmesh::v1::Progress progress;
  progress.set_total_steps(total_steps);
  const absl::Time began = absl::Now();
  auto remember = [&](const std::string& line) {
    tail.push_back(line.size() > 2000 ? line.substr(0, 2000) : line);
    if (tail.size() > kTailLines) tail.pop_front();
  };
  auto on_line = [&](scriptrun::Stream stream, absl::string_view text) {
    if (stream == scriptrun::Stream::kStderr) {
      remember(std::string(text));
      if (o.output) o.output(trainmesh::v1::LogLine::STDERR, std::string(text));
      return;
    }
    lineproto::Line line = lineproto::ParseLine(text);
    if (auto* m = std::get_if<lineproto::MetricLine>(&line)) {
      std::vector<trainmesh::v1::MetricPoint> points;
      const auto now = TimeUtil::GetCurrentTime();
      for (const auto& [name, value] : m->metrics) {
        trainmesh::v1::MetricPoint p;
        p.set_name(name);
        p.set_step(m->step);
        p.set_value(value);
        p.set_run(m->run);
        *p.mutable_wall_time() = now;
        points.push_back(std::move(p));
        if (m->run.empty()) last[name] = value;
      }
      if (o.sink.metrics) o.sink.metrics(std::move(points));
      if (m->step > step) {
        step = m->step;
        progress.set_step(step);
        const double elapsed = absl::ToDoubleSeconds(absl::Now() - began);
        if (total_steps > 0) {
          progress.set_fraction(
              std::min(1.0, static_cast<double>(step) / static_cast<double>(total_steps)));
          if (step > 0 && step < total_steps) {
            const double eta =
                elapsed / static_cast<double>(step) * static_cast<double>(total_steps - step);
            *progress.mutable_eta() =
                TimeUtil::MillisecondsToDuration(static_cast<int64_t>(eta * 1000));
          }
        }
      }
      if (last.count("train_loss")) progress.set_train_loss(last["train_loss"]);
      if (last.count("val_loss")) progress.set_val_loss(last["val_loss"]);
      r.progress = progress;
      if (o.sink.progress) o.sink.progress(progress);
    } else if (auto* c = std::get_if<lineproto::ChartLine>(&line)) {
      trainmesh::v1::Chart chart;
      chart.set_title(c->title);
      for (const auto& name : c->metrics) chart.add_metrics(name);
      chart.set_type(c->type);
      if (o.chart) o.chart(std::move(chart));
    } else {
      const std::string& t = std::get<lineproto::LogLine>(line).text;
      remember(t);
      if (o.output) o.output(trainmesh::v1::LogLine::STDOUT, t);
    }
  };
  if (o.sink.progress) o.sink.progress(progress);
  absl::StatusOr<scriptrun::ScriptResult> result = scriptrun::Run(run, on_line, o.stop);
  if (!result.ok()) {
    return finish(absl::IsInvalidArgument(result.status())
                      ? UserFailure(r, std::string(result.status().message()))
                      : InfraFailure(r, std::string(result.status().message())));
  }
  const std::string last_lines =
      tail.empty() ? "" : absl::StrCat("\nlast output:\n", absl::StrJoin(tail, "\n"));
  const scriptrun::Limits& limits = run.sandbox.limits;
  if (result->output_limit_exceeded) {
    return finish(UserFailure(
        r, absl::StrCat("the script left more than ", Bytes(limits.max_output_bytes),
                        " (or more than ", limits.max_output_files,
                        " files) in its working and output directories and was stopped; "
                        "the agent's limit is --script_max_output_bytes",
                        last_lines)));
  }
  if (result->stopped) {
    const int stop = o.stop != nullptr ? o.stop->load() : 0;
    r.outcome =
        stop == training::kPreempt ? training::Outcome::kPreempted : training::Outcome::kCancelled;
    system_log(absl::StrCat("script stopped at step ", step));
    return finish(r);
  }
  if (result->timed_out) {
    return finish(UserFailure(
        r, absl::StrCat("the script ran past timeout_seconds (", absl::FormatDuration(run.timeout),
                        ") and was killed", last_lines)));
  }
  if (result->signal != 0) {
    return finish(UserFailure(r, absl::StrCat("the script was killed by signal ", result->signal,
                                              SignalHint(result->signal), last_lines)));
  }
  if (result->exit_code != 0) {
    return finish(UserFailure(
        r, absl::StrCat("the script exited with code ", result->exit_code, last_lines)));
  }

  // Completed: keep what it left in the output directory (regular files of
  // its user only, never through a link), and describe the run.
  std::optional<trainmesh::v1::Artifact> model;
  std::vector<std::string> skipped;
  scriptrun::CollectOptions collect;
  collect.owner = result->uid;
  if (limits.max_output_bytes > 0) collect.max_bytes = limits.max_output_bytes;
  absl::StatusOr<scriptrun::CollectReport> report = scriptrun::CollectOutputs(
      run.output_dir, collect, [&](const scriptrun::OutputFile& file) -> absl::Status {
        if (file.name == "model.json") {  // ours
          skipped.push_back("model.json: the agent writes it");
          return absl::OkStatus();
        }
        // The script is gone: the file cannot grow past the size it had.
        auto stored = o.store->PutFromFd(o.job.id(), file.name, file.fd, file.size, step);
        if (absl::IsInvalidArgument(stored.status()) ||
            absl::IsResourceExhausted(stored.status())) {
          skipped.push_back(absl::StrCat(file.name, ": ", stored.status().message()));
          return absl::OkStatus();
        }
        if (!stored.ok())
          return absl::Status(stored.status().code(),
                              absl::StrCat("storing ", file.name, ": ", stored.status().message()));
        if (file.name == "model.pt") model = *stored;
        return absl::OkStatus();
      });
  if (!report.ok()) {
    if (absl::IsFailedPrecondition(report.status()) || absl::IsNotFound(report.status())) {
      return finish(UserFailure(r, absl::StrCat("the script replaced its output directory: ",
                                                report.status().message())));
    }
    return finish(InfraFailure(r, std::string(report.status().message())));
  }
  skipped.insert(skipped.end(), report->skipped.begin(), report->skipped.end());
  for (size_t i = 0; i < skipped.size() && i < kSkipsLogged; ++i) {
    system_log(absl::StrCat("skipped output ", skipped[i]));
  }
  if (skipped.size() > kSkipsLogged)
    system_log(absl::StrCat("skipped ", skipped.size() - kSkipsLogged, " more outputs"));
  if (report->over_limit) {
    return finish(UserFailure(
        r, absl::StrCat("the script's output files come to more than ", Bytes(collect.max_bytes),
                        " or ", collect.max_files, " files; the agent kept the first ",
                        report->collected.size())));
  }
  recipes::ModelManifest manifest = recipes::ManifestOf(o.job, o.attempt);
  manifest.step = step;
  if (model.has_value()) manifest.weights = "model.pt";
  manifest.metrics.assign(last.begin(), last.end());
  auto described = o.store->Put(o.job.id(), "model.json", recipes::ManifestJson(manifest), step);
  if (!described.ok())
    return finish(
        InfraFailure(r, absl::StrCat("storing model.json: ", described.status().message())));
  r.artifact = model.has_value() ? *model : *described;
  progress.set_step(step);
  if (total_steps > 0) progress.set_fraction(1.0);
  r.progress = progress;
  r.outcome = training::Outcome::kCompleted;
  system_log(absl::StrCat("script finished at step ", step));
  return finish(r);
}

}  // namespace trainmesh::training

namespace trainmesh::training {

ScriptPolicy DecideScriptPolicy(const scriptrun::SandboxOptions& wanted,
                                bool unsafe_without_sandbox, const std::string& work_root) {
  ScriptPolicy policy;
  policy.sandbox = wanted;
  const absl::Status probe =
      wanted.enabled ? scriptrun::SandboxAvailable(wanted, work_root)
                     : absl::FailedPreconditionError("the agent runs with --sandbox=false");
  if (probe.ok()) return policy;
  if (unsafe_without_sandbox) {
    policy.sandbox.enabled = false;
    policy.warning = absl::StrCat(
        "script jobs run WITHOUT a sandbox (--unsafe_scripts_without_sandbox): they see this "
        "machine's files and "
        "network as the script user; ",
        probe.message());
    return policy;
  }
  policy.refusal = absl::StrCat(
      "this agent does not run script jobs: they need a sandbox and it has none (", probe.message(),
      "). An administrator can make bubblewrap work, or start the agent with "
      "--unsafe_scripts_without_sandbox "
      "to run scripts unconfined");
  return policy;
}

}  // namespace trainmesh::training
