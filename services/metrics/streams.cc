#include "services/metrics/streams.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <optional>
#include <set>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "libs/log/log.h"
#include "libs/server/write_pump.h"
#include "libs/status/grpc_status.h"

namespace trainmesh::metrics {

using trainmesh::v1::LogLine;
using trainmesh::v1::MetricPoint;
using trainmesh::v1::Principal;

// ---------------------------------------------------------------- Feed

template <typename Item>
void Feed<Item>::Announce(const std::string& job, int64_t first, int64_t last) {
  if (last < first || !hub_.Followed(job)) return;  // nobody here watches this job
  {
    absl::MutexLock lock(&mu_);
    Unread& u = unread_[job];
    if (u.last < u.first) {
      u.first = first;
      u.last = last;
    } else {
      u.first = std::min(u.first, first);
      u.last = std::max(u.last, last);
    }
    if (u.reading) return;  // the read in flight picks this up after
    u.reading = true;
  }
  if (!executor_->Submit([this, job] { Read(job); })) {
    absl::MutexLock lock(&mu_);
    unread_.erase(job);
  }
}

template <typename Item>
void Feed<Item>::Read(const std::string& job) {
  while (true) {
    const bool followed = hub_.Followed(job);
    int64_t first = 0, last = -1;
    {
      absl::MutexLock lock(&mu_);
      Unread& u = unread_[job];
      if (u.last < u.first || !followed) {
        unread_.erase(job);  // a later announcement starts a new read
        return;
      }
      first = u.first;
      last = u.last;
      u.first = 0;
      u.last = -1;
    }
    absl::StatusOr<Page<Item>> page =
        fetch_(job, first - 1, last, static_cast<int>(last - first + 1));
    if (!page.ok()) {
      TM_LOG(Warning, "feed read failed; subscribers re-read")
          .With("job", job)
          .With("error", page.status());
      hub_.Resync(job);
      continue;
    }
    auto chunk = std::make_shared<Chunk<Item>>();
    chunk->owner = std::move(page->owner);
    chunk->first = first;
    chunk->last = last;
    chunk->items = std::move(page->items);
    hub_.Publish(job, chunk);
  }
}

template class Feed<MetricPoint>;
template class Feed<LogLine>;

// ---------------------------------------------------------------- streams

namespace {

// What differs between the metrics and the logs stream.
struct PointTraits {
  using Item = MetricPoint;
  using Out = trainmesh::v1::MetricsStreamItem;
  static void Add(Out* out, const Item& item) { *out->add_points() = item; }
  static int Size(const Out& out) { return out.points_size(); }
};
struct LogTraits {
  using Item = LogLine;
  using Out = trainmesh::v1::LogStreamItem;
  static void Add(Out* out, const Item& item) { *out->add_lines() = item; }
  static int Size(const Out& out) { return out.lines_size(); }
};

// One subscription (see the header for the protocol): the pump writes what
// the feed offers, and reads from the database while catching up (the backlog
// first, then after a gap, a lag or a resync).
template <typename Traits>
class Stream : public server::WritePump<typename Traits::Out>,
               public Feed<typename Traits::Item>::Subscriber {
 public:
  using Base = server::WritePump<typename Traits::Out>;
  using Item = typename Traits::Item;
  using Out = typename Traits::Out;
  using ChunkPtr = typename Feed<Item>::ChunkPtr;

  Stream(MetricsService* service, Feed<Item>* feed, server::Executor* executor,
         typename Base::Authorize authorize, std::string job_id, int64_t after,
         std::set<std::string> names, StreamLimits limits)
      : Base(executor, limits.guards, std::move(authorize)),
        service_(service),
        feed_(feed),
        job_id_(std::move(job_id)),
        names_(std::move(names)),
        limits_(limits),
        last_seq_(after),
        handed_seq_(after) {}

  void OnEvent(const std::string&, const ChunkPtr& chunk) override {
    {
      absl::MutexLock lock(&mu_);
      if (chunk->last <= last_seq_) return;
      if (catching_up_) {
        dirty_ = true;  // the database read in flight may predate this
      } else if (chunk->first != last_seq_ + 1) {
        catching_up_ = true;  // a gap: read it from the database
      } else if (queued_items_ + chunk->items.size() > limits_.max_queued_items) {
        // Too far behind: drop what is queued and catch up from the database.
        queue_.clear();
        queued_items_ = 0;
        catching_up_ = true;
        lagged_ = true;
        last_seq_ = handed_seq_;
      } else {
        queued_items_ += chunk->items.size();
        last_seq_ = chunk->last;
        queue_.push_back(chunk);
      }
    }
    this->Pump();
  }

  void Resync() override {
    {
      absl::MutexLock lock(&mu_);
      catching_up_ = true;
      dirty_ = true;
    }
    this->Pump();
  }

  void Drain() override {
    this->EndWith(absl::UnavailableError(
        "server is shutting down; reconnect with after_seq = the seq of the last item received"));
  }

 protected:
  void Subscribe() override {
    // Join the feed before the first read: nothing committed meanwhile is missed.
    subscription_ = feed_->Add(job_id_, std::static_pointer_cast<Stream>(this->shared_from_this()));
  }
  void Unsubscribe() override { feed_->Remove(subscription_); }

  absl::Status Admit(const Principal& caller) override {
    return service_->CheckRead(caller, job_id_);
  }

  bool TakeFetch() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!catching_up_) return false;
    dirty_ = false;
    return true;
  }

