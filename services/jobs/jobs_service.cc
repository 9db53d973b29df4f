#include "services/jobs/jobs_service.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/message_differencer.h"
#include "libs/artifacts/artifact_store.h"
#include "libs/log/log.h"
#include "libs/pagination/page.h"
#include "libs/recipes/recipes.h"
#include "libs/pg/ids.h"
#include "libs/recipes/job_spec.h"
#include "libs/status/field_violations.h"
#include "libs/status/status_macros.h"
#include "services/jobs/state_machine.h"

namespace trainmesh::jobs {
namespace {

using status::FieldViolations;
using trainmesh::v1::Job;
using trainmesh::v1::JobEvent;

constexpr int kDefaultPriority = 0;
constexpr int kMinPriority = -100;
constexpr int kMaxPriority = 100;
constexpr int kDefaultMaxAttempts = 3;
constexpr int kMaxMaxAttempts = 20;
constexpr int64_t kDefaultQueueTimeoutSeconds = 24 * 3600;
constexpr int64_t kMaxQueueTimeoutSeconds = 30 * 24 * 3600;
constexpr int kMaxLabels = 64;
constexpr size_t kMaxLabelValueBytes = 256;
constexpr size_t kMaxRequestIdBytes = 128;
constexpr size_t kMaxReasonBytes = 1024;
constexpr int kDefaultEventsPageSize = 100;
// Notifications one MarkNotificationsRead names at most (a page of them).
constexpr int kMaxIdsPerCall = pagination::PageSizes{}.max;

void CheckId(absl::string_view id, const std::string& field, FieldViolations* v) {
  if (id.empty()) {
    v->Add(field, "is required");
  } else if (!pg::IsUuid(id)) {
    v->Add(field, "must be a job id (a UUID such as 1b4e28ba-2fa1-11d2-883f-0016d3cca427)");
  }
}

// Label keys: lower-case letters, digits and . _ / - (as Kubernetes label names).
bool IsLabelKey(absl::string_view key) {
  if (key.empty() || key.size() > 63) return false;
  if (!absl::ascii_islower(key[0]) && !absl::ascii_isdigit(key[0])) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '.' || c == '_' || c == '/' ||
           c == '-';
  });
}

bool IsPrintable(absl::string_view s) {
  return std::none_of(s.begin(), s.end(),
                      [](char c) { return absl::ascii_iscntrl(static_cast<unsigned char>(c)); });
}

void CheckLabels(const google::protobuf::Map<std::string, std::string>& labels,
                 const std::string& field, FieldViolations* v) {
  if (labels.size() > kMaxLabels) {
    v->Add(field, absl::StrCat("at most ", kMaxLabels, " labels"));
    return;
  }
  for (const auto& [key, value] : labels) {
    if (!IsLabelKey(key)) {
      v->Add(absl::StrCat(field, ".", key),
             "label keys are 1-63 of a-z 0-9 . _ / - starting with a letter or digit");
    } else if (value.size() > kMaxLabelValueBytes || !IsPrintable(value)) {
      v->Add(absl::StrCat(field, ".", key),
             absl::StrCat("label values are at most ", kMaxLabelValueBytes,
                          " printable bytes"));
    }
  }
}

// The parameters that define a job, for telling a replayed create from a
// different job reusing the same request_id.
bool SameSubmission(const Job& a, const Job& b) {
  return a.model() == b.model() && a.dataset_url() == b.dataset_url() &&
         a.priority() == b.priority() && a.max_attempts() == b.max_attempts() &&
         a.allow_shared_pool() == b.allow_shared_pool() &&
         google::protobuf::util::MessageDifferencer::Equivalent(a.hyperparameters(),
                                                                b.hyperparameters()) &&
         a.labels().size() == b.labels().size() &&
         std::all_of(a.labels().begin(), a.labels().end(), [&b](const auto& kv) {
           auto it = b.labels().find(kv.first);
           return it != b.labels().end() && it->second == kv.second;
         });
}

void CheckRequestId(const std::string& request_id, const std::string& field,
                    FieldViolations* v) {
  if (request_id.size() > kMaxRequestIdBytes || !IsPrintable(request_id)) {
    v->Add(field, absl::StrCat("must be at most ", kMaxRequestIdBytes, " printable bytes"));
  }
}

}  // namespace

