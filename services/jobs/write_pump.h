// What the jobs service's server streams (WatchJob, WatchJobs) share: the
// write side of a callback ServerWriteReactor. Messages wait in a queue under
// one lock and go out one write at a time; database reads ("fetches") run on
// the executor, never on gRPC threads, and never overlap; the first fetch
// authorizes the caller. A cancel, a drain, an error or the stream's natural
// end finish it. No gRPC call is made under the lock (gRPC may run reactions
// inline).
//
// A stream subclasses WritePump<Message> and says how it subscribes to the
// EventHub, when a fetch is due, what a fetch reads, and when it is complete.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "libs/server/executor.h"
#include "libs/server/stream_guard.h"
#include "libs/status/grpc_status.h"
#include "services/jobs/watch.h"
#include "trainmesh/v1/auth.pb.h"

namespace trainmesh::jobs {

template <typename Message>
class WritePump : public std::enable_shared_from_this<WritePump<Message>> {
 public:
  using Authorize = std::function<absl::StatusOr<trainmesh::v1::Principal>()>;

  // `drain_message`: the UNAVAILABLE message a draining server ends the
  // stream with (it says how to resume).
  // `guards` (may be null): the caller's stream slot and the end of the
  // stream when its credential lapses.
  WritePump(server::Executor* executor, EventHub* hub, server::StreamGuards* guards, Authorize authorize,
            std::string drain_message)
      : executor_(executor), hub_(hub), guards_(guards), authorize_(std::move(authorize)),
        drain_message_(std::move(drain_message)) {}
  virtual ~WritePump() = default;

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

  // Ends the stream with `why` (its credential lapsed).
  void EndWith(absl::Status why) {
    {
      absl::MutexLock lock(&mu_);
      pending_.clear();
      if (!finish_with_.has_value()) finish_with_ = std::move(why);
    }
    Pump();
  }

  // Makes the reactor, subscribes (before the first read, so nothing committed
  // meanwhile is missed) and starts the first fetch. Call once, on a pump
  // owned by a shared_ptr.
  grpc::ServerWriteReactor<Message>* Start() {
    auto* reactor = new Reactor(this->shared_from_this());
    {
      absl::MutexLock lock(&mu_);
      reactor_ = reactor;
    }
    subscription_ = Subscribe();
    std::weak_ptr<WritePump> weak = this->weak_from_this();
    hub_->OnDrain(subscription_, [weak] {
      if (auto self = weak.lock()) self->Drain();
    });
    Pump();
    return reactor;
  }

 protected:
  // Subscribes to the hub (calling Pump() after noting what changed);
  // returns the subscription.
  virtual uint64_t Subscribe() = 0;
  // Whether a fetch is due now; called under the lock, and a true answer
  // starts one (so it may clear what it answered from).
  virtual bool TakeFetch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // Reads what is new for `caller` and queues it (under the lock, with
  // Push or by editing pending_); on the executor. An error ends the stream.
  virtual absl::Status Fetch(const trainmesh::v1::Principal& caller) = 0;
  // Everything the stream will ever send is queued or sent: end it OK once
  // the queue is empty.
  virtual bool Complete() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return false; }

  // Decides the next step under the lock and takes it outside.
  void Pump() {
    Action action = Action::kNone;
    Reactor* reactor = nullptr;
    grpc::Status finish_status;
    {
      absl::MutexLock lock(&mu_);
      if (reactor_ == nullptr || finished_ || writing_) return;
      reactor = reactor_;
      if (finish_with_.has_value()) {  // an error, a cancel or a drain: end now
        finished_ = true;
        action = Action::kFinish;
        finish_status = status::ToGrpcStatus(*finish_with_);
      } else if (!pending_.empty()) {
        in_flight_ = std::move(pending_.front());
        pending_.pop_front();
        writing_ = true;
        action = Action::kWrite;
      } else if (Complete()) {
        finished_ = true;
        action = Action::kFinish;
        finish_status = grpc::Status::OK;
      } else if (!fetching_ && (!authorized_ || TakeFetch())) {
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
            finish_with_ = absl::UnavailableError("server is shutting down");
          }
          Pump();
        }
        break;
      case Action::kNone:
        break;
    }
  }

  EventHub* hub() const { return hub_; }

  absl::Mutex mu_;
  std::deque<Message> pending_ ABSL_GUARDED_BY(mu_);

 private:
  enum class Action { kNone, kWrite, kFetch, kFinish };

  void RunFetch() {
    // Fetches never overlap (fetching_), so caller_ needs no lock.
    absl::Status fetched;
    if (!caller_.has_value()) {
      absl::StatusOr<trainmesh::v1::Principal> caller = authorize_();
      if (caller.ok() && guards_ != nullptr) {
        absl::StatusOr<std::unique_ptr<server::StreamGuards::Guard>> guard = guards_->OpenFor(
            *caller, [this] { return authorize_().status(); }, this->weak_from_this());
        if (guard.ok()) {
          std::unique_ptr<server::StreamGuards::Guard> late;  // the stream ended meanwhile
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
      if (!fetched.ok() && !finish_with_.has_value()) finish_with_ = fetched;
    }
    Pump();
  }

  void Drain() {
    {
      absl::MutexLock lock(&mu_);
      pending_.clear();
      // Only the client knows which message reached it last (one may be in
      // flight): the message tells it how to resume.
      if (!finish_with_.has_value()) finish_with_ = absl::UnavailableError(drain_message_);
    }
    Pump();
  }

  void OnWriteDone(bool ok) {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok && !finish_with_.has_value()) finish_with_ = absl::CancelledError("client went away");
    }
    Pump();
  }

  void OnCancel() {
    {
      absl::MutexLock lock(&mu_);
      pending_.clear();
      finish_with_ = absl::CancelledError("watch cancelled");
    }
    Pump();
  }

  void OnDone() {
    std::unique_ptr<server::StreamGuards::Guard> guard;  // the slot is free as soon as the stream is
    hub_->Unsubscribe(subscription_);
    absl::MutexLock lock(&mu_);
    reactor_ = nullptr;
    guard = std::move(guard_);
  }

  server::Executor* const executor_;
  EventHub* const hub_;
  server::StreamGuards* const guards_;
  const Authorize authorize_;
  const std::string drain_message_;
  // Set by the first fetch; read by later ones only.
  std::optional<trainmesh::v1::Principal> caller_;
  // Set with caller_; released in OnDone.
  std::unique_ptr<server::StreamGuards::Guard> guard_ ABSL_GUARDED_BY(mu_);
  uint64_t subscription_ = 0;

  Reactor* reactor_ ABSL_GUARDED_BY(mu_) = nullptr;  // null once done
  Message in_flight_ ABSL_GUARDED_BY(mu_);
  bool authorized_ ABSL_GUARDED_BY(mu_) = false;
  bool fetching_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Status> finish_with_ ABSL_GUARDED_BY(mu_);
};

}  // namespace trainmesh::jobs