  // Turns queued chunks into the next item to send.
  bool Next(Out* out) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (!queue_.empty()) {
      ChunkPtr chunk = std::move(queue_.front());
      queue_.pop_front();
      queued_items_ -= chunk->items.size();
      handed_seq_ = chunk->last;
      if (!chunk->owner.empty() && !MetricsService::MaySee(*caller_, chunk->owner)) {
        this->EndLocked(absl::NotFoundError(absl::StrCat("job ", job_id_, " not found")));
        return false;
      }
      out->Clear();
      out->set_seq(chunk->last);
      for (const Item& item : chunk->items) {
        if (names_.empty() || names_.count(NameOf(item)) > 0) Traits::Add(out, item);
      }
      if (Traits::Size(*out) == 0 && !lagged_) continue;  // all filtered out
      out->set_lagged(lagged_);
      lagged_ = false;
      return true;
    }
    return false;
  }

  // A catch-up read from the database.
  absl::Status Fetch(const Principal& caller) override {
    int64_t after = 0;
    {
      absl::MutexLock lock(&mu_);
      if (!caller_.has_value()) caller_ = caller;
      after = last_seq_;
    }
    absl::StatusOr<Page<Item>> page = Read(after, limits_.read_batch);
    if (!page.ok()) return page.status();
    absl::MutexLock lock(&mu_);
    if (after != last_seq_) return absl::OkStatus();  // moved meanwhile (a lag): read again
    const bool full = static_cast<int>(page->items.size()) >= limits_.read_batch;
    if (!page->items.empty()) {
      auto chunk = std::make_shared<Chunk<Item>>();
      chunk->owner = std::move(page->owner);
      chunk->first = after + 1;
      chunk->last = page->items.back().seq();
      chunk->items = std::move(page->items);
      queued_items_ += chunk->items.size();
      last_seq_ = chunk->last;
      queue_.push_back(std::move(chunk));
    } else if (!page->owner.empty() && !MetricsService::MaySee(caller, page->owner)) {
      return absl::NotFoundError(absl::StrCat("job ", job_id_, " not found"));
    }
    // Caught up when the database had no more and nothing arrived meanwhile.
    if (!full && !dirty_) catching_up_ = false;
    return absl::OkStatus();
  }

 private:
  using Base::mu_;

  static const std::string& NameOf(const MetricPoint& p) { return p.name(); }
  static const std::string& NameOf(const LogLine&) {
    static const std::string kNone;
    return kNone;
  }

  absl::StatusOr<Page<Item>> Read(int64_t after, int limit) {
    if constexpr (std::is_same_v<Item, MetricPoint>) {
      return service_->store()->Points(job_id_, after, 0, limit);
    } else {
      return service_->store()->Logs(job_id_, after, 0, limit);
    }
  }

  MetricsService* const service_;
  Feed<Item>* const feed_;
  const std::string job_id_;
  const std::set<std::string> names_;
  const StreamLimits limits_;
  uint64_t subscription_ = 0;  // set in Subscribe, before gRPC can end the stream

  std::optional<Principal> caller_ ABSL_GUARDED_BY(mu_);  // set by the first read
  std::deque<ChunkPtr> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_items_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_seq_ ABSL_GUARDED_BY(mu_);  // highest seq queued (or read)
  // Highest seq handed to a write (or skipped by the filter): a lagged
  // subscriber resumes reading after it.
  int64_t handed_seq_ ABSL_GUARDED_BY(mu_);
  bool catching_up_ ABSL_GUARDED_BY(mu_) = true;  // the backlog first
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
  bool lagged_ ABSL_GUARDED_BY(mu_) = false;
};

