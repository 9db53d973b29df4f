#include "services/scheduler/waiters.h"

#include <vector>

#include "absl/time/clock.h"

namespace trainmesh::scheduler {

Waiters::Waiters(server::Executor* executor) : executor_(executor) {
  timer_ = std::thread([this] { Timer(); });
}

Waiters::~Waiters() {
  ExpireAll();
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  timer_.join();
}

uint64_t Waiters::Add(absl::Time deadline, Poll poll) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  entries_[id] = Entry{deadline, std::move(poll)};
  ++changes_;  // the timer may need an earlier wake-up
  Schedule(id);
  return id;
}

void Waiters::Cancel(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  if (it->second.running) {
    it->second.expire = true;  // RunAttempt ends it
    it->second.poll.expire = [] {};
    it->second.poll.attempt = [] { return true; };
  } else {
    entries_.erase(it);
  }
}

void Waiters::Schedule(uint64_t id) {
  Entry& e = entries_[id];
  if (e.running) {
    e.again = true;
    return;
  }
  e.running = true;
  if (!executor_->Submit([this, id] { RunAttempt(id); })) {
    e.running = false;
    e.expire = true;
  }
}

void Waiters::RunAttempt(uint64_t id) {
  std::function<bool()> attempt;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    attempt = it->second.poll.attempt;
  }
  const bool answered = attempt();
  std::function<void()> expire;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    Entry& e = it->second;
    e.running = false;
    if (answered) {
      entries_.erase(it);
      return;
    }
    if (e.expire || absl::Now() >= e.deadline) {
      expire = std::move(e.poll.expire);
      entries_.erase(it);
    } else if (e.again) {
      e.again = false;
      Schedule(id);
    }
  }
  if (expire) expire();
}

void Waiters::WakeAll() {
  absl::MutexLock lock(&mu_);
  for (auto& [id, e] : entries_) Schedule(id);
}

void Waiters::ExpireAll() {
  std::vector<std::function<void()>> expired;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->second.running) {
        it->second.expire = true;
        ++it;
      } else {
        expired.push_back(std::move(it->second.poll.expire));
        it = entries_.erase(it);
      }
    }
  }
  for (auto& e : expired) e();
}

size_t Waiters::size() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

void Waiters::Timer() {
  while (true) {
    std::vector<std::function<void()>> expired;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      const absl::Time now = absl::Now();
      absl::Time next = now + absl::Seconds(1);
      for (auto it = entries_.begin(); it != entries_.end();) {
        Entry& e = it->second;
        if (e.deadline <= now) {
          if (e.running) {
            e.expire = true;
            ++it;
          } else {
            expired.push_back(std::move(e.poll.expire));
            it = entries_.erase(it);
          }
          continue;
        }
        next = std::min(next, e.deadline);
        ++it;
      }
      if (expired.empty()) {
        const uint64_t seen = changes_;
        auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stop_ || changes_ != seen;
        };
        mu_.AwaitWithDeadline(absl::Condition(&changed), next);
        continue;
      }
    }
    for (auto& e : expired) e();
  }
}

}  // namespace trainmesh::scheduler