absl::StatusOr<Job> JobsService::QueueAtOnce(const Job& job) {
  return store_->Update(job.owner(), job.id(), [](const StoredJob& current) {
    Mutation m{current.job, current.last_report_seq};
    if (current.job.state() != Job::PENDING) return absl::StatusOr<Mutation>(m);
    m.job.set_state(Job::QUEUED);
    m.event = JobEvent::STATE_CHANGED;
    m.message = "queued";
    return absl::StatusOr<Mutation>(m);
  });
}

JobsService::JobsService(JobStore* store, JobsServiceOptions options)
    : store_(store), options_(std::move(options)), page_tokens_(options_.page_token_secret) {}

absl::StatusOr<Job> JobsService::CreateJob(const Principal& caller,
                                           const trainmesh::v1::CreateJobRequest& request) {
  FieldViolations v;
  if (!request.has_job()) {
    v.Add("job", "is required");
    return v.ToStatus();
  }
  const Job& in = request.job();
  Job job;
  job.set_owner(caller.subject());
  job.set_model(in.model());
  job.set_dataset_url(in.dataset_url());
  if (auto spec = recipes::ResolveJobSpec(in.model(), in.hyperparameters(), in.dataset_url(),
                                         "job", &v)) {
    *job.mutable_hyperparameters() = std::move(spec->hyperparameters);
  }
  job.set_priority(in.priority());
  if (in.priority() < kMinPriority || in.priority() > kMaxPriority) {
    v.Add("job.priority", absl::StrCat("must be between ", kMinPriority, " and ", kMaxPriority));
  }
  job.set_max_attempts(in.max_attempts() == 0 ? kDefaultMaxAttempts : in.max_attempts());
  if (job.max_attempts() < 1 || job.max_attempts() > kMaxMaxAttempts) {
    v.Add("job.max_attempts", absl::StrCat("must be between 1 and ", kMaxMaxAttempts));
  }
  CheckLabels(in.labels(), "job.labels", &v);
  *job.mutable_labels() = in.labels();
  CheckRequestId(in.request_id(), "job.request_id", &v);
  job.set_request_id(in.request_id());
  job.set_allow_shared_pool(in.allow_shared_pool());
  const int64_t timeout =
      in.has_queue_timeout() ? in.queue_timeout().seconds() : kDefaultQueueTimeoutSeconds;
  if (timeout < 1 || timeout > kMaxQueueTimeoutSeconds) {
    v.Add("job.queue_timeout", absl::StrCat("must be between 1s and ", kMaxQueueTimeoutSeconds,
                                            "s (30 days)"));
  }
  job.mutable_queue_timeout()->set_seconds(timeout);
  TM_RETURN_IF_ERROR(v.ToStatus("invalid job"));
  if (request.validate_only()) {
    job.set_state(Job::PENDING);
    return job;
  }

  TM_ASSIGN_OR_RETURN(auto created, store_->Create(job, options_.dispatch));
  auto& [stored, is_new] = created;
  if (is_new && options_.dispatch && options_.wake_dispatch) options_.wake_dispatch();
  if (!is_new) {
    if (!SameSubmission(stored, job)) {
      return absl::AlreadyExistsError(
          absl::StrCat("request_id \"", job.request_id(), "\" was already used for job ",
                       stored.id(), " with different parameters"));
    }
    return stored;
  }
  if (options_.auto_queue) return QueueAtOnce(stored);
  return stored;
}

absl::StatusOr<Job> JobsService::GetJob(const Principal& caller,
                                        const trainmesh::v1::GetJobRequest& request) {
  FieldViolations v;
  CheckId(request.id(), "id", &v);
  TM_RETURN_IF_ERROR(v.ToStatus());
  TM_ASSIGN_OR_RETURN(StoredJob stored, store_->Get(caller.subject(), request.id()));
  if (options_.recent_metrics) {
    absl::StatusOr<trainmesh::v1::GetRecentMetricsResponse> recent =
        options_.recent_metrics(stored.job.id());
    if (recent.ok()) {
      *stored.job.mutable_recent_metrics() = recent->points();
      if (recent->has_cost()) *stored.job.mutable_cost() = recent->cost();
    } else {
      TM_LOG(Warning, "job shown without its metrics").With("job_id", stored.job.id())
          .With("error", recent.status());
    }
  }
  return stored.job;
}

