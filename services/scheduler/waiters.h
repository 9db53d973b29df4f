// Long-polls (AcquireJob with a wait): each waiting agent's claim is retried
// on the executor whenever the queue may have changed (NOTIFY) and answered
// empty at its deadline. No thread is held per waiting agent.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/server/executor.h"

namespace trainmesh::scheduler {

class Waiters {
 public:
  // `attempt` returns true when the poll is answered (a job was claimed, or it
  // failed); `expire` answers it empty. Exactly one of them ends each poll.
  struct Poll {
    std::function<bool()> attempt;
    std::function<void()> expire;
  };

  explicit Waiters(server::Executor* executor);
  ~Waiters();

  // Registers the poll and tries it at once. Returns its id.
  uint64_t Add(absl::Time deadline, Poll poll);
  // The caller went away: answer nothing more.
  void Cancel(uint64_t id);
  // The queue changed: every waiting poll tries again.
  void WakeAll();
  // Shutting down: answer every poll empty.
  void ExpireAll();
  size_t size() const;

 private:
  struct Entry {
    absl::Time deadline;
    Poll poll;
    bool running = false;  // an attempt is on the executor
    bool again = false;    // woken while running: try once more
    bool expire = false;   // deadline passed while running
  };
  void Schedule(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunAttempt(uint64_t id);
  void Timer();

  server::Executor* executor_;
  mutable absl::Mutex mu_;
  std::map<uint64_t, Entry> entries_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t changes_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread timer_;
};

}  // namespace trainmesh::scheduler
