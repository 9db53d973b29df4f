// The write side of a server stream (a callback ServerWriteReactor), shared
// by WatchJob, WatchJobs, StreamMetrics and StreamLogs. Messages go out one
// write at a time; reads of the database ("fetches") run on the executor,
// never on gRPC threads, and never overlap. The first fetch authorizes the
// caller: the credential, then the stream's own check (Admit), then a stream
// slot whose credential is re-checked while it is open (StreamGuards). A
// cancel, a write the client did not take, an error, EndWith or the stream's
// natural end finish it. No gRPC call is made under the lock (gRPC may run
// reactions inline).
//
// A stream subclasses WritePump<Message> and says how it joins and leaves
// its hub, when a fetch is due, what a fetch reads, what goes out next, and
// when it is complete. State the hooks share is guarded by mu_.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "libs/server/executor.h"
#include "libs/server/stream_guard.h"
#include "libs/status/grpc_status.h"
#include "trainmesh/v1/auth.pb.h"

namespace trainmesh::server {

template <typename Message>
class WritePump : public std::enable_shared_from_this<WritePump<Message>> {
 public:
  using Authorize = std::function<absl::StatusOr<trainmesh::v1::Principal>()>;

  // `authorize` may block (key refresh, API key lookup): it runs on the
  // executor. `guards` (may be null): the caller's stream slot and the end of
  // the stream when its credential lapses.
  WritePump(Executor* executor, StreamGuards* guards, Authorize authorize)
      : executor_(executor), guards_(guards), authorize_(std::move(authorize)) {}
  virtual ~WritePump() = default;
  WritePump(const WritePump&) = delete;
  WritePump& operator=(const WritePump&) = delete;

  // The reactor gRPC drives; it owns itself and keeps the pump alive.
  class Reactor : public grpc::ServerWriteReactor<Message> {
   public:
    explicit Reactor(std::shared_ptr<WritePump> pump) : pump_(std::move(pump)) {}
    void OnWriteDone(bool ok) override { pump_->OnWriteDone(ok); }
    void OnCancel() override { pump_->OnCancel(); }
    void OnDone() override {
      pump_->OnDone();
      delete this;
    }

   private:
    std::shared_ptr<WritePump> pump_;
  };

  // Makes the reactor, joins the hub (before the first read, so nothing
  // committed meanwhile is missed) and starts the first fetch. Call once, on
  // a pump owned by a shared_ptr.
  grpc::ServerWriteReactor<Message>* Start() {
    auto* reactor = new Reactor(this->shared_from_this());
    {
      absl::MutexLock lock(&mu_);
      reactor_ = reactor;
    }
    Subscribe();
    Pump();
    return reactor;
  }

  // Ends the stream with `why` (its credential lapsed, the server drains)
  // unless it is already ending; what is queued is dropped.
  void EndWith(absl::Status why) {
    {
      absl::MutexLock lock(&mu_);
      pending_.clear();
      EndLocked(std::move(why));
    }
    Pump();
  }

 protected:
  // Joins the hub (whose calls end in Pump()); called once, from Start.
  virtual void Subscribe() = 0;
  // Leaves it; called once, when gRPC is done with the stream.
  virtual void Unsubscribe() = 0;
  // The stream's own check of the authorized caller (may the caller read
  // this job?), on the executor before the first fetch; an error ends the
  // stream with it.
  virtual absl::Status Admit(const trainmesh::v1::Principal& /*caller*/) {
    return absl::OkStatus();
  }
  // Whether a fetch is due now; called under the lock when none is running,
  // and a true answer starts one (so it may clear what it answered from).
  // The first fetch is always due.
  virtual bool TakeFetch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // Reads what is new for `caller` and queues it (under the lock); on the
  // executor. An error ends the stream.
  virtual absl::Status Fetch(const trainmesh::v1::Principal& caller) = 0;
  // The next message to write, moved into `out`; false when there is none
  // (then EndLocked may have been called). The default takes pending_'s front.
  virtual bool Next(Message* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (pending_.empty()) return false;
    *out = std::move(pending_.front());
    pending_.pop_front();
    return true;
  }
  // Everything the stream will ever send is sent: end it OK.
  virtual bool Complete() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return false; }

