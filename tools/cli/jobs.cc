// trainctl commands on jobs: submit, list, get, watch, cancel, retry,
// download, notifications.
#include "tools/cli/client.h"
#include "tools/cli/commands.h"
#include "tools/cli/progress.h"
#include "tools/cli/sweep.h"

#include <openssl/evp.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "libs/tls/tls.h"
#include "grpcpp/grpcpp.h"
#include "libs/status/field_violations.h"
#include "libs/status/grpc_status.h"
#include "trainmesh/v1/auth.grpc.pb.h"
#include "trainmesh/v1/jobs.grpc.pb.h"
#include "trainmesh/v1/metrics.grpc.pb.h"
#include "trainmesh/v1/scheduler.grpc.pb.h"

namespace trainmesh::cli {


// Follows `id` from `after_seq` until its terminal event, reconnecting when
// the server goes away (for up to 2 minutes). `on_event` sees every event,
// `on_lost` each lost connection (with the seq it resumes after). OK with the
// final state, or the error that ended it.
grpc::Status FollowEvents(Client& client, const std::string& id, int64_t after_seq,
                          const std::function<void(const JobEvent&)>& on_event,
                          const std::function<void(const grpc::Status&, int64_t)>& on_lost, Job::State* final) {
  absl::Time failing_since = absl::InfiniteFuture();
  absl::Duration backoff = absl::Milliseconds(200);
  while (true) {
    trainmesh::v1::WatchJobRequest request;
    request.set_id(id);
    request.set_after_seq(after_seq);
    auto ctx = client.Context(/*streaming=*/true);
    auto reader = client.jobs().WatchJob(ctx.get(), request);
    JobEvent e;
    std::optional<Job::State> final_state;
    while (reader->Read(&e)) {
      failing_since = absl::InfiniteFuture();
      backoff = absl::Milliseconds(200);
      after_seq = e.seq();
      on_event(e);
      if (e.terminal()) final_state = e.state();
    }
    grpc::Status s = reader->Finish();
    if (s.ok()) {
      if (!final_state.has_value()) {
        // The stream ended at once: the job had finished before after_seq.
        trainmesh::v1::GetJobRequest get;
        get.set_id(id);
        Job job;
        grpc::Status g = client.jobs().GetJob(client.Context().get(), get, &job);
        if (!g.ok()) return g;
        final_state = job.state();
      }
      *final = *final_state;
      return grpc::Status::OK;
    }
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE) return s;
    // The server went away (restart, drain): resume where we are.
    const absl::Time now = absl::Now();
    if (failing_since == absl::InfiniteFuture()) failing_since = now;
    if (now - failing_since > absl::Minutes(2)) return s;
    on_lost(s, after_seq);
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

// `watch`: prints the events (a live progress bar on a terminal); the exit
// code says how the job ended.
int Follow(Client& client, const std::string& id, int64_t after_seq) {
  const bool live = !client.json() && isatty(STDOUT_FILENO);
  bool bar_shown = false;
  auto clear_bar = [&] {
    if (bar_shown) std::cout << "\r\033[K" << std::flush;
    bar_shown = false;
  };
  auto on_event = [&](const JobEvent& e) {
    if (client.json()) {
      std::cout << Json(e) << std::endl;
    } else if (live && e.type() == JobEvent::PROGRESS) {
      // One line redrawn in place: step, %, loss, samples/s, ETA.
      ProgressView view;
      view.state = StateName(e.state());
      view.step = e.progress().step();
      view.total_steps = e.progress().total_steps();
      view.fraction = e.progress().fraction();
      view.train_loss = e.progress().train_loss();
      view.val_loss = e.progress().val_loss();
      view.samples_per_second = e.progress().samples_per_second();
      view.eta = absl::Seconds(e.progress().eta().seconds());
      std::cout << "\r\033[K" << ProgressLine(view, TerminalWidth() - 1) << std::flush;
      bar_shown = true;
    } else {
      clear_bar();
      PrintEvent(e);
    }
  };
  auto on_lost = [&](const grpc::Status& s, int64_t seq) {
    if (client.json()) return;
    clear_bar();
    std::cerr << "(connection lost: " << s.error_message() << "; resuming after #" << seq << ")\n";
  };
  Job::State final = Job::STATE_UNSPECIFIED;
  grpc::Status s = FollowEvents(client, id, after_seq, on_event, on_lost, &final);
  clear_bar();
  if (!s.ok()) return ReportError(s, client.connection().endpoint);
  return final == Job::COMPLETED ? kExitOk : kExitJobUnsuccessful;
}

// The job submit and sweep describe with their flags; the exit code of a
// usage error otherwise.
std::optional<int> JobFromFlags(const Args& args, Job* job) {
  job->set_model(args.Get("model"));
  job->set_dataset_url(args.Get("dataset"));
  if (args.Has("file")) {
    std::string text = ReadFile(args.Get("file"));
    if (text.empty()) return UsageError("cannot read " + args.Get("file"));
    auto parsed = google::protobuf::util::JsonStringToMessage(text, job->mutable_hyperparameters());
    if (!parsed.ok()) {
      return UsageError(absl::StrCat(args.Get("file"), " is not a JSON object: ",
                                     parsed.message().as_string()));
    }
  }
  for (const std::string& kv : args.All("param")) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return UsageError("-p takes KEY=VALUE, got " + kv);
    (*job->mutable_hyperparameters()->mutable_fields())[kv.substr(0, eq)] =
        ParseValue(kv.substr(eq + 1));
  }
  for (const std::string& kv : args.All("label")) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return UsageError("-l takes KEY=VALUE, got " + kv);
    (*job->mutable_labels())[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  int number = 0;
  if (args.Has("priority")) {
    if (!absl::SimpleAtoi(args.Get("priority"), &number)) return UsageError("--priority: integer");
    job->set_priority(number);
  }
  if (args.Has("max-attempts")) {
    if (!absl::SimpleAtoi(args.Get("max-attempts"), &number)) {
      return UsageError("--max-attempts: integer");
    }
    job->set_max_attempts(number);
  }
  job->set_allow_shared_pool(args.Has("allow-shared-pool"));
  return std::nullopt;
}

int Submit(Client& client, const Args& args) {
  trainmesh::v1::CreateJobRequest request;
  Job* job = request.mutable_job();
  if (std::optional<int> error = JobFromFlags(args, job)) return *error;
  job->set_request_id(args.Get("request-id"));
  request.set_validate_only(args.Has("validate-only"));
  Job created;
  grpc::Status s = client.jobs().CreateJob(client.Context().get(), request, &created);
  if (!s.ok()) return ReportError(s, client.connection().endpoint);
  if (client.json()) {
    std::cout << Json(created) << std::endl;
  } else if (request.validate_only()) {
    std::cout << "valid; the job would run with " << Json(created.hyperparameters()) << "\n";
  } else {
    std::cout << created.id() << "\n";
  }
  if (args.Has("wait") && !request.validate_only()) return Follow(client, created.id(), 0);
  return kExitOk;
}

int List(Client& client, const Args& args) {
  trainmesh::v1::ListJobsRequest request;
  for (const std::string& state : args.All("state")) {
    Job::State s;
    if (!Job::State_Parse(absl::AsciiStrToUpper(state), &s) || s == Job::STATE_UNSPECIFIED) {
      return UsageError("unknown state " + state);
    }
    request.add_states(s);
  }
  for (const std::string& label : args.All("label")) request.add_labels(label);
  request.set_model(args.Get("model"));
  request.set_retry_of(args.Get("retry-of"));
  int page_size = 0;
  if (args.Has("page-size") && !absl::SimpleAtoi(args.Get("page-size"), &page_size)) {
    return UsageError("--page-size: integer");
  }
  request.set_page_size(page_size);
  request.set_page_token(args.Get("page-token"));
  bool header = true;
  while (true) {
    trainmesh::v1::ListJobsResponse response;
    grpc::Status s = client.jobs().ListJobs(client.Context().get(), request, &response);
    if (!s.ok()) return ReportError(s, client.connection().endpoint);
    if (client.json()) {
      std::cout << Json(response) << std::endl;
    } else {
      if (header) {
        std::cout << absl::StrFormat("%-36s  %-12s  %-10s  %-16s  %s\n", "ID", "STATE", "MODEL",
                                     "PROGRESS", "CREATED");
        header = false;
      }
      for (const Job& job : response.jobs()) {
        std::cout << absl::StrFormat("%-36s  %-12s  %-10s  %-16s  %s\n", job.id(),
                                     StateName(job.state()), job.model(),
                                     ProgressText(job.progress()), FormatTime(job.create_time()));
      }
    }
    if (response.next_page_token().empty()) break;
    if (!args.Has("all")) {
      if (!client.json()) std::cout << "next page: --page-token " << response.next_page_token() << "\n";
      break;
    }
    request.set_page_token(response.next_page_token());
  }
  return kExitOk;
}

int MarkRead(Client& client, const Args& args) {
  trainmesh::v1::MarkNotificationsReadRequest request;
  for (size_t i = 1; i < args.positional.size(); ++i) {
    int64_t id = 0;
    if (!absl::SimpleAtoi(args.positional[i], &id)) {
      return UsageError("notifications read takes notification ids (numbers)");
    }
    request.add_ids(id);
  }
  if (args.Has("all")) {
    // Through the newest one there is now: one that arrives later stays unread.
    trainmesh::v1::ListNotificationsRequest newest;
    newest.set_page_size(1);
    trainmesh::v1::ListNotificationsResponse response;
    grpc::Status s = client.jobs().ListNotifications(client.Context().get(), newest, &response);
    if (!s.ok()) return ReportError(s, client.connection().endpoint);
    if (response.notifications().empty()) return kExitOk;
    request.set_through_id(response.notifications(0).id());
  }
  if (request.ids().empty() && !args.Has("all")) {
    return UsageError("notifications read takes ids or --all");
  }
  trainmesh::v1::MarkNotificationsReadResponse response;
  grpc::Status s = client.jobs().MarkNotificationsRead(client.Context().get(), request, &response);
  if (!s.ok()) return ReportError(s, client.connection().endpoint);
  if (client.json()) {
    std::cout << Json(response) << std::endl;
  } else {
    std::cout << "marked " << response.marked() << " read; " << response.unread_count()
              << " unread\n";
  }
  return kExitOk;
}

int Notifications(Client& client, const Args& args) {
  if (!args.positional.empty() && args.positional[0] == "read") return MarkRead(client, args);
  if (!args.positional.empty()) return UsageError("notifications takes no arguments but read");
  trainmesh::v1::ListNotificationsRequest request;
  request.set_unread_only(args.Has("unread"));
  int page_size = 0;
  if (args.Has("page-size") && !absl::SimpleAtoi(args.Get("page-size"), &page_size)) {
    return UsageError("--page-size: integer");
  }
  request.set_page_size(page_size);
  request.set_page_token(args.Get("page-token"));
  trainmesh::v1::ListNotificationsResponse response;
  grpc::Status s = client.jobs().ListNotifications(client.Context().get(), request, &response);
  if (!s.ok()) return ReportError(s, client.connection().endpoint);
  if (client.json()) {
    std::cout << Json(response) << std::endl;
    return kExitOk;
  }
  for (const auto& n : response.notifications()) {
    std::cout << absl::StrFormat("%s %-6d  %s  %s  %-10s  %-9s  %s\n", n.read() ? " " : "*", n.id(),
                                 FormatTime(n.create_time()), n.job_id(), n.model(),
                                 trainmesh::v1::Notification::Kind_Name(n.kind()), n.message());
  }
  std::cout << response.unread_count() << " unread\n";
  if (!response.next_page_token().empty()) {
    std::cout << "next page: --page-token " << response.next_page_token() << "\n";
  }
  return kExitOk;
}

int Get(Client& client, const std::string& id) {
  trainmesh::v1::GetJobRequest request;
  request.set_id(id);
  Job job;
  grpc::Status s = client.jobs().GetJob(client.Context().get(), request, &job);
  if (!s.ok()) return ReportError(s, client.connection().endpoint);
  if (client.json()) {
    std::cout << Json(job) << std::endl;
  } else {
    PrintJob(job);
  }
  return kExitOk;
}

int Cancel(Client& client, const std::string& id, const Args& args) {
  trainmesh::v1::CancelJobRequest request;
  request.set_id(id);
  request.set_reason(args.Get("reason"));
  Job job;
  grpc::Status s = client.jobs().CancelJob(client.Context().get(), request, &job);
  if (!s.ok()) return ReportError(s, client.connection().endpoint);
  if (client.json()) {
    std::cout << Json(job) << std::endl;
  } else {
    std::cout << job.id() << " " << StateName(job.state())
              << (job.cancel_requested() ? " (the trainer stops at its next heartbeat)" : "")
              << "\n";
  }
  return kExitOk;
}

int Retry(Client& client, const std::string& id, const Args& args) {
  trainmesh::v1::RetryJobRequest request;
  request.set_id(id);
  request.set_resume_from_checkpoint(args.Has("resume"));
  request.set_request_id(args.Get("request-id"));
  Job job;
  grpc::Status s = client.jobs().RetryJob(client.Context().get(), request, &job);
  if (!s.ok()) return ReportError(s, client.connection().endpoint);
  if (client.json()) {
    std::cout << Json(job) << std::endl;
  } else {
    std::cout << job.id() << "\n";
  }
  if (args.Has("wait")) return Follow(client, job.id(), 0);
  return kExitOk;
}

// Downloads artifact `name` of job `id` into `dir`, checking its SHA-256.
int DownloadOne(Client& client, const std::string& id, const std::string& name, const std::string& dir,
                bool quiet_if_missing) {
  trainmesh::v1::DownloadArtifactRequest request;
  request.set_id(id);
  request.set_name(name);
  auto ctx = client.Context(/*streaming=*/true);
  auto reader = client.jobs().DownloadArtifact(ctx.get(), request);
  const std::string path = absl::StrCat(dir, "/", name);
  const std::string partial = path + ".partial";
  std::ofstream out;
  trainmesh::v1::ArtifactChunk chunk;
  std::string expected_sha;
  int64_t written = 0, total = 0;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> sha(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(sha.get(), EVP_sha256(), nullptr);
  while (reader->Read(&chunk)) {
    if (!out.is_open()) out.open(partial, std::ios::binary | std::ios::trunc);
    if (!chunk.sha256().empty()) expected_sha = chunk.sha256();
    if (chunk.total_size() > 0) total = chunk.total_size();
    out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
    EVP_DigestUpdate(sha.get(), chunk.data().data(), chunk.data().size());
    written += static_cast<int64_t>(chunk.data().size());
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) {
    std::remove(partial.c_str());
    if (quiet_if_missing && s.error_code() == grpc::StatusCode::NOT_FOUND) return kExitOk;
    return ReportError(s, client.connection().endpoint);
  }
  if (!out.is_open()) out.open(partial, std::ios::binary | std::ios::trunc);  // an empty file
  out.close();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  EVP_DigestFinal_ex(sha.get(), digest, &digest_len);
  std::string hex;
  for (unsigned int i = 0; i < digest_len; ++i) absl::StrAppend(&hex, absl::StrFormat("%02x", digest[i]));
  if ((total > 0 && written != total) || (!expected_sha.empty() && hex != expected_sha)) {
    std::remove(partial.c_str());
    std::cerr << "error: " << name << " arrived damaged (" << written << " of " << total
              << " bytes, sha256 mismatch); try again\n";
    return kExitError;
  }
  if (std::rename(partial.c_str(), path.c_str()) != 0) {
    std::cerr << "error: cannot write " << path << "\n";
    return kExitError;
  }
  std::cout << path << "  " << written << " bytes  sha256 " << hex << "\n";
  return kExitOk;
}

int Download(Client& client, const std::string& id, const Args& args) {
  const std::string dir = args.Get("output", ".");
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    std::cerr << "error: cannot create " << dir << "\n";
    return kExitError;
  }
  if (args.Has("name")) return DownloadOne(client, id, args.Get("name"), dir, false);
  trainmesh::v1::GetJobRequest get;
  get.set_id(id);
  Job job;
  grpc::Status s = client.jobs().GetJob(client.Context().get(), get, &job);
  if (!s.ok()) return ReportError(s, client.connection().endpoint);
  if (job.artifact().uri().empty()) {
    std::cerr << "error: job " << id << " has no model yet (state " << StateName(job.state()) << ")\n";
    return kExitError;
  }
  const std::string name = job.artifact().uri().substr(job.artifact().uri().rfind('/') + 1);
  if (int rc = DownloadOne(client, id, name, dir, false); rc != kExitOk) return rc;
  if (name != "model.json") return DownloadOne(client, id, "model.json", dir, /*quiet_if_missing=*/true);
  return kExitOk;
}

}  // namespace trainmesh::cli
