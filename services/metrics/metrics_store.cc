#include "services/metrics/metrics_store.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "google/protobuf/util/time_util.h"
#include "libs/status/status_macros.h"
#include "pqxx/pqxx"

namespace trainmesh::metrics {
namespace {

using google::protobuf::util::TimeUtil;
using trainmesh::v1::LogLine;
using trainmesh::v1::MetricPoint;

std::string Micros(absl::string_view column) {
  return absl::StrCat("(extract(epoch FROM ", column, ") * 1000000)::bigint");
}

// float8 in COPY text: the shortest exact form, and PostgreSQL's spellings of
// the non-finite values.
std::string Float(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

std::string Timestamp(const google::protobuf::Timestamp& ts) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%E6S+00",
                          absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(ts)),
                          absl::UTCTimeZone());
}

double ParseFloat(absl::string_view s) {
  if (s.empty()) return 0;
  if (s[0] == 'N') return std::numeric_limits<double>::quiet_NaN();
  if (s[0] == 'I') return std::numeric_limits<double>::infinity();
  if (s.size() > 1 && s[0] == '-' && s[1] == 'I') return -std::numeric_limits<double>::infinity();
  double v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

double ReadFloat(const pqxx::field& f) {
  return ParseFloat(absl::string_view(f.c_str(), f.size()));
}

const std::string& PointColumns() {
  static const auto* c = new std::string(
      absl::StrCat("p.seq, p.name, p.run, p.step, p.value::text, ", Micros("p.wall_time")));
  return *c;
}

MetricPoint RowToPoint(const pqxx::row& r) {
  MetricPoint p;
  p.set_seq(r[0].as<int64_t>());
  p.set_name(r[1].as<std::string>());
  p.set_run(r[2].as<std::string>());
  p.set_step(r[3].as<int64_t>());
  p.set_value(ReadFloat(r[4]));
  *p.mutable_wall_time() = TimeUtil::MicrosecondsToTimestamp(r[5].as<int64_t>());
  return p;
}

// name, run, last, last_step, min, max, count (NaN: none yet)
trainmesh::v1::MetricSummary RowToSummary(const pqxx::row& r) {
  trainmesh::v1::MetricSummary s;
  s.set_name(r[0].as<std::string>());
  s.set_run(r[1].as<std::string>());
  s.set_last(ReadFloat(r[2]));
  s.set_last_step(r[3].as<int64_t>());
  s.set_min(ReadFloat(r[4]));
  s.set_max(ReadFloat(r[5]));
  s.set_count(r[6].as<int64_t>());
  return s;
}

// title, metrics (joined by U+001F), type
trainmesh::v1::Chart RowToChart(const pqxx::row& r) {
  trainmesh::v1::Chart c;
  c.set_title(r[0].as<std::string>());
  for (absl::string_view m : absl::StrSplit(r[1].as<std::string>(), '\x1f', absl::SkipEmpty())) {
    c.add_metrics(std::string(m));
  }
  c.set_type(r[2].as<std::string>());
  return c;
}

struct SummaryDelta {
  double last = 0;
  int64_t last_step = -1;
  int64_t first_step = INT64_MAX;
  std::optional<double> min, max;
  int64_t count = 0;
};

}  // namespace

std::vector<std::pair<std::string, std::string>> MetricsStore::PreparedStatements() {
  return {
      {"metrics_ingest",
       "WITH b AS ("
       "  INSERT INTO metrics.batches (job_id, attempt, batch_seq) VALUES ($1::uuid, $3, $4)"
       "  ON CONFLICT DO NOTHING RETURNING 1"
       "), j AS ("
       "  INSERT INTO metrics.jobs AS j (job_id, owner, attempt, last_point_seq, last_log_seq,"
       "    device_type, device_seconds, cost, currency)"
       "  VALUES ($1::uuid, $2, $3, $5, $6, $9, $7, $8, $10)"
       "  ON CONFLICT (job_id) DO UPDATE SET attempt = GREATEST(j.attempt, EXCLUDED.attempt),"
       "    last_point_seq = j.last_point_seq + CASE WHEN EXISTS (SELECT 1 FROM b) THEN $5 ELSE 0 "
       "END,"
       "    last_log_seq = j.last_log_seq + CASE WHEN EXISTS (SELECT 1 FROM b) THEN $6 ELSE 0 END,"
       "    device_seconds = j.device_seconds + CASE WHEN EXISTS (SELECT 1 FROM b) THEN $7 ELSE 0 "
       "END,"
       "    cost = j.cost + CASE WHEN EXISTS (SELECT 1 FROM b) THEN $8 ELSE 0 END,"
       "    device_type = CASE WHEN $9 = '' THEN j.device_type ELSE $9 END,"
       "    currency = $10, updated_at = clock_timestamp()"
       "  RETURNING owner, attempt, last_point_seq, last_log_seq"
       ") SELECT owner, attempt, last_point_seq, last_log_seq, EXISTS (SELECT 1 FROM b) FROM j"},
      // Points in (after, until] with the job's owner (NULL point columns when
      // none are in range; no row when the job reported nothing).
      {"metrics_points",
       absl::StrCat("SELECT p.*, j.owner FROM metrics.jobs j LEFT JOIN LATERAL (SELECT ",
                    PointColumns(),
                    " FROM metrics.points p WHERE p.job_id = j.job_id AND p.seq > $2 AND "
                    "($3 = 0 OR p.seq <= $3) ORDER BY p.seq LIMIT $4) p ON true "
                    "WHERE j.job_id = $1::uuid")},
  };
}

