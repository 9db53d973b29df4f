// The jobs repository: the `jobs` schema (jobs, job_events, notifications)
// behind a small API.
// All SQL of the jobs service lives here; callers see protos and statuses.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/pg/pool.h"
#include "trainmesh/v1/jobs.pb.h"

namespace trainmesh::jobs {

// A job row with the bookkeeping that is not part of the public Job message.
struct StoredJob {
  trainmesh::v1::Job job;
  // Highest report_seq of the scheduler applied to this job.
  int64_t last_report_seq = 0;
};

// What Update should write, decided while the job's row is locked.
struct Mutation {
  // The job as it is to be after the change (mutable fields are taken from it:
  // state, attempt, error_log, error_kind, progress, cost, artifact, agent_id,
  // cancel_requested).
  trainmesh::v1::Job job;
  int64_t last_report_seq = 0;
  // The event recorded with the change; TYPE_UNSPECIFIED means "no change".
  trainmesh::v1::JobEvent::Type event = trainmesh::v1::JobEvent::TYPE_UNSPECIFIED;
  std::string message;
  // Requests for the scheduler, written to the outbox in the same transaction:
  // (kind, payload).
  std::vector<std::pair<std::string, std::string>> outbox;
};

struct ListQuery {
  std::string owner;
  std::vector<trainmesh::v1::Job::State> states;
  std::vector<std::pair<std::string, std::string>> labels;
  std::string model;
  std::string retry_of;
  int limit = 50;
  // Keyset cursor (exclusive): (create time in µs since the epoch, id).
  std::optional<std::pair<int64_t, std::string>> after;
  // Only jobs updated at or after this time.
  std::optional<absl::Time> updated_since;
};

struct NotificationQuery {
  std::string owner;
  bool unread_only = false;
  int limit = 50;
  // Keyset cursor (exclusive): only notifications with a smaller id.
  std::optional<int64_t> before_id;
};

struct NotificationsPage {
  // Newest first.
  std::vector<trainmesh::v1::Notification> notifications;
  // The owner's unread notifications, all pages together.
  int64_t unread_count = 0;
};

class JobStore {
 public:
  // NOTIFY channel; the payload is "JOB_ID OWNER" (EventHub::Publish).
  static constexpr char kEventsChannel[] = "trainmesh_jobs_events";

  // Statements to prepare on every pooled connection.
  static std::vector<std::pair<std::string, std::string>> PreparedStatements();

  // Counts each state a job enters (trainmesh_job_transitions_total).
  explicit JobStore(pg::ConnectionPool* pool);

  // Inserts `job` as PENDING with its CREATED event (seq 1), in one statement.
  // No NOTIFY: nobody can watch a job before learning its id, and a notifying
  // commit takes a database-wide lock in PostgreSQL that halves insert
  // throughput under concurrency (measured: BENCHMARKS.md). When the owner
  // already has a job with the same request_id, that job is returned instead
  // and the bool is false.
  // With `dispatch`, an "enqueue" request for the scheduler goes into the
  // outbox in the same statement.
  absl::StatusOr<std::pair<trainmesh::v1::Job, bool>> Create(const trainmesh::v1::Job& job,
                                                             bool dispatch = false);

  // NOT_FOUND unless the job exists and, when `owner` is set, is theirs.
  absl::StatusOr<StoredJob> Get(const std::optional<std::string>& owner, absl::string_view id);

  // Newest first.
  absl::StatusOr<std::vector<trainmesh::v1::Job>> List(const ListQuery& query);

  using DecideFn = std::function<absl::StatusOr<Mutation>(const StoredJob& current)>;

  // Locks the job's row, asks `decide` what to change, enforces the state
  // machine (FAILED_PRECONDITION), writes the job, appends the event, puts a
  // Notification in the owner's inbox when the job started, finished or was
  // requeued, and notifies watchers, in one transaction. NOT_FOUND as Get. A mutation whose
  // event is TYPE_UNSPECIFIED writes nothing and returns the job as it is.
  absl::StatusOr<trainmesh::v1::Job> Update(const std::optional<std::string>& owner,
                                            absl::string_view id, const DecideFn& decide);

  // The owner's inbox, newest first.
  absl::StatusOr<NotificationsPage> ListNotifications(const NotificationQuery& query);

  // Marks the owner's unread notifications that are in `ids` or have an id
  // at most `through_id` (0: none that way) as read. Returns how many it
  // marked and how many stay unread. Other owners' ids change nothing.
  absl::StatusOr<std::pair<int64_t, int64_t>> MarkNotificationsRead(const std::string& owner,
                                                                    const std::vector<int64_t>& ids,
                                                                    int64_t through_id);

  struct EventsPage {
    std::vector<trainmesh::v1::JobEvent> events;
    // The job's state and latest event seq when the page was read.
    trainmesh::v1::Job::State state = trainmesh::v1::Job::STATE_UNSPECIFIED;
    int64_t last_event_seq = 0;
  };

  // Events with seq > after_seq, oldest first, at most `limit`. NOT_FOUND as Get.
  absl::StatusOr<EventsPage> Events(
      const std::optional<std::string>& owner, absl::string_view id, int64_t after_seq,
      int limit);

 private:
  pg::ConnectionPool* pool_;
};

}  // namespace trainmesh::jobs