  // The stream ends with `why` at the next step, unless it is already ending.
  void EndLocked(absl::Status why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!finish_with_.has_value()) finish_with_ = std::move(why);
  }

  // Decides the next step under the lock and takes it outside. Hooks and hub
  // calls end in it after changing what a step depends on.
  void Pump() {
    Action action = Action::kNone;
    Reactor* reactor = nullptr;
    grpc::Status finish_status;
    {
      absl::MutexLock lock(&mu_);
      if (reactor_ == nullptr || finished_ || writing_) return;
      reactor = reactor_;
      if (!finish_with_.has_value() && Next(&in_flight_)) {
        writing_ = true;
        action = Action::kWrite;
      } else if (finish_with_.has_value()) {  // an error, a cancel, a drain: end now
        finished_ = true;
        action = Action::kFinish;
        finish_status = status::ToGrpcStatus(*finish_with_);
      } else if (Complete()) {
        finished_ = true;
        action = Action::kFinish;
        finish_status = grpc::Status::OK;
      } else if (!fetching_ && (TakeFetch() || !authorized_)) {
        fetching_ = true;
        action = Action::kFetch;
      }
    }
    // Safe outside the lock: while writing_ is set or before finished_ is
    // set, gRPC cannot call OnDone, so `reactor` is alive.
    switch (action) {
      case Action::kWrite:
        reactor->StartWrite(&in_flight_);
        break;
      case Action::kFinish:
        reactor->Finish(finish_status);
        break;
      case Action::kFetch:
        if (!executor_->Submit([self = this->shared_from_this()] { self->RunFetch(); })) {
          {
            absl::MutexLock lock(&mu_);
            fetching_ = false;
            EndLocked(absl::UnavailableError("server is shutting down"));
          }
          Pump();
        }
        break;
      case Action::kNone:
        break;
    }
  }

  absl::Mutex mu_;
  std::deque<Message> pending_ ABSL_GUARDED_BY(mu_);

 private:
  enum class Action { kNone, kWrite, kFetch, kFinish };

  void RunFetch() {
    // Fetches never overlap (fetching_), so caller_ needs no lock.
    absl::Status fetched;
    if (!caller_.has_value()) {
      absl::StatusOr<trainmesh::v1::Principal> caller = authorize_();
      if (caller.ok()) {
        if (absl::Status admitted = Admit(*caller); !admitted.ok()) caller = admitted;
      }
      if (caller.ok() && guards_ != nullptr) {
        absl::StatusOr<std::unique_ptr<StreamGuards::Guard>> guard = guards_->OpenFor(
            *caller, [this] { return authorize_().status(); }, this->weak_from_this());
        if (guard.ok()) {
          std::unique_ptr<StreamGuards::Guard>
              late;  // the stream ended meanwhile: released after the lock
          absl::MutexLock lock(&mu_);
          (reactor_ != nullptr ? guard_ : late) = *std::move(guard);
        } else {
          caller = guard.status();
        }
      }
      if (caller.ok()) {
        caller_ = *std::move(caller);
        absl::MutexLock lock(&mu_);
        authorized_ = true;
      } else {
        fetched = caller.status();
      }
    }
    if (fetched.ok()) fetched = Fetch(*caller_);
    {
      absl::MutexLock lock(&mu_);
      fetching_ = false;
      if (!fetched.ok()) EndLocked(std::move(fetched));
    }
    Pump();
  }

  void OnWriteDone(bool ok) {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) EndLocked(absl::CancelledError("client went away"));
    }
    Pump();
  }

  void OnCancel() { EndWith(absl::CancelledError("stream cancelled")); }

  void OnDone() {
    std::unique_ptr<StreamGuards::Guard> guard;  // the slot is free as soon as the stream is
    Unsubscribe();
    absl::MutexLock lock(&mu_);
    reactor_ = nullptr;
    guard = std::move(guard_);
  }

  Executor* const executor_;
  StreamGuards* const guards_;
  const Authorize authorize_;
  // Set by the first fetch; read by later ones only.
  std::optional<trainmesh::v1::Principal> caller_;
  // Set with caller_; released in OnDone.
  std::unique_ptr<StreamGuards::Guard> guard_ ABSL_GUARDED_BY(mu_);

  Reactor* reactor_ ABSL_GUARDED_BY(mu_) = nullptr;  // null once done
  Message in_flight_ ABSL_GUARDED_BY(mu_);
  bool authorized_ ABSL_GUARDED_BY(mu_) = false;
  bool fetching_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Status> finish_with_ ABSL_GUARDED_BY(mu_);
};

}  // namespace trainmesh::server
