#include "services/trainer/script_job.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <map>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "libs/json/json.h"
#include "libs/lineproto/lineproto.h"
#include "libs/scriptrun/script.h"

namespace trainmesh::trainer {
namespace {

namespace fs = std::filesystem;
using google::protobuf::Struct;
using google::protobuf::util::TimeUtil;

constexpr size_t kTailLines = 30;

const google::protobuf::Value* Field(const Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? nullptr : &it->second;
}

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

// Copies a file into the store (the working directory may be on another filesystem).
absl::StatusOr<trainmesh::v1::Artifact> Import(artifacts::ArtifactStore& store, const std::string& job,
                                               const std::string& name, const fs::path& from, int64_t step) {
  auto scratch = store.ScratchPath(job, name);
  if (!scratch.ok()) return scratch.status();
  std::error_code ec;
  fs::copy_file(from, *scratch, fs::copy_options::overwrite_existing, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("copying ", from.filename().string(), ": ", ec.message()));
  return store.Adopt(job, name, *scratch, step);
}

}  // namespace

training::RunResult RunScriptJob(const ScriptJobOptions& o) {
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
  const Struct& hp = o.job.hyperparameters();
  const auto* command = Field(hp, "command");
  if (command == nullptr || command->string_value().empty()) {
    return finish(UserFailure(r, "hyperparameters.command is required for the script recipe"));
  }
  scriptrun::ScriptOptions run;
  run.command = command->string_value();
  if (const auto* args = Field(hp, "args")) {
    for (const auto& a : args->list_value().values()) run.args.push_back(a.string_value());
  }
  const auto* timeout = Field(hp, "timeout_seconds");
  if (timeout != nullptr && timeout->number_value() > 0) run.timeout = absl::Seconds(timeout->number_value());
  const auto* total = Field(hp, "total_steps");
  const int64_t total_steps = total != nullptr ? static_cast<int64_t>(total->number_value()) : 0;
  const auto* seed = Field(hp, "seed");

  // A fresh working directory, and the dataset where the script can read it.
  const fs::path work = fs::path(o.work_root) / absl::StrCat(o.job.id(), "-", o.attempt);
  std::error_code ec;
  fs::remove_all(work, ec);
  fs::create_directories(work / "output", ec);
  if (ec) return finish(InfraFailure(r, absl::StrCat("cannot make a working directory: ", ec.message())));
  chmod(work.c_str(), 0755);
  if (geteuid() == 0 && !o.user.empty()) {
    // The script writes its outputs as the unprivileged user.
    if (passwd* pw = getpwnam(o.user.c_str()); pw != nullptr) {
      if (chown((work / "output").c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        return finish(InfraFailure(r, "cannot hand the output directory to the script user"));
      }
    }
  }
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code e;
      fs::remove_all(dir, e);
    }
  } cleanup{work};
  std::string dataset_path;
  if (o.job.dataset_url().rfind("synthetic://", 0) != 0) {
    auto source = datasets::Resolve(o.job.dataset_url(), o.datasets);
    if (!source.ok()) {
      return finish(absl::IsUnavailable(source.status()) || absl::IsDeadlineExceeded(source.status())
                        ? InfraFailure(r, std::string(source.status().message()))
                        : UserFailure(r, std::string(source.status().message())));
    }
    dataset_path = source->path;
  }
  run.workdir = work.string();
  run.user = o.user;
  run.memory_bytes = o.memory_bytes;
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
      {"TRAINMESH_SEED", absl::StrCat(seed != nullptr ? static_cast<int64_t>(seed->number_value()) : 0)},
      {"TRAINMESH_HYPERPARAMETERS", json::FromStruct(hp)},
  };
  if (!dataset_path.empty()) {
    // The unprivileged user must be able to read it.
    system_log(absl::StrCat("dataset at ", dataset_path));
  }
  system_log(absl::StrCat("running ", run.command, run.args.empty() ? "" : " ", absl::StrJoin(run.args, " ")));

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
          progress.set_fraction(std::min(1.0, static_cast<double>(step) / static_cast<double>(total_steps)));
          if (step > 0 && step < total_steps) {
            const double eta = elapsed / static_cast<double>(step) * static_cast<double>(total_steps - step);
            *progress.mutable_eta() = TimeUtil::MillisecondsToDuration(static_cast<int64_t>(eta * 1000));
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
    return finish(absl::IsInvalidArgument(result.status()) ? UserFailure(r, std::string(result.status().message()))
                                                           : InfraFailure(r, std::string(result.status().message())));
  }
  const std::string last_lines = tail.empty() ? "" : absl::StrCat("\nlast output:\n", absl::StrJoin(tail, "\n"));
  if (result->stopped) {
    const int stop = o.stop != nullptr ? o.stop->load() : 0;
    r.outcome = stop == training::kPreempt ? training::Outcome::kPreempted : training::Outcome::kCancelled;
    system_log(absl::StrCat("script stopped at step ", step));
    return finish(r);
  }
  if (result->timed_out) {
    return finish(UserFailure(r, absl::StrCat("the script ran past timeout_seconds (",
                                              absl::FormatDuration(run.timeout), ") and was killed", last_lines)));
  }
  if (result->signal != 0) {
    return finish(UserFailure(r, absl::StrCat("the script was killed by signal ", result->signal,
                                              result->signal == 9 ? " (out of memory?)" : "", last_lines)));
  }
  if (result->exit_code != 0) {
    return finish(UserFailure(r, absl::StrCat("the script exited with code ", result->exit_code, last_lines)));
  }

  // Completed: keep what it left in the output directory, and describe the run.
  std::optional<trainmesh::v1::Artifact> model;
  for (const auto& entry : fs::directory_iterator(work / "output", ec)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    if (name == "model.json") continue;  // ours
    auto stored = Import(*o.store, o.job.id(), name, entry.path(), step);
    if (!stored.ok()) {
      if (absl::IsInvalidArgument(stored.status())) {
        system_log(absl::StrCat("skipped output file ", name, ": ", stored.status().message()));
        continue;
      }
      return finish(InfraFailure(r, absl::StrCat("storing ", name, ": ", stored.status().message())));
    }
    if (name == "model.pt") model = *stored;
  }
  Struct meta;
  auto& f = *meta.mutable_fields();
  f["format"].set_string_value("trainmesh-model/1");
  f["job_id"].set_string_value(o.job.id());
  f["owner"].set_string_value(o.job.owner());
  f["recipe"].set_string_value("script");
  f["dataset_url"].set_string_value(o.job.dataset_url());
  *f["hyperparameters"].mutable_struct_value() = hp;
  f["step"].set_number_value(static_cast<double>(step));
  f["attempt"].set_number_value(o.attempt);
  if (model.has_value()) f["weights"].set_string_value("model.pt");
  auto* metrics = f["metrics"].mutable_struct_value()->mutable_fields();
  for (const auto& [name, value] : last) {
    if (std::isfinite(value)) (*metrics)[name].set_number_value(value);
  }
  auto described = o.store->Put(o.job.id(), "model.json", json::FromStruct(meta), step);
  if (!described.ok()) return finish(InfraFailure(r, absl::StrCat("storing model.json: ", described.status().message())));
  r.artifact = model.has_value() ? *model : *described;
  progress.set_step(step);
  if (total_steps > 0) progress.set_fraction(1.0);
  r.progress = progress;
  r.outcome = training::Outcome::kCompleted;
  system_log(absl::StrCat("script finished at step ", step));
  return finish(r);
}

}  // namespace trainmesh::trainer