absl::StatusOr<trainmesh::v1::ListJobsResponse> JobsService::ListJobs(
    const Principal& caller, const trainmesh::v1::ListJobsRequest& request) {
  FieldViolations v;
  ListQuery query;
  query.owner = caller.subject();
  const int page_size = pagination::PageSize(request.page_size(), &v);
  for (int i = 0; i < request.states_size(); ++i) {
    if (request.states(i) == Job::STATE_UNSPECIFIED) {
      v.Add(absl::StrCat("states[", i, "]"), "must be a job state");
    } else {
      query.states.push_back(request.states(i));
    }
  }
  std::sort(query.states.begin(), query.states.end());
  for (int i = 0; i < request.labels_size(); ++i) {
    std::pair<std::string, std::string> kv = absl::StrSplit(request.labels(i), absl::MaxSplits('=', 1));
    if (request.labels(i).find('=') == std::string::npos || !IsLabelKey(kv.first)) {
      v.Add(absl::StrCat("labels[", i, "]"), "must be key=value with a valid label key");
    } else {
      query.labels.push_back(std::move(kv));
    }
  }
  std::sort(query.labels.begin(), query.labels.end());
  query.model = request.model();
  if (!request.retry_of().empty()) CheckId(request.retry_of(), "retry_of", &v);
  query.retry_of = request.retry_of();
  TM_RETURN_IF_ERROR(v.ToStatus());

  // The token is bound to the caller and every filter.
  std::vector<std::string> parts = {query.owner, query.model, query.retry_of};
  for (auto s : query.states) parts.push_back(StateName(s));
  for (const auto& [k, val] : query.labels) parts.push_back(absl::StrCat(k, "=", val));
  const std::string fingerprint = absl::StrJoin(parts, "\x1f");
  if (!request.page_token().empty()) {
    TM_ASSIGN_OR_RETURN(std::string position,
                        page_tokens_.Decode(fingerprint, request.page_token()));
    std::pair<std::string, std::string> cursor = absl::StrSplit(position, absl::MaxSplits('|', 1));
    int64_t micros = 0;
    if (!absl::SimpleAtoi(cursor.first, &micros) || !pg::IsUuid(cursor.second)) {
      return status::InvalidField("page_token", "is malformed");
    }
    query.after = std::make_pair(micros, cursor.second);
  }
  query.limit = pagination::RowsToRead(page_size);
  TM_ASSIGN_OR_RETURN(std::vector<Job> jobs, store_->List(query));
  trainmesh::v1::ListJobsResponse response;
  if (pagination::FillPage(jobs, page_size, response.mutable_jobs())) {
    const Job& last = response.jobs(response.jobs_size() - 1);
    const int64_t micros = last.create_time().seconds() * 1000000 + last.create_time().nanos() / 1000;
    response.set_next_page_token(
        page_tokens_.Encode(fingerprint, absl::StrCat(micros, "|", last.id())));
  }
  return response;
}

