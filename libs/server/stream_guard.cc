#include "libs/server/stream_guard.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "libs/identity/rate_limiter.h"

namespace trainmesh::server {

struct StreamGuards::Guard::State {
  std::string subject;
  absl::Time expires = absl::InfiniteFuture();
  std::function<absl::Status()> recheck;
  std::function<void(absl::Status)> end;
  // Held while a check runs; `closed` once the guard is gone.
  absl::Mutex mu;
  bool closed ABSL_GUARDED_BY(mu) = false;
};

StreamGuards::StreamGuards(Options options) : options_(options), thread_([this] { Run(); }) {}

StreamGuards::~StreamGuards() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

absl::StatusOr<std::unique_ptr<StreamGuards::Guard>> StreamGuards::Open(const trainmesh::v1::Principal& caller,
                                                                        std::function<absl::Status()> recheck,
                                                                        std::function<void(absl::Status)> end) {
  auto state = std::make_shared<Guard::State>();
  state->subject = caller.subject();
  if (caller.has_expire_time()) {
    state->expires = absl::FromUnixSeconds(caller.expire_time().seconds()) +
                     absl::Nanoseconds(caller.expire_time().nanos());
  }
  state->recheck = std::move(recheck);
  state->end = std::move(end);
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    int& count = open_[state->subject];
    if (options_.max_per_user > 0 && count >= options_.max_per_user) {
      if (count == 0) open_.erase(state->subject);
      return identity::RetryLater(absl::StrCat("too many open streams (", options_.max_per_user,
                                               " per user on this server); close some or retry later"),
                                  absl::Seconds(5));
    }
    ++count;
    due_.emplace(std::min(state->expires, now + options_.recheck), state);
  }
  return std::unique_ptr<Guard>(new Guard(this, std::move(state)));
}

int StreamGuards::open(const std::string& subject) const {
  absl::MutexLock lock(&mu_);
  auto it = open_.find(subject);
  return it == open_.end() ? 0 : it->second;
}

StreamGuards::Guard::~Guard() { guards_->Close(state_); }

void StreamGuards::Close(const std::shared_ptr<Guard::State>& state) {
  {
    absl::MutexLock check(&state->mu);  // waits for a check in progress
    state->closed = true;
  }
  absl::MutexLock lock(&mu_);
  for (auto it = due_.begin(); it != due_.end(); ++it) {
    if (it->second == state) {
      due_.erase(it);
      break;
    }
  }
  auto it = open_.find(state->subject);
  if (it != open_.end() && --it->second <= 0) open_.erase(it);
}

void StreamGuards::Run() {
  while (true) {
    std::vector<std::shared_ptr<Guard::State>> ready;
    {
      absl::MutexLock lock(&mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || (!due_.empty() && due_.begin()->first <= absl::Now());
      };
      const absl::Time next = due_.empty() ? absl::Now() + absl::Seconds(1) : due_.begin()->first;
      mu_.AwaitWithDeadline(absl::Condition(&wake), std::min(next, absl::Now() + absl::Seconds(1)));
      if (stopping_) return;
      const absl::Time now = absl::Now();
      while (!due_.empty() && due_.begin()->first <= now) {
        ready.push_back(due_.begin()->second);
        due_.erase(due_.begin());
      }
    }
    for (const auto& state : ready) {
      absl::Status verdict;
      {
        absl::MutexLock check(&state->mu);
        if (state->closed) continue;
        if (absl::Now() >= state->expires) {
          verdict = absl::UnauthenticatedError("the credential of this stream expired; reconnect with a fresh one");
        } else {
          verdict = state->recheck();
          if (!verdict.ok()) {
            verdict = absl::UnauthenticatedError(
                absl::StrCat("the credential of this stream is no longer valid: ", verdict.message()));
          }
        }
        if (verdict.ok()) {
          absl::MutexLock lock(&mu_);
          due_.emplace(std::min(state->expires, absl::Now() + options_.recheck), state);
          continue;
        }
        state->closed = true;  // checked no more
      }
      state->end(verdict);  // outside the lock: it may destroy the guard
    }
  }
}

}  // namespace trainmesh::server