absl::StatusOr<IngestResult> MetricsStore::Ingest(const IngestBatch& batch) {
  return pool_->InTransaction([&](pqxx::work& tx) -> absl::StatusOr<IngestResult> {
    IngestResult result;
    const int64_t n_points = static_cast<int64_t>(batch.points.size());
    const int64_t n_logs = static_cast<int64_t>(batch.logs.size());
    const double cost = batch.device_seconds * batch.price_per_hour / 3600.0;
    // One round trip: record the batch (unless it was stored before), register
    // the job or lock its row, move the attempt forward, and reserve sequence
    // numbers and add cost only for a new batch. A stale or foreign report is
    // refused below, which rolls all of it back.
    pqxx::result job = tx.exec_prepared("metrics_ingest", batch.job_id, batch.owner, batch.attempt,
                                        batch.batch_seq, n_points, n_logs, batch.device_seconds,
                                        cost, batch.device_type, batch.currency);
    const std::string owner = job[0][0].as<std::string>();
    const int current_attempt = job[0][1].as<int>();
    if (owner != batch.owner) {
      return absl::PermissionDeniedError("the job token's owner does not own this job");
    }
    if (current_attempt > batch.attempt) {
      return absl::FailedPreconditionError(absl::StrCat(
          "attempt ", batch.attempt, " is stale: the job is on attempt ", current_attempt));
    }
    result.last_point_seq = job[0][2].as<int64_t>();
    result.last_log_seq = job[0][3].as<int64_t>();
    if (!job[0][4].as<bool>()) {
      result.duplicate = true;
      result.first_point_seq = result.last_point_seq + 1;
      result.first_log_seq = result.last_log_seq + 1;
      return result;
    }
    result.first_point_seq = result.last_point_seq - n_points + 1;
    result.first_log_seq = result.last_log_seq - n_logs + 1;
    result.points_stored = n_points;
    result.logs_stored = n_logs;

    const std::string attempt = absl::StrCat(batch.attempt);
    std::string summaries_sql;
    if (n_points > 0) {
      pqxx::stream_to copy(tx, "metrics.points",
                           std::vector<std::string>{"job_id", "seq", "name", "run", "step", "value",
                                                    "wall_time", "attempt"});
      std::map<std::pair<std::string, std::string>, SummaryDelta> summaries;
      int64_t seq = result.first_point_seq;
      for (const MetricPoint& p : batch.points) {
        copy << std::make_tuple(batch.job_id, seq++, p.name(), p.run(), p.step(), Float(p.value()),
                                Timestamp(p.wall_time()), attempt);
        SummaryDelta& d = summaries[{p.name(), p.run()}];
        if (p.step() >= d.last_step) {
          d.last = p.value();
          d.last_step = p.step();
        }
        d.first_step = std::min(d.first_step, p.step());
        if (std::isfinite(p.value())) {
          d.min = d.min.has_value() ? std::min(*d.min, p.value()) : p.value();
          d.max = d.max.has_value() ? std::max(*d.max, p.value()) : p.value();
        }
        ++d.count;
      }
      copy.complete();
      // One statement for every series the batch touched.
      std::string values;
      for (const auto& [key, d] : summaries) {
        absl::StrAppend(&values, values.empty() ? "" : ",", "(", tx.quote(batch.job_id), "::uuid,",
                        tx.quote(key.first), ",", tx.quote(key.second), ",",
                        tx.quote(Float(d.last)), "::float8,", d.last_step, ",", d.first_step, ",",
                        d.min ? tx.quote(Float(*d.min)) : "NULL", "::float8,",
                        d.max ? tx.quote(Float(*d.max)) : "NULL", "::float8,", d.count, ")");
      }
      summaries_sql = absl::StrCat(
          "INSERT INTO metrics.summaries AS s (job_id, name, run, last, last_step, first_step, "
          "min, "
          "max, count) "
          "VALUES ",
          values,
          " ON CONFLICT (job_id, name, run) DO UPDATE SET "
          "last = CASE WHEN EXCLUDED.last_step >= s.last_step THEN EXCLUDED.last ELSE s.last END, "
          "last_step = GREATEST(s.last_step, EXCLUDED.last_step), "
          "first_step = LEAST(s.first_step, EXCLUDED.first_step), "
          "min = LEAST(s.min, EXCLUDED.min), max = GREATEST(s.max, EXCLUDED.max), "
          "count = s.count + EXCLUDED.count");
    }
    if (n_logs > 0) {
      pqxx::stream_to copy(
          tx, "metrics.logs",
          std::vector<std::string>{"job_id", "seq", "attempt", "time", "stream", "text"});
      int64_t seq = result.first_log_seq;
      for (const LogLine& l : batch.logs) {
        copy << std::make_tuple(batch.job_id, seq++, attempt, Timestamp(l.time()),
                                static_cast<int>(l.stream()), l.text());
      }
      copy.complete();
    }
    for (const auto& chart : batch.charts) {
      tx.exec_params(
          "INSERT INTO metrics.charts (job_id, title, metrics, type) "
          "VALUES ($1::uuid, $2, string_to_array($3, E'\\x1f'), $4) "
          "ON CONFLICT (job_id, title) DO UPDATE SET metrics = EXCLUDED.metrics, type = "
          "EXCLUDED.type",
          batch.job_id, chart.title(), absl::StrJoin(chart.metrics(), "\x1f"),
          chart.type().empty() ? "line" : chart.type());
    }
    if (batch.final) {
      tx.exec_params(
          "INSERT INTO metrics.cost_records (job_id, attempt, device_type, device_seconds, amount, "
          "currency) SELECT job_id, $2, device_type, device_seconds, cost, currency "
          "FROM metrics.jobs WHERE job_id = $1::uuid ON CONFLICT (job_id, attempt) DO UPDATE SET "
          "device_type = EXCLUDED.device_type, device_seconds = EXCLUDED.device_seconds, "
          "amount = EXCLUDED.amount, created_at = clock_timestamp()",
          batch.job_id, batch.attempt);
    }
    // The summaries and the announcement in one round trip; NOTIFY is sent at
    // commit, so subscribers only ever read what is durable.
    const std::string note = absl::StrCat(
        "SELECT pg_notify(", tx.quote(kChannel), ", ",
        tx.quote(absl::StrCat(batch.job_id, " ", result.first_point_seq, " ", result.last_point_seq,
                              " ", result.first_log_seq, " ", result.last_log_seq)),
        ")");
    if (!summaries_sql.empty()) {
      tx.exec(absl::StrCat("WITH s AS (", summaries_sql, ") ", note));
    } else if (n_logs > 0) {
      tx.exec(note);
    }
    return result;
  });
}

