#include "services/metrics/streams.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "libs/log/log.h"
#include "libs/status/grpc_status.h"

namespace trainmesh::metrics {

using trainmesh::v1::LogLine;
using trainmesh::v1::MetricPoint;
using trainmesh::v1::Principal;

// ---------------------------------------------------------------- Feed

template <typename Item>
uint64_t Feed<Item>::Add(const std::string& job, std::weak_ptr<Subscriber> subscriber) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  jobs_[job].subscribers[id] = std::move(subscriber);
  job_of_[id] = job;
  return id;
}

template <typename Item>
void Feed<Item>::Remove(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = job_of_.find(id);
  if (it == job_of_.end()) return;
  auto job = jobs_.find(it->second);
  if (job != jobs_.end()) {
    job->second.subscribers.erase(id);
    if (job->second.subscribers.empty() && !job->second.reading) jobs_.erase(job);
  }
  job_of_.erase(it);
}

template <typename Item>
size_t Feed<Item>::subscribers() const {
  absl::MutexLock lock(&mu_);
  return job_of_.size();
}

template <typename Item>
void Feed<Item>::Announce(const std::string& job, int64_t first, int64_t last) {
  if (last < first) return;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(job);
    if (it == jobs_.end()) return;  // nobody here watches this job
    Job& j = it->second;
    if (j.pending_last < j.pending_first) {
      j.pending_first = first;
      j.pending_last = last;
    } else {
      j.pending_first = std::min(j.pending_first, first);
      j.pending_last = std::max(j.pending_last, last);
    }
    if (j.reading) return;  // the read in flight picks this up after
    j.reading = true;
  }
  if (!executor_->Submit([this, job] { Read(job); })) {
    absl::MutexLock lock(&mu_);
    jobs_[job].reading = false;
  }
}

template <typename Item>
void Feed<Item>::Read(const std::string& job) {
  while (true) {
    int64_t first = 0, last = -1;
    {
      absl::MutexLock lock(&mu_);
      Job& j = jobs_[job];
      if (j.pending_last < j.pending_first || j.subscribers.empty()) {
        j.reading = false;
        if (j.subscribers.empty()) jobs_.erase(job);
        return;
      }
      first = j.pending_first;
      last = j.pending_last;
      j.pending_first = 0;
      j.pending_last = -1;
    }
    absl::StatusOr<Page<Item>> page = fetch_(job, first - 1, last, static_cast<int>(last - first + 1));
    std::vector<std::shared_ptr<Subscriber>> subscribers;
    {
      absl::MutexLock lock(&mu_);
      for (auto& [id, weak] : jobs_[job].subscribers) {
        if (auto s = weak.lock()) subscribers.push_back(std::move(s));
      }
    }
    if (!page.ok()) {
      TM_LOG(Warning, "feed read failed; subscribers re-read").With("job", job).With("error", page.status());
      for (auto& s : subscribers) s->Resync();
      continue;
    }
    auto chunk = std::make_shared<Chunk<Item>>();
    chunk->owner = std::move(page->owner);
    chunk->first = first;
    chunk->last = last;
    chunk->items = std::move(page->items);
    for (auto& s : subscribers) s->Offer(chunk);
  }
}

template <typename Item>
void Feed<Item>::ResyncAll() {
  std::vector<std::shared_ptr<Subscriber>> all;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [job, j] : jobs_) {
      for (auto& [id, weak] : j.subscribers) {
        if (auto s = weak.lock()) all.push_back(std::move(s));
      }
    }
  }
  for (auto& s : all) s->Resync();
}

template <typename Item>
void Feed<Item>::DrainAll() {
  std::vector<std::shared_ptr<Subscriber>> all;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [job, j] : jobs_) {
      for (auto& [id, weak] : j.subscribers) {
        if (auto s = weak.lock()) all.push_back(std::move(s));
      }
    }
  }
  for (auto& s : all) s->Drain();
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

template <typename Traits>
class Stream;

template <typename Traits>
class StreamReactor : public grpc::ServerWriteReactor<typename Traits::Out> {
 public:
  explicit StreamReactor(std::shared_ptr<Stream<Traits>> stream) : stream_(std::move(stream)) {}
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  std::shared_ptr<Stream<Traits>> stream_;
};