absl::StatusOr<Job> JobsService::CancelJob(const Principal& caller,
                                           const trainmesh::v1::CancelJobRequest& request) {
  FieldViolations v;
  CheckId(request.id(), "id", &v);
  if (request.reason().size() > kMaxReasonBytes) {
    v.Add("reason", absl::StrCat("must be at most ", kMaxReasonBytes, " bytes"));
  }
  TM_RETURN_IF_ERROR(v.ToStatus());
  const std::string who = caller.name().empty() ? caller.subject() : caller.name();
  absl::StatusOr<Job> cancelled = store_->Update(caller.subject(), request.id(),
                        [&](const StoredJob& current) -> absl::StatusOr<Mutation> {
                          TM_RETURN_IF_ERROR(CheckTransition(current.job.state(), Job::CANCELLED));
                          Mutation m{current.job, current.last_report_seq};
                          const State was = current.job.state();
                          m.job.set_state(Job::CANCELLED);
                          // A trainer holding the job learns at its next heartbeat.
                          m.job.set_cancel_requested(was == Job::INITIALIZING ||
                                                     was == Job::RUNNING);
                          m.job.set_error_log(
                              request.reason().empty()
                                  ? absl::StrCat("Cancelled by ", who, " while ", StateName(was))
                                  : absl::StrCat("Cancelled by ", who, " while ", StateName(was),
                                                 ": ", request.reason()));
                          m.event = JobEvent::STATE_CHANGED;
                          m.message = m.job.error_log();
                          // The scheduler drops it from the queue, or tells
                          // its trainer at the next heartbeat.
                          if (options_.dispatch) m.outbox.emplace_back("cancel", current.job.id());
                          return m;
                        });
  if (cancelled.ok() && options_.dispatch && options_.wake_dispatch) options_.wake_dispatch();
  return cancelled;
}

absl::StatusOr<Job> JobsService::RetryJob(const Principal& caller,
                                          const trainmesh::v1::RetryJobRequest& request) {
  FieldViolations v;
  CheckId(request.id(), "id", &v);
  CheckRequestId(request.request_id(), "request_id", &v);
  TM_RETURN_IF_ERROR(v.ToStatus());
  TM_ASSIGN_OR_RETURN(StoredJob source, store_->Get(caller.subject(), request.id()));
  const Job& old = source.job;
  if (old.state() != Job::FAILED && old.state() != Job::CANCELLED) {
    return absl::FailedPreconditionError(
        absl::StrCat("only FAILED or CANCELLED jobs can be retried; job ", old.id(), " is ",
                     StateName(old.state())));
  }
  Job retry;
  retry.set_owner(old.owner());
  retry.set_model(old.model());
  retry.set_dataset_url(old.dataset_url());
  *retry.mutable_hyperparameters() = old.hyperparameters();
  retry.set_priority(old.priority());
  retry.set_max_attempts(old.max_attempts());
  *retry.mutable_labels() = old.labels();
  retry.set_allow_shared_pool(old.allow_shared_pool());
  *retry.mutable_queue_timeout() = old.queue_timeout();
  retry.set_retry_of(old.id());
  retry.set_retry_count(old.retry_count() + 1);
  retry.set_resume_from_checkpoint(request.resume_from_checkpoint());
  retry.set_request_id(request.request_id());
  TM_ASSIGN_OR_RETURN(auto created, store_->Create(retry, options_.dispatch));
  auto& [stored, is_new] = created;
  if (is_new && options_.dispatch && options_.wake_dispatch) options_.wake_dispatch();
  if (!is_new && stored.retry_of() != old.id()) {
    return absl::AlreadyExistsError(absl::StrCat("request_id \"", request.request_id(),
                                                 "\" was already used for job ", stored.id()));
  }
  if (is_new && options_.auto_queue) return QueueAtOnce(stored);
  return stored;
}

absl::StatusOr<trainmesh::v1::ErrorLog> JobsService::GetErrorLog(
    const Principal& caller, const trainmesh::v1::GetErrorLogRequest& request) {
  FieldViolations v;
  CheckId(request.id(), "id", &v);
  TM_RETURN_IF_ERROR(v.ToStatus());
  TM_ASSIGN_OR_RETURN(StoredJob stored, store_->Get(caller.subject(), request.id()));
  const Job& job = stored.job;
  trainmesh::v1::ErrorLog log;
  log.set_job_id(job.id());
  log.set_state(job.state());
  log.set_text(job.error_log());
  log.set_kind(job.error_kind());
  log.set_attempt(job.attempt());
  *log.mutable_time() = job.has_fail_time()     ? job.fail_time()
                        : job.has_cancel_time() ? job.cancel_time()
                                                : job.update_time();
  return log;
}