template <typename Traits>
grpc::ServerWriteReactor<typename Traits::Out>* Start(
    MetricsService* service, Feed<typename Traits::Item>* feed, server::Executor* executor,
    std::function<absl::StatusOr<Principal>()> authorize, const std::string& job_id, int64_t after,
    std::set<std::string> names, StreamLimits limits) {
  return std::make_shared<Stream<Traits>>(service, feed, executor, std::move(authorize), job_id,
                                          after, std::move(names), limits)
      ->Start();
}

// ---------------------------------------------------------------- ingest

class ReportReactor : public grpc::ServerBidiReactor<trainmesh::v1::ReportMetricsRequest,
                                                     trainmesh::v1::ReportMetricsResponse> {
 public:
  ReportReactor(MetricsService* service, server::Executor* executor,
                std::function<absl::StatusOr<Principal>()> authorize)
      : service_(service), executor_(executor), authorize_(std::move(authorize)) {
    StartRead(&request_);
  }

  // One batch at a time: read, store (executor), acknowledge, read the next.
  void OnReadDone(bool ok) override {
    if (!ok) {  // the client finished sending (or went away)
      End(grpc::Status::OK);
      return;
    }
    if (!executor_->Submit([this] { Store(); })) {
      End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
    }
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      End(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  void Store() {
    if (!caller_.has_value()) {
      absl::StatusOr<Principal> caller = authorize_();
      if (!caller.ok()) {
        End(status::ToGrpcStatus(caller.status()));
        return;
      }
      caller_ = *std::move(caller);
    }
    absl::StatusOr<trainmesh::v1::ReportMetricsResponse> ack = service_->Report(*caller_, request_);
    if (!ack.ok()) {
      End(status::ToGrpcStatus(ack.status()));
      return;
    }
    response_ = *std::move(ack);
    StartWrite(&response_);
  }

  void End(const grpc::Status& status) {
    if (finished_.exchange(true)) return;
    Finish(status);
  }

  MetricsService* service_;
  server::Executor* executor_;
  std::function<absl::StatusOr<Principal>()> authorize_;
  std::optional<Principal> caller_;
  trainmesh::v1::ReportMetricsRequest request_;
  trainmesh::v1::ReportMetricsResponse response_;
  std::atomic<bool> finished_{false};
};

}  // namespace

grpc::ServerWriteReactor<trainmesh::v1::MetricsStreamItem>* StartMetricsStream(
    MetricsService* service, PointFeed* feed, server::Executor* executor,
    std::function<absl::StatusOr<Principal>()> authorize,
    const trainmesh::v1::StreamMetricsRequest& request, StreamLimits limits) {
  return Start<PointTraits>(
      service, feed, executor, std::move(authorize), request.job_id(), request.after_seq(),
      std::set<std::string>(request.names().begin(), request.names().end()), limits);
}

grpc::ServerWriteReactor<trainmesh::v1::LogStreamItem>* StartLogStream(
    MetricsService* service, LogFeed* feed, server::Executor* executor,
    std::function<absl::StatusOr<Principal>()> authorize,
    const trainmesh::v1::StreamLogsRequest& request, StreamLimits limits) {
  return Start<LogTraits>(service, feed, executor, std::move(authorize), request.job_id(),
                          request.after_seq(), {}, limits);
}

grpc::ServerBidiReactor<trainmesh::v1::ReportMetricsRequest, trainmesh::v1::ReportMetricsResponse>*
StartReportStream(MetricsService* service, server::Executor* executor,
                  std::function<absl::StatusOr<Principal>()> authorize) {
  return new ReportReactor(service, executor, std::move(authorize));
}

}  // namespace trainmesh::metrics