// The state of one subscription (see the header for the protocol). Shared by
// the reactor, feed callbacks and executor tasks; outlives the reactor while
// they hold it.
template <typename Traits>
class Stream : public Feed<typename Traits::Item>::Subscriber,
               public std::enable_shared_from_this<Stream<Traits>> {
 public:
  using Item = typename Traits::Item;
  using ChunkPtr = std::shared_ptr<const Chunk<Item>>;

  Stream(MetricsService* service, Feed<Item>* feed, server::Executor* executor,
         std::function<absl::StatusOr<Principal>()> authorize, std::string job_id, int64_t after,
         std::set<std::string> names, StreamLimits limits)
      : service_(service),
        feed_(feed),
        executor_(executor),
        authorize_(std::move(authorize)),
        job_id_(std::move(job_id)),
        names_(std::move(names)),
        limits_(limits),
        last_seq_(after),
        handed_seq_(after) {}

  void Start(StreamReactor<Traits>* reactor) {
    {
      absl::MutexLock lock(&mu_);
      reactor_ = reactor;
    }
    // Join the feed before the first read: nothing committed meanwhile is missed.
    subscription_ = feed_->Add(job_id_, this->weak_from_this());
    Pump();
  }

  void Offer(ChunkPtr chunk) override {
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || chunk->last <= last_seq_) return;
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
        queue_.push_back(std::move(chunk));
      }
    }
    Pump();
  }

  void Resync() override {
    {
      absl::MutexLock lock(&mu_);
      catching_up_ = true;
      dirty_ = true;
    }
    Pump();
  }

  void OnWriteDone(bool ok) {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok && !finish_with_.has_value()) {
        finish_with_ = absl::CancelledError("client went away");
      }
    }
    Pump();
  }

  void OnCancel() {
    {
      absl::MutexLock lock(&mu_);
      if (!finish_with_.has_value()) finish_with_ = absl::CancelledError("stream cancelled");
    }
    Pump();
  }

  void OnDone() {
    std::unique_ptr<server::StreamGuards::Guard> guard;  // released after the lock
    feed_->Remove(subscription_);
    absl::MutexLock lock(&mu_);
    reactor_ = nullptr;
    guard = std::move(guard_);
  }

  // Ends the stream with `why` (its credential lapsed).
  void EndWith(absl::Status why) {
    {
      absl::MutexLock lock(&mu_);
      if (!finish_with_.has_value()) finish_with_ = std::move(why);
    }
    Pump();
  }

  // The server drains: end with a status that says how to resume.
  void Drain() override {
    {
      absl::MutexLock lock(&mu_);
      if (!finish_with_.has_value()) {
        finish_with_ = absl::UnavailableError(
            "server is shutting down; reconnect with after_seq = the seq of the last item received");
      }
    }
    Pump();
  }

 private:
  enum class Action { kNone, kWrite, kRead, kFinish };

  // Under the lock: turns queued chunks into the next item to send; false when
  // there is nothing to send.
  bool NextItem() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (!queue_.empty()) {
      ChunkPtr chunk = std::move(queue_.front());
      queue_.pop_front();
      queued_items_ -= chunk->items.size();
      handed_seq_ = chunk->last;
      if (!chunk->owner.empty() && !MetricsService::MaySee(*caller_, chunk->owner)) {
        finish_with_ = absl::NotFoundError(absl::StrCat("job ", job_id_, " not found"));
        return false;
      }
      out_.Clear();
      out_.set_seq(chunk->last);
      for (const Item& item : chunk->items) {
        if (names_.empty() || names_.count(NameOf(item)) > 0) Traits::Add(&out_, item);
      }
      if (Traits::Size(out_) == 0 && !lagged_) continue;  // all filtered out
      out_.set_lagged(lagged_);
      lagged_ = false;
      return true;
    }
    return false;
  }

  static const std::string& NameOf(const MetricPoint& p) { return p.name(); }
  static const std::string& NameOf(const LogLine&) {
    static const std::string kNone;
    return kNone;
  }

  void Pump() {
    Action action = Action::kNone;
    StreamReactor<Traits>* reactor = nullptr;
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (reactor_ == nullptr || finished_ || writing_) return;
      reactor = reactor_;
      if (!finish_with_.has_value() && NextItem()) {
        writing_ = true;
        action = Action::kWrite;
      } else if (finish_with_.has_value()) {
        finished_ = true;
        action = Action::kFinish;
        status = status::ToGrpcStatus(*finish_with_);
      } else if (catching_up_ && !reading_) {
        reading_ = true;
        dirty_ = false;
        action = Action::kRead;
      }
    }
    switch (action) {
      case Action::kWrite:
        reactor->StartWrite(&out_);
        break;
      case Action::kFinish:
        reactor->Finish(status);
        break;
      case Action::kRead:
        if (!executor_->Submit([self = this->shared_from_this()] { self->ReadBack(); })) {
          {
            absl::MutexLock lock(&mu_);
            reading_ = false;
            finish_with_ = absl::UnavailableError("server is shutting down");
          }
          Pump();
        }
        break;
      case Action::kNone:
        break;
    }
  }

  absl::StatusOr<Page<Item>> Fetch(int64_t after, int limit) {
    if constexpr (std::is_same_v<Item, MetricPoint>) {
      return service_->store()->Points(job_id_, after, 0, limit);
    } else {
      return service_->store()->Logs(job_id_, after, 0, limit);
    }
  }

  // Catch-up read from the database (executor thread).
  void ReadBack() {
    // Reads never overlap (reading_), so caller_ is only written here, once.
    if (!caller_.has_value()) {
      absl::StatusOr<Principal> caller = authorize_();
      absl::Status allowed = caller.ok() ? service_->CheckRead(*caller, job_id_) : caller.status();
      if (allowed.ok() && limits_.guards != nullptr) {
        auto guard = limits_.guards->OpenFor(*caller, [this] { return authorize_().status(); },
                                             this->weak_from_this());
        if (guard.ok()) {
          std::unique_ptr<server::StreamGuards::Guard> late;  // the stream ended meanwhile
          absl::MutexLock lock(&mu_);
          (reactor_ != nullptr ? guard_ : late) = *std::move(guard);
        } else {
          allowed = guard.status();
        }
      }
      if (!allowed.ok()) {
        {
          absl::MutexLock lock(&mu_);
          reading_ = false;
          if (!finish_with_.has_value()) finish_with_ = allowed;
        }
        Pump();
        return;
      }
      caller_ = *std::move(caller);
    }
    int64_t after = 0;
    {
      absl::MutexLock lock(&mu_);
      after = last_seq_;
    }
    absl::StatusOr<Page<Item>> page = Fetch(after, limits_.read_batch);
    {
      absl::MutexLock lock(&mu_);
      reading_ = false;
      if (!page.ok()) {
        if (!finish_with_.has_value()) finish_with_ = page.status();
      } else if (after == last_seq_) {
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
        } else if (!page->owner.empty() && !MetricsService::MaySee(*caller_, page->owner)) {
          finish_with_ = absl::NotFoundError(absl::StrCat("job ", job_id_, " not found"));
        }
        // Caught up when the database had no more and nothing arrived meanwhile.
        if (!full && !dirty_) catching_up_ = false;
      }
    }
    Pump();
  }

  MetricsService* const service_;
  Feed<Item>* const feed_;
  server::Executor* const executor_;
  const std::function<absl::StatusOr<Principal>()> authorize_;
  const std::string job_id_;
  const std::set<std::string> names_;
  const StreamLimits limits_;
  uint64_t subscription_ = 0;
  std::optional<Principal> caller_;  // set by the first read

  absl::Mutex mu_;
  std::unique_ptr<server::StreamGuards::Guard> guard_ ABSL_GUARDED_BY(mu_);
  StreamReactor<Traits>* reactor_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::deque<ChunkPtr> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_items_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_seq_ ABSL_GUARDED_BY(mu_);       // highest seq queued (or read)
  // Highest seq handed to a write (or skipped by the filter): a lagged
  // subscriber resumes reading after it.
  int64_t handed_seq_ ABSL_GUARDED_BY(mu_);
  typename Traits::Out out_ ABSL_GUARDED_BY(mu_);
  bool catching_up_ ABSL_GUARDED_BY(mu_) = true;  // the backlog first
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool lagged_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Status> finish_with_ ABSL_GUARDED_BY(mu_);
};