absl::StatusOr<trainmesh::v1::ListJobEventsResponse> JobsService::ListJobEvents(
    const Principal& caller, const trainmesh::v1::ListJobEventsRequest& request) {
  FieldViolations v;
  CheckId(request.id(), "id", &v);
  const int limit =
      pagination::PageSize(request.page_size(), &v, {.default_size = kDefaultEventsPageSize});
  if (request.after_seq() < 0) v.Add("after_seq", "must be >= 0");
  TM_RETURN_IF_ERROR(v.ToStatus());
  TM_ASSIGN_OR_RETURN(JobStore::EventsPage page,
                      store_->Events(caller.subject(), request.id(), request.after_seq(),
                                     pagination::RowsToRead(limit)));
  trainmesh::v1::ListJobEventsResponse response;
  response.set_more(pagination::FillPage(page.events, limit, response.mutable_events()));
  return response;
}

absl::StatusOr<trainmesh::v1::ListNotificationsResponse> JobsService::ListNotifications(
    const Principal& caller, const trainmesh::v1::ListNotificationsRequest& request) {
  FieldViolations v;
  const int page_size = pagination::PageSize(request.page_size(), &v);
  TM_RETURN_IF_ERROR(v.ToStatus());
  NotificationQuery query{
      .owner = caller.subject(), .unread_only = request.unread_only(), .limit = pagination::RowsToRead(page_size)};
  // The token is bound to the caller and the filter.
  const std::string fingerprint =
      absl::StrCat("notifications\x1f", query.owner, "\x1f", query.unread_only ? "unread" : "all");
  if (!request.page_token().empty()) {
    TM_ASSIGN_OR_RETURN(std::string position,
                        page_tokens_.Decode(fingerprint, request.page_token()));
    int64_t before = 0;
    if (!absl::SimpleAtoi(position, &before) || before <= 0) {
      return status::InvalidField("page_token", "is malformed");
    }
    query.before_id = before;
  }
  TM_ASSIGN_OR_RETURN(NotificationsPage page, store_->ListNotifications(query));
  trainmesh::v1::ListNotificationsResponse response;
  response.set_unread_count(page.unread_count);
  if (pagination::FillPage(page.notifications, page_size, response.mutable_notifications())) {
    const int64_t last = response.notifications(response.notifications_size() - 1).id();
    response.set_next_page_token(page_tokens_.Encode(fingerprint, absl::StrCat(last)));
  }
  return response;
}

absl::StatusOr<trainmesh::v1::MarkNotificationsReadResponse> JobsService::MarkNotificationsRead(
    const Principal& caller, const trainmesh::v1::MarkNotificationsReadRequest& request) {
  FieldViolations v;
  if (request.ids().empty() && request.through_id() == 0) {
    v.Add("ids", "give the notifications to mark read, or through_id");
  }
  if (request.ids_size() > kMaxIdsPerCall) {
    v.Add("ids", absl::StrCat("at most ", kMaxIdsPerCall, " at once (or use through_id)"));
  }
  for (int i = 0; i < request.ids_size() && i < kMaxIdsPerCall; ++i) {
    if (request.ids(i) <= 0) v.Add(absl::StrCat("ids[", i, "]"), "must be a notification id (> 0)");
  }
  if (request.through_id() < 0) v.Add("through_id", "must be >= 0");
  TM_RETURN_IF_ERROR(v.ToStatus());
  const std::vector<int64_t> ids(request.ids().begin(), request.ids().end());
  TM_ASSIGN_OR_RETURN(auto counts,
                      store_->MarkNotificationsRead(caller.subject(), ids, request.through_id()));
  trainmesh::v1::MarkNotificationsReadResponse response;
  response.set_marked(counts.first);
  response.set_unread_count(counts.second);
  return response;
}

absl::StatusOr<trainmesh::v1::ListRecipesResponse> JobsService::ListRecipes() const {
  trainmesh::v1::ListRecipesResponse response;
  for (const auto& r : recipes::Recipes()) *response.add_recipes() = r;
  return response;
}

absl::StatusOr<trainmesh::v1::Recipe> JobsService::GetRecipe(
    const trainmesh::v1::GetRecipeRequest& request) const {
  const trainmesh::v1::Recipe* recipe = recipes::FindRecipe(request.name());
  if (recipe == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("recipe \"", request.name(), "\" not found; one of ", recipes::RecipeNames()));
  }
  return *recipe;
}