absl::StatusOr<JobInfo> MetricsStore::Job(const std::string& job_id) {
  return pool_->Autocommit([&](pqxx::nontransaction& tx) -> absl::StatusOr<JobInfo> {
    pqxx::result r = tx.exec_params(
        absl::StrCat("SELECT owner, attempt, last_point_seq, last_log_seq, device_type, "
                     "device_seconds, cost, currency, ",
                     Micros("updated_at"), " FROM metrics.jobs WHERE job_id = $1::uuid"),
        job_id);
    if (r.empty()) return absl::NotFoundError(absl::StrCat("no metrics for job ", job_id));
    JobInfo info;
    info.owner = r[0][0].as<std::string>();
    info.attempt = r[0][1].as<int>();
    info.last_point_seq = r[0][2].as<int64_t>();
    info.last_log_seq = r[0][3].as<int64_t>();
    info.cost.set_device_type(r[0][4].as<std::string>());
    info.cost.set_device_seconds(r[0][5].as<double>());
    info.cost.set_amount(r[0][6].as<double>());
    info.cost.set_currency(r[0][7].as<std::string>());
    *info.cost.mutable_update_time() = TimeUtil::MicrosecondsToTimestamp(r[0][8].as<int64_t>());
    return info;
  });
}

absl::StatusOr<Page<MetricPoint>> MetricsStore::Points(const std::string& job_id, int64_t after,
                                                       int64_t until, int limit) {
  return pool_->Autocommit([&](pqxx::nontransaction& tx) -> absl::StatusOr<Page<MetricPoint>> {
    Page<MetricPoint> page;
    pqxx::result r = tx.exec_prepared("metrics_points", job_id, after, until, limit);
    if (r.empty()) return page;  // the job has reported nothing
    page.owner = r[0][6].as<std::string>();
    page.items.reserve(r.size());
    for (const auto& row : r) {
      if (row[0].is_null()) break;  // no points in range
      page.items.push_back(RowToPoint(row));
    }
    return page;
  });
}

