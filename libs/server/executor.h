// A fixed pool of worker threads. gRPC callback handlers must never block, so
// anything that waits (a database round trip) runs here and finishes the RPC
// from the worker.
#pragma once

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace trainmesh::server {

class Executor {
 public:
  // `max_queued`: the most calls Offer lets wait (0: no bound). The default
  // is about a second of calls at typical service latencies.
  static constexpr size_t kDefaultMaxQueued = 1024;
  explicit Executor(int threads, std::string name = "worker", size_t max_queued = kDefaultMaxQueued);
  // Runs what was queued, then joins the threads.
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Queues `task`. Returns false (and drops it) after Shutdown().
  bool Submit(std::function<void()> task);

  // Queues a client's call unless `max_queued` already wait: a replica past
  // its capacity sheds load at once (the caller retries elsewhere or later)
  // instead of queueing without end. Internal work uses Submit.
  enum class Admission { kQueued, kFull, kStopped };
  Admission Offer(std::function<void()> task);

  // Stops accepting work, finishes what is queued and joins. Idempotent.
  void Shutdown();

  size_t queued() const;

 private:
  void Loop();

  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
  const size_t max_queued_;
};

}  // namespace trainmesh::server