template <typename Traits>
void StreamReactor<Traits>::OnWriteDone(bool ok) {
  stream_->OnWriteDone(ok);
}
template <typename Traits>
void StreamReactor<Traits>::OnCancel() {
  stream_->OnCancel();
}
template <typename Traits>
void StreamReactor<Traits>::OnDone() {
  stream_->OnDone();
  delete this;
}

template <typename Traits>
StreamReactor<Traits>* Start(MetricsService* service, Feed<typename Traits::Item>* feed,
                             server::Executor* executor,
                             std::function<absl::StatusOr<Principal>()> authorize,
                             const std::string& job_id, int64_t after,
                             std::set<std::string> names, StreamLimits limits) {
  auto stream = std::make_shared<Stream<Traits>>(service, feed, executor, std::move(authorize),
                                                 job_id, after, std::move(names), limits);
  auto* reactor = new StreamReactor<Traits>(stream);
  stream->Start(reactor);
  return reactor;
}

// ---------------------------------------------------------------- ingest

class ReportReactor
    : public grpc::ServerBidiReactor<trainmesh::v1::ReportMetricsRequest,
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
  return Start<PointTraits>(service, feed, executor, std::move(authorize), request.job_id(),
                            request.after_seq(),
                            std::set<std::string>(request.names().begin(), request.names().end()),
                            limits);
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
