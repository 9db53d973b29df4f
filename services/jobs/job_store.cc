#include "services/jobs/job_store.h"

#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/time_util.h"
#include "libs/pg/ids.h"
#include "libs/json/json.h"
#include "libs/status/status_macros.h"
#include "libs/telemetry/metrics.h"
#include "pqxx/pqxx"
#include "services/jobs/state_machine.h"

namespace trainmesh::jobs {
namespace {

using trainmesh::v1::Job;
using trainmesh::v1::JobEvent;

std::string Micros(absl::string_view column) {
  return absl::StrCat("(extract(epoch FROM ", column, ") * 1000000)::bigint");
}

// The columns RowToJob reads, in order, for a table aliased `j`.
const std::string& JobColumns() {
  static const auto* columns = new std::string(absl::StrJoin(
      {std::string("j.id::text"), std::string("j.owner"), std::string("j.model"),
       std::string("j.dataset_url"), std::string("j.hyperparameters::text"),
       std::string("j.priority"), std::string("j.max_attempts"), std::string("j.labels::text"),
       std::string("j.state"), std::string("j.attempt"),
       std::string("coalesce(j.retry_of::text, '')"), std::string("j.retry_count"),
       std::string("j.error_log"), std::string("j.error_kind"),
       std::string("j.progress"), std::string("j.cost"), std::string("j.artifact"),
       std::string("j.agent_id"),
       std::string("j.allow_shared_pool"), std::string("j.queue_timeout_seconds"),
       std::string("j.resume_from_checkpoint"), std::string("j.cancel_requested"),
       std::string("coalesce(j.request_id, '')"), std::string("j.last_event_seq"),
       std::string("j.last_report_seq"), Micros("j.created_at"), Micros("j.updated_at"),
       Micros("j.started_at"), Micros("j.completed_at"), Micros("j.failed_at"),
       Micros("j.cancelled_at")},
      ", "));
  return *columns;
}

const std::string& EventColumns() {
  static const auto* columns = new std::string(
      absl::StrCat("e.seq, e.type, e.state, e.previous_state, e.message, "
                   "e.progress, e.attempt, e.terminal, ",
                   Micros("e.created_at")));
  return *columns;
}

std::string LabelsJson(const google::protobuf::Map<std::string, std::string>& labels) {
  google::protobuf::Struct s;
  for (const auto& [k, v] : labels) (*s.mutable_fields())[k].set_string_value(v);
  return json::FromStruct(s);
}

absl::Status StructFromColumn(const pqxx::field& f, google::protobuf::Struct* out) {
  absl::Status s = json::ToStruct(absl::string_view(f.c_str(), f.size()), out);
  if (!s.ok()) return absl::InternalError(absl::StrCat("corrupt stored JSON: ", s.message()));
  return absl::OkStatus();
}

// A serialized message column; NULL leaves the field absent.
absl::Status ParseBytes(const pqxx::field& f, google::protobuf::Message* out) {
  if (f.is_null()) return absl::OkStatus();
  pqxx::binarystring bytes(f);
  if (!out->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InternalError(absl::StrCat("corrupt stored ", out->GetTypeName()));
  }
  return absl::OkStatus();
}

// A serialized message as a bytea parameter; empty (stored as NULL) when absent.
pqxx::binarystring Bytes(bool present, const google::protobuf::Message& m) {
  return pqxx::binarystring(present ? m.SerializeAsString() : std::string());
}

void SetTime(const pqxx::field& f, google::protobuf::Timestamp* ts) {
  *ts = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(f.as<int64_t>());
}

absl::StatusOr<StoredJob> RowToJob(const pqxx::row& r) {
  StoredJob out;
  Job& job = out.job;
  job.set_id(r[0].as<std::string>());
  job.set_owner(r[1].as<std::string>());
  job.set_model(r[2].as<std::string>());
  job.set_dataset_url(r[3].as<std::string>());
  TM_RETURN_IF_ERROR(StructFromColumn(r[4], job.mutable_hyperparameters()));
  job.set_priority(r[5].as<int>());
  job.set_max_attempts(r[6].as<int>());
  google::protobuf::Struct labels;
  TM_RETURN_IF_ERROR(StructFromColumn(r[7], &labels));
  for (const auto& [k, v] : labels.fields()) (*job.mutable_labels())[k] = v.string_value();
  job.set_state(StateFromName(r[8].as<std::string>()));
  job.set_attempt(r[9].as<int>());
  job.set_retry_of(r[10].as<std::string>());
  job.set_retry_count(r[11].as<int>());
  job.set_error_log(r[12].as<std::string>());
  job.set_error_kind(static_cast<trainmesh::v1::ErrorKind>(r[13].as<int>()));
  TM_RETURN_IF_ERROR(ParseBytes(r[14], job.mutable_progress()));
  TM_RETURN_IF_ERROR(ParseBytes(r[15], job.mutable_cost()));
  TM_RETURN_IF_ERROR(ParseBytes(r[16], job.mutable_artifact()));
  job.set_agent_id(r[17].as<std::string>());
  job.set_allow_shared_pool(r[18].as<bool>());
  job.mutable_queue_timeout()->set_seconds(r[19].as<int64_t>());
  job.set_resume_from_checkpoint(r[20].as<bool>());
  job.set_cancel_requested(r[21].as<bool>());
  job.set_request_id(r[22].as<std::string>());
  job.set_last_event_seq(r[23].as<int64_t>());
  out.last_report_seq = r[24].as<int64_t>();
  SetTime(r[25], job.mutable_create_time());
  SetTime(r[26], job.mutable_update_time());
  if (!r[27].is_null()) SetTime(r[27], job.mutable_start_time());
  if (!r[28].is_null()) SetTime(r[28], job.mutable_complete_time());
  if (!r[29].is_null()) SetTime(r[29], job.mutable_fail_time());
  if (!r[30].is_null()) SetTime(r[30], job.mutable_cancel_time());
  // Messages that were never set read back as absent, not as empty.
  if (r[14].is_null()) job.clear_progress();
  if (r[15].is_null()) job.clear_cost();
  if (r[16].is_null()) job.clear_artifact();
  return out;
}

absl::StatusOr<JobEvent> RowToEvent(const std::string& job_id, const pqxx::row& r, int first) {
  JobEvent e;
  e.set_job_id(job_id);
  e.set_seq(r[first].as<int64_t>());
  JobEvent::Type type = JobEvent::TYPE_UNSPECIFIED;
  JobEvent::Type_Parse(r[first + 1].as<std::string>(), &type);
  e.set_type(type);
  e.set_state(StateFromName(r[first + 2].as<std::string>()));
  e.set_previous_state(StateFromName(r[first + 3].as<std::string>()));
  e.set_message(r[first + 4].as<std::string>());
  TM_RETURN_IF_ERROR(ParseBytes(r[first + 5], e.mutable_progress()));
  if (r[first + 5].is_null()) e.clear_progress();
  e.set_attempt(r[first + 6].as<int>());
  e.set_terminal(r[first + 7].as<bool>());
  SetTime(r[first + 8], e.mutable_time());
  return e;
}

std::string OwnerClause(const std::optional<std::string>& owner, int param) {
  return owner.has_value() ? absl::StrCat(" AND j.owner = $", param) : " AND $2::text IS NULL";
}

// Runs `sql` with ($1 = id, $2 = owner or NULL).
pqxx::result ExecOwned(pqxx::transaction_base& tx, const std::string& sql, absl::string_view id,
                       const std::optional<std::string>& owner) {
  if (owner.has_value()) return tx.exec_params(sql, std::string(id), *owner);
  return tx.exec_params(sql, std::string(id), nullptr);
}

absl::Status JobNotFound(absl::string_view id) {
  return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
}

// Prometheus: jobs entering each state, counted where every change commits
// (every state's series exists from the start).
telemetry::Family<telemetry::Counter>& Transitions() {
  static auto* family = [] {
    auto* f = &telemetry::Registry::Default().AddCounter(
        "trainmesh_job_transitions_total",
        "Jobs entering a state (PENDING: created; COMPLETED, FAILED, CANCELLED: finished).", {"state"});
    const auto* states = Job::State_descriptor();
    for (int i = 0; i < states->value_count(); ++i) {
      const auto state = static_cast<Job::State>(states->value(i)->number());
      if (state != Job::STATE_UNSPECIFIED) f->With({StateName(state)});
    }
    return f;
  }();
  return *family;
}

void CountTransition(Job::State entered) { Transitions().With({StateName(entered)}).Add(); }

// At most `max` bytes of the first line of `text`, never cutting a UTF-8
// sequence in two.
std::string FirstLine(absl::string_view text, size_t max = 500) {
  text = text.substr(0, text.find('\n'));
  if (text.size() <= max) return std::string(text);
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  return absl::StrCat(text.substr(0, n), "…");
}

// The inbox entry a change makes: (kind, message); an empty kind for none.
std::pair<std::string, std::string> NotificationFor(const Job& before, const Job& after,
                                                    const std::string& message) {
  if (after.state() == before.state()) return {};
  switch (after.state()) {
    case Job::RUNNING:
      return {"STARTED", FirstLine(message)};
    case Job::COMPLETED:
      return {"COMPLETED", FirstLine(message)};
    case Job::FAILED:
      return {"FAILED", FirstLine(after.error_log().empty() ? message : after.error_log())};
    case Job::CANCELLED:
      return {"CANCELLED", FirstLine(message)};
    case Job::QUEUED:
      if (before.state() == Job::INITIALIZING || before.state() == Job::RUNNING) {
        return {"REQUEUED", FirstLine(message)};
      }
      return {};
    default:
      return {};
  }
}

absl::StatusOr<trainmesh::v1::Notification> RowToNotification(const pqxx::row& r, int first) {
  trainmesh::v1::Notification n;
  n.set_id(r[first].as<int64_t>());
  n.set_job_id(r[first + 1].as<std::string>());
  trainmesh::v1::Notification::Kind kind = trainmesh::v1::Notification::KIND_UNSPECIFIED;
  if (!trainmesh::v1::Notification::Kind_Parse(r[first + 2].as<std::string>(), &kind)) {
    return absl::InternalError(absl::StrCat("corrupt notification kind ", r[first + 2].c_str()));
  }
  n.set_kind(kind);
  n.set_model(r[first + 3].as<std::string>());
  n.set_message(r[first + 4].as<std::string>());
  n.set_attempt(r[first + 5].as<int>());
  SetTime(r[first + 6], n.mutable_create_time());
  n.set_read(r[first + 7].as<bool>());
  return n;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> JobStore::PreparedStatements() {
  const std::string create = absl::StrCat(
      "WITH ins AS ("
      "  INSERT INTO jobs.jobs (owner, model, dataset_url, hyperparameters, priority,"
      "    max_attempts, labels, state, retry_of, retry_count, allow_shared_pool,"
      "    queue_timeout_seconds, resume_from_checkpoint, request_id, last_event_seq)"
      "  VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7::jsonb, 'PENDING', NULLIF($8, '')::uuid, $9,"
      "    $10, $11, $12, NULLIF($13, ''), 1)"
      "  ON CONFLICT (owner, request_id) DO NOTHING"
      "  RETURNING *"
      "), ev AS ("
      "  INSERT INTO jobs.job_events (job_id, seq, type, state, message)"
      "  SELECT id, 1, 'CREATED', 'PENDING', $14 FROM ins"
      "), ob AS ("
      "  INSERT INTO jobs.outbox (kind, payload)"
      "  SELECT 'enqueue', convert_to(id::text, 'UTF8') FROM ins WHERE $15"
      ") SELECT ",
      JobColumns(), " FROM ins j");
  const std::string by_request = absl::StrCat(
      "SELECT ", JobColumns(), " FROM jobs.jobs j WHERE j.owner = $1 AND j.request_id = $2");
  return {{"jobs_create", create}, {"jobs_by_request", by_request}};
}

JobStore::JobStore(pg::ConnectionPool* pool) : pool_(pool) { Transitions(); }

absl::StatusOr<std::pair<Job, bool>> JobStore::Create(const Job& job, bool dispatch) {
  return pool_->Autocommit([&](pqxx::nontransaction& tx) -> absl::StatusOr<std::pair<Job, bool>> {
    pqxx::result r = tx.exec_prepared(
        "jobs_create", job.owner(), job.model(), job.dataset_url(),
        json::FromStruct(job.hyperparameters()), job.priority(), job.max_attempts(),
        LabelsJson(job.labels()), job.retry_of(), job.retry_count(), job.allow_shared_pool(),
        static_cast<int64_t>(job.queue_timeout().seconds()), job.resume_from_checkpoint(),
        job.request_id(),
        job.retry_of().empty() ? std::string() : absl::StrCat("retry of ", job.retry_of()),
        dispatch);
    if (!r.empty()) {
      TM_ASSIGN_OR_RETURN(StoredJob created, RowToJob(r[0]));
      CountTransition(Job::PENDING);  // autocommitted: the job exists now
      return std::make_pair(std::move(created.job), true);
    }
    // The owner used this request_id before: the first job is the answer.
    r = tx.exec_prepared("jobs_by_request", job.owner(), job.request_id());
    if (r.empty()) return absl::AbortedError("request_id conflict vanished; retry");
    TM_ASSIGN_OR_RETURN(StoredJob existing, RowToJob(r[0]));
    return std::make_pair(std::move(existing.job), false);
  });
}

absl::StatusOr<StoredJob> JobStore::Get(const std::optional<std::string>& owner,
                                        absl::string_view id) {
  if (!pg::IsUuid(id)) return JobNotFound(id);
  return pool_->Autocommit([&](pqxx::nontransaction& tx) -> absl::StatusOr<StoredJob> {
    pqxx::result r = ExecOwned(
        tx, absl::StrCat("SELECT ", JobColumns(), " FROM jobs.jobs j WHERE j.id = $1::uuid",
                         OwnerClause(owner, 2)),
        id, owner);
    if (r.empty()) return JobNotFound(id);
    return RowToJob(r[0]);
  });
}

absl::StatusOr<std::vector<Job>> JobStore::List(const ListQuery& query) {
  std::vector<std::string> params = {query.owner};
  auto param = [&params](std::string value) {
    params.push_back(std::move(value));
    return absl::StrCat("$", params.size());
  };
  std::string sql = absl::StrCat("SELECT ", JobColumns(), " FROM jobs.jobs j WHERE j.owner = $1");
  if (!query.states.empty()) {
    std::vector<std::string> names;
    for (auto s : query.states) names.push_back(StateName(s));
    absl::StrAppend(&sql, " AND j.state = ANY(", param(absl::StrCat("{", absl::StrJoin(names, ","), "}")),
                    "::text[])");
  }
  if (!query.labels.empty()) {
    google::protobuf::Struct labels;
    for (const auto& [k, v] : query.labels) (*labels.mutable_fields())[k].set_string_value(v);
    absl::StrAppend(&sql, " AND j.labels @> ", param(json::FromStruct(labels)), "::jsonb");
  }
  if (!query.model.empty()) absl::StrAppend(&sql, " AND j.model = ", param(query.model));
  if (!query.retry_of.empty()) {
    if (!pg::IsUuid(query.retry_of)) return std::vector<Job>();
    absl::StrAppend(&sql, " AND j.retry_of = ", param(query.retry_of), "::uuid");
  }
  if (query.updated_since.has_value()) {
    absl::StrAppend(&sql, " AND j.updated_at >= TIMESTAMPTZ 'epoch' + ",
                    param(absl::StrCat(absl::ToUnixMicros(*query.updated_since))),
                    "::bigint * INTERVAL '1 microsecond'");
  }
  if (query.after.has_value()) {
    // A row comparison the (owner, created_at, id) index answers directly.
    absl::StrAppend(&sql, " AND (j.created_at, j.id) < (TIMESTAMPTZ 'epoch' + ",
                    param(absl::StrCat(query.after->first)),
                    "::bigint * INTERVAL '1 microsecond', ", param(query.after->second),
                    "::uuid)");
  }
  absl::StrAppend(&sql, " ORDER BY j.created_at DESC, j.id DESC LIMIT ", query.limit);
  return pool_->Autocommit([&](pqxx::nontransaction& tx) -> absl::StatusOr<std::vector<Job>> {
    pqxx::result r = tx.exec_params(sql, pqxx::prepare::make_dynamic_params(params));
    std::vector<Job> jobs;
    jobs.reserve(r.size());
    for (const auto& row : r) {
      TM_ASSIGN_OR_RETURN(StoredJob job, RowToJob(row));
      jobs.push_back(std::move(job.job));
    }
    return jobs;
  });
}

absl::StatusOr<Job> JobStore::Update(const std::optional<std::string>& owner,
                                     absl::string_view id, const DecideFn& decide) {
  if (!pg::IsUuid(id)) return JobNotFound(id);
  static const std::string* const kWrite = new std::string(absl::StrCat(
      "WITH up AS ("
      "  UPDATE jobs.jobs SET state = $2, attempt = $3, error_log = $4, error_kind = $5,"
      "    progress = NULLIF($6, ''::bytea), cost = NULLIF($7, ''::bytea),"
      "    artifact = NULLIF($8, ''::bytea), agent_id = $9, cancel_requested = $10,"
      "    last_report_seq = $11, last_event_seq = last_event_seq + 1,"
      "    updated_at = clock_timestamp(),"
      "    started_at = CASE WHEN $2 = 'RUNNING' AND started_at IS NULL"
      "                 THEN clock_timestamp() ELSE started_at END,"
      "    completed_at = CASE WHEN $2 = 'COMPLETED' THEN clock_timestamp() ELSE completed_at END,"
      "    failed_at = CASE WHEN $2 = 'FAILED' THEN clock_timestamp() ELSE failed_at END,"
      "    cancelled_at = CASE WHEN $2 = 'CANCELLED' THEN clock_timestamp() ELSE cancelled_at END"
      "  WHERE id = $1::uuid RETURNING *"
      "), ev AS ("
      "  INSERT INTO jobs.job_events (job_id, seq, type, state, previous_state, message,"
      "    progress, attempt, terminal)"
      "  SELECT id, last_event_seq, $12, state, $13, $14, progress, attempt, $15 FROM up"
      "), inbox AS ("
      "  INSERT INTO jobs.notifications (owner, job_id, kind, model, message, attempt)"
      "  SELECT owner, id, $16, model, $17, attempt FROM up WHERE $16 <> ''"
      "), note AS ("
      "  SELECT pg_notify('",
      kEventsChannel,
      "', id::text || ' ' || owner) FROM up"
      ") SELECT ",
      JobColumns(), " FROM up j CROSS JOIN (SELECT count(*) FROM note) n"));
  Job::State entered = Job::STATE_UNSPECIFIED;  // by the attempt that committed
  absl::StatusOr<Job> updated = pool_->InTransaction([&](pqxx::work& tx) -> absl::StatusOr<Job> {
    entered = Job::STATE_UNSPECIFIED;
    pqxx::result current_row =
        ExecOwned(tx,
                  absl::StrCat("SELECT ", JobColumns(), " FROM jobs.jobs j WHERE j.id = $1::uuid",
                               OwnerClause(owner, 2), " FOR UPDATE"),
                  id, owner);
    if (current_row.empty()) return JobNotFound(id);
    TM_ASSIGN_OR_RETURN(StoredJob current, RowToJob(current_row[0]));
    TM_ASSIGN_OR_RETURN(Mutation m, decide(current));
    if (m.event == JobEvent::TYPE_UNSPECIFIED) return current.job;
    const Job& next = m.job;
    // A final job takes no change at all, not even "to the same state".
    if (next.state() != current.job.state() || IsTerminal(current.job.state())) {
      TM_RETURN_IF_ERROR(CheckTransition(current.job.state(), next.state()));
    }
    const auto [notification, notification_message] = NotificationFor(current.job, next, m.message);
    if (!notification.empty()) {
      // An owner's entries commit in the order of their ids: a client that
      // marks "through" the newest id it has seen then never marks one that
      // took a smaller id but committed after it. (The lock is held to commit.)
      tx.exec_params("SELECT pg_advisory_xact_lock(hashtext($1))",
                     absl::StrCat("jobs.notifications:", current.job.owner()));
    }
    pqxx::result r = tx.exec_params(
        *kWrite, std::string(id), StateName(next.state()), next.attempt(), next.error_log(),
        static_cast<int>(next.error_kind()), Bytes(next.has_progress(), next.progress()),
        Bytes(next.has_cost(), next.cost()), Bytes(next.has_artifact(), next.artifact()),
        next.agent_id(), next.cancel_requested(), m.last_report_seq, JobEvent::Type_Name(m.event),
        next.state() != current.job.state() ? StateName(current.job.state()) : std::string(),
        m.message, IsTerminal(next.state()), notification, notification_message);
    for (const auto& [kind, payload] : m.outbox) {
      tx.exec_params("INSERT INTO jobs.outbox (kind, payload) VALUES ($1, $2)", kind,
                     pqxx::binarystring(payload));
    }
    TM_ASSIGN_OR_RETURN(StoredJob written, RowToJob(r[0]));
    if (next.state() != current.job.state()) entered = next.state();
    return written.job;
  });
  if (updated.ok() && entered != Job::STATE_UNSPECIFIED) CountTransition(entered);
  return updated;
}

absl::StatusOr<NotificationsPage> JobStore::ListNotifications(const NotificationQuery& query) {
  // One round trip: the unread count, joined to the page (which may be empty).
  static const std::string* const kList = new std::string(
      absl::StrCat("SELECT u.unread, n.* FROM"
                   "  (SELECT count(*) AS unread FROM jobs.notifications"
                   "   WHERE owner = $1 AND read_at IS NULL) u "
                   "LEFT JOIN LATERAL ("
                   "  SELECT n.id, n.job_id::text, n.kind, n.model, n.message, n.attempt, ",
                   Micros("n.created_at"),
                   ", n.read_at IS NOT NULL FROM jobs.notifications n"
                   "  WHERE n.owner = $1 AND (NOT $2 OR n.read_at IS NULL) AND n.id < $3"
                   "  ORDER BY n.id DESC LIMIT $4"
                   ") n ON true ORDER BY n.id DESC"));
  return pool_->Autocommit([&](pqxx::nontransaction& tx) -> absl::StatusOr<NotificationsPage> {
    pqxx::result r =
        tx.exec_params(*kList, query.owner, query.unread_only,
                       query.before_id.value_or(std::numeric_limits<int64_t>::max()), query.limit);
    NotificationsPage page;
    page.unread_count = r[0][0].as<int64_t>();
    for (const auto& row : r) {
      if (row[1].is_null()) break;  // an empty page
      TM_ASSIGN_OR_RETURN(trainmesh::v1::Notification n, RowToNotification(row, 1));
      page.notifications.push_back(std::move(n));
    }
    return page;
  });
}

absl::StatusOr<std::pair<int64_t, int64_t>> JobStore::MarkNotificationsRead(
    const std::string& owner, const std::vector<int64_t>& ids, int64_t through_id) {
  // Two statements: the count is read after the UPDATE, so it also sees what a
  // concurrent mark (another browser) committed meanwhile.
  const std::string id_array = absl::StrCat("{", absl::StrJoin(ids, ","), "}");
  return pool_->Autocommit(
      [&](pqxx::nontransaction& tx) -> absl::StatusOr<std::pair<int64_t, int64_t>> {
        const pqxx::result marked = tx.exec_params(
            "UPDATE jobs.notifications SET read_at = clock_timestamp()"
            " WHERE owner = $1 AND read_at IS NULL AND (id = ANY($2::bigint[]) OR id <= $3)"
            " RETURNING id",
            owner, id_array, through_id);
        const pqxx::row unread = tx.exec_params1(
            "SELECT count(*) FROM jobs.notifications WHERE owner = $1 AND read_at IS NULL", owner);
        return std::make_pair(static_cast<int64_t>(marked.size()), unread[0].as<int64_t>());
      });
}

absl::StatusOr<JobStore::EventsPage> JobStore::Events(const std::optional<std::string>& owner,
                                                      absl::string_view id, int64_t after_seq,
                                                      int limit) {
  if (!pg::IsUuid(id)) return JobNotFound(id);
  const std::string sql = absl::StrCat(
      "SELECT e.*, j.state, j.last_event_seq FROM jobs.jobs j LEFT JOIN LATERAL ("
      "  SELECT ",
      EventColumns(),
      " FROM jobs.job_events e WHERE e.job_id = j.id AND e.seq > $3 ORDER BY e.seq LIMIT $4"
      ") e ON true WHERE j.id = $1::uuid",
      OwnerClause(owner, 2));
  const std::string job_id(id);
  return pool_->Autocommit([&](pqxx::nontransaction& tx) -> absl::StatusOr<EventsPage> {
    pqxx::result r = owner.has_value()
                         ? tx.exec_params(sql, job_id, *owner, after_seq, limit)
                         : tx.exec_params(sql, job_id, nullptr, after_seq, limit);
    if (r.empty()) return JobNotFound(id);
    EventsPage page;
    page.state = StateFromName(r[0][9].as<std::string>());
    page.last_event_seq = r[0][10].as<int64_t>();
    for (const auto& row : r) {
      if (row[0].is_null()) break;  // the job has no events after after_seq
      TM_ASSIGN_OR_RETURN(JobEvent e, RowToEvent(job_id, row, 0));
      page.events.push_back(std::move(e));
    }
    return page;
  });
}

}  // namespace trainmesh::jobs