absl::StatusOr<Page<LogLine>> MetricsStore::Logs(const std::string& job_id, int64_t after,
                                                 int64_t until, int limit) {
  return pool_->Autocommit([&](pqxx::nontransaction& tx) -> absl::StatusOr<Page<LogLine>> {
    Page<LogLine> page;
    pqxx::result owner =
        tx.exec_params("SELECT owner FROM metrics.jobs WHERE job_id = $1::uuid", job_id);
    if (owner.empty()) return page;
    page.owner = owner[0][0].as<std::string>();
    pqxx::result r = tx.exec_params(
        absl::StrCat("SELECT seq, attempt, ", Micros("time"),
                     ", stream, text FROM metrics.logs WHERE job_id = $1::uuid AND seq > $2 AND "
                     "($3 = 0 OR seq <= $3) ORDER BY seq LIMIT $4"),
        job_id, after, until, limit);
    for (const auto& row : r) {
      LogLine l;
      l.set_seq(row[0].as<int64_t>());
      l.set_attempt(row[1].as<int>());
      *l.mutable_time() = TimeUtil::MicrosecondsToTimestamp(row[2].as<int64_t>());
      l.set_stream(static_cast<LogLine::Stream>(row[3].as<int>()));
      l.set_text(row[4].as<std::string>());
      page.items.push_back(std::move(l));
    }
    return page;
  });
}

absl::StatusOr<std::vector<MetricPoint>> MetricsStore::Recent(const std::string& job_id,
                                                              int limit) {
  return pool_->Autocommit(
      [&](pqxx::nontransaction& tx) -> absl::StatusOr<std::vector<MetricPoint>> {
        pqxx::result r = tx.exec_params(
            absl::StrCat(
                "SELECT * FROM (SELECT ", PointColumns(),
                " FROM metrics.points p WHERE p.job_id = $1::uuid ORDER BY p.seq DESC LIMIT $2"
                ") recent ORDER BY seq"),
            job_id, limit);
        std::vector<MetricPoint> points;
        for (const auto& row : r) points.push_back(RowToPoint(row));
        return points;
      });
}