absl::StatusOr<Job> JobsService::ReportJobStatus(
    const Principal& caller, const trainmesh::v1::ReportJobStatusRequest& request) {
  FieldViolations v;
  CheckId(request.id(), "id", &v);
  if (request.attempt() < 0) v.Add("attempt", "must be >= 0");
  if (request.state() == Job::PENDING) v.Add("state", "a job cannot be reported PENDING");
  TM_RETURN_IF_ERROR(v.ToStatus());
  return store_->Update(
      std::nullopt, request.id(), [&](const StoredJob& current) -> absl::StatusOr<Mutation> {
        Mutation m{current.job, current.last_report_seq};
        const Job& now = current.job;
        // Replayed, stale or about a finished job: acknowledged, ignored.
        if ((request.report_seq() > 0 && request.report_seq() <= current.last_report_seq) ||
            request.attempt() < now.attempt() || IsTerminal(now.state())) {
          return m;
        }
        m.last_report_seq = std::max(request.report_seq(), current.last_report_seq);
        m.job.set_attempt(request.attempt());
        const bool state_change =
            request.state() != Job::STATE_UNSPECIFIED && request.state() != now.state();
        if (state_change) m.job.set_state(request.state());
        if (request.has_progress()) *m.job.mutable_progress() = request.progress();
        if (request.has_cost()) *m.job.mutable_cost() = request.cost();
        if (request.has_artifact()) *m.job.mutable_artifact() = request.artifact();
        if (!request.agent_id().empty()) m.job.set_agent_id(request.agent_id());
        if (!request.error_log().empty()) m.job.set_error_log(request.error_log());
        if (request.error_kind() != trainmesh::v1::ERROR_KIND_UNSPECIFIED) {
          m.job.set_error_kind(request.error_kind());
        }
        if (state_change && m.job.state() == Job::QUEUED) m.job.set_cancel_requested(false);
        m.event = state_change ? JobEvent::STATE_CHANGED : JobEvent::PROGRESS;
        m.message = request.message();
        if (!state_change && !request.has_progress() && request.attempt() == now.attempt() &&
            !request.has_cost() && !request.has_artifact()) {
          m.event = JobEvent::TYPE_UNSPECIFIED;  // nothing new
        }
        return m;
      });
}

absl::StatusOr<trainmesh::v1::JobOwner> JobsService::GetJobOwner(const trainmesh::v1::GetJobOwnerRequest& request) {
  FieldViolations v;
  CheckId(request.id(), "id", &v);
  TM_RETURN_IF_ERROR(v.ToStatus());
  TM_ASSIGN_OR_RETURN(StoredJob stored, store_->Get(std::nullopt, request.id()));
  trainmesh::v1::JobOwner owner;
  owner.set_id(stored.job.id());
  owner.set_owner(stored.job.owner());
  return owner;
}

absl::StatusOr<Job> JobsService::ArtifactOf(const Principal& caller,
                                            const trainmesh::v1::DownloadArtifactRequest& request) {
  FieldViolations v;
  CheckId(request.id(), "id", &v);
  if (!request.name().empty() && !artifacts::ArtifactStore::ValidName(request.name())) {
    v.Add("name", absl::StrCat("must be ", artifacts::ArtifactStore::kNameRule));
  }
  TM_RETURN_IF_ERROR(v.ToStatus());
  TM_ASSIGN_OR_RETURN(StoredJob stored, store_->Get(caller.subject(), request.id()));
  if (!stored.job.has_artifact()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", request.id(), " has no model yet (it is ", StateName(stored.job.state()), ")"));
  }
  return stored.job;
}

absl::StatusOr<JobStore::EventsPage> JobsService::WatchBatch(const Principal& caller,
                                                             const std::string& id,
                                                             int64_t after_seq, int limit) {
  return store_->Events(caller.subject(), id, after_seq, limit);
}

absl::Status JobsService::ValidateWatch(const trainmesh::v1::WatchJobRequest& request) {
  FieldViolations v;
  CheckId(request.id(), "id", &v);
  if (request.after_seq() < 0) v.Add("after_seq", "must be >= 0");
  return v.ToStatus();
}

}  // namespace trainmesh::jobs