absl::StatusOr<std::vector<trainmesh::v1::MetricSeries>> MetricsStore::Query(const SeriesQuery& q) {
  return pool_->Autocommit([&](pqxx::nontransaction& tx)
                               -> absl::StatusOr<std::vector<trainmesh::v1::MetricSeries>> {
    // The series with their extents: from the summaries for the whole run (no
    // scan at all), from the series index for a step range.
    const std::string names = absl::StrJoin(q.names, "\x1f");
    const bool whole = q.min_step == 0 && q.max_step == INT64_MAX;
    pqxx::result series = tx.exec_params(
        whole
            ? "SELECT name, run, count, first_step, last_step FROM metrics.summaries "
              "WHERE job_id = $1::uuid AND ($2 = '' OR name = ANY(string_to_array($2, E'\\x1f'))) "
              "AND ($3::text IS NULL OR run = $3) AND $4::bigint >= 0 AND $5::bigint >= 0 "
              "ORDER BY name, run LIMIT $6"
            : "SELECT name, run, count(*), min(step), max(step) FROM metrics.points "
              "WHERE job_id = $1::uuid AND ($2 = '' OR name = ANY(string_to_array($2, E'\\x1f'))) "
              "AND ($3::text IS NULL OR run = $3) AND step >= $4 AND step <= $5 "
              "GROUP BY name, run ORDER BY name, run LIMIT $6",
        q.job_id, names, q.run.has_value() ? q.run->c_str() : nullptr, q.min_step, q.max_step,
        q.max_series);
    std::vector<trainmesh::v1::MetricSeries> out;
    for (const auto& s : series) {
      trainmesh::v1::MetricSeries m;
      m.set_name(s[0].as<std::string>());
      m.set_run(s[1].as<std::string>());
      m.set_total_points(s[2].as<int64_t>());
      const int64_t lo = s[3].as<int64_t>(), hi = s[4].as<int64_t>();
      pqxx::result r;
      if (m.total_points() <= q.max_points) {
        r = tx.exec_params(
            absl::StrCat("SELECT ", PointColumns(),
                         " FROM metrics.points p WHERE p.job_id = $1::uuid AND p.name = $2 AND "
                         "p.run = $3 AND p.step >= $4 AND p.step <= $5 ORDER BY p.step, p.seq"),
            q.job_id, m.name(), m.run(), lo, hi);
        for (const auto& row : r) *m.add_points() = RowToPoint(row);
      } else {
        // Per bucket, the points holding the minimum and the maximum value, in
        // one pass (hash aggregate over the series index range, no sort).
        // Arrays compare element-wise: (value, step, seq).
        m.set_downsampled(true);
        const int buckets = std::max(1, q.max_points / 2);
        r = tx.exec_params(
            "SELECT min(ARRAY[value, step::float8, seq::float8])::text, "
            "max(ARRAY[value, step::float8, seq::float8])::text FROM metrics.points "
            "WHERE job_id = $1::uuid AND name = $2 AND run = $3 AND step >= $4 AND step <= $5 "
            "GROUP BY width_bucket(step, $4, $5 + 1, $6)",
            q.job_id, m.name(), m.run(), lo, hi, buckets);
        std::vector<MetricPoint> kept;
        kept.reserve(r.size() * 2);
        for (const auto& row : r) {
          for (int i = 0; i < 2; ++i) {
            // "{value,step,seq}"
            std::vector<absl::string_view> parts =
                absl::StrSplit(absl::string_view(row[i].c_str() + 1, row[i].size() - 2), ',');
            MetricPoint p;
            p.set_name(m.name());
            p.set_run(m.run());
            p.set_value(ParseFloat(parts[0]));
            p.set_step(static_cast<int64_t>(ParseFloat(parts[1])));
            p.set_seq(static_cast<int64_t>(ParseFloat(parts[2])));
            kept.push_back(std::move(p));
          }
        }
        std::sort(kept.begin(), kept.end(), [](const MetricPoint& a, const MetricPoint& b) {
          return a.step() != b.step() ? a.step() < b.step() : a.seq() < b.seq();
        });
        for (size_t i = 0; i < kept.size(); ++i) {
          if (i > 0 && kept[i].seq() == kept[i - 1].seq()) continue;  // min and max the same point
          *m.add_points() = std::move(kept[i]);
        }
      }
      out.push_back(std::move(m));
    }
    return out;
  });
}

absl::StatusOr<std::vector<trainmesh::v1::MetricSummary>> MetricsStore::Summaries(
    const std::string& job_id) {
  return pool_->Autocommit(
      [&](pqxx::nontransaction& tx) -> absl::StatusOr<std::vector<trainmesh::v1::MetricSummary>> {
        pqxx::result r = tx.exec_params(
            "SELECT name, run, last::text, last_step, coalesce(min::text, 'NaN'), "
            "coalesce(max::text, 'NaN'), count FROM metrics.summaries WHERE job_id = $1::uuid "
            "ORDER BY name, run",
            job_id);
        std::vector<trainmesh::v1::MetricSummary> out;
        for (const auto& row : r) out.push_back(RowToSummary(row));
        return out;
      });
}

absl::StatusOr<std::vector<trainmesh::v1::Chart>> MetricsStore::Charts(const std::string& job_id) {
  return pool_->Autocommit(
      [&](pqxx::nontransaction& tx) -> absl::StatusOr<std::vector<trainmesh::v1::Chart>> {
        pqxx::result r = tx.exec_params(
            "SELECT title, array_to_string(metrics, E'\\x1f'), type FROM metrics.charts "
            "WHERE job_id = $1::uuid ORDER BY title",
            job_id);
        std::vector<trainmesh::v1::Chart> out;
        for (const auto& row : r) out.push_back(RowToChart(row));
        return out;
      });
}

}  // namespace trainmesh::metrics
