// LISTEN/NOTIFY on a dedicated connection and thread. Notifications are handed
// to a callback on that thread; after every (re)connect `on_connected` runs, so
// subscribers can re-read what they may have missed while the connection was
// down (NOTIFY is not queued for absent listeners).
#pragma once

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace trainmesh::pg {

class Listener {
 public:
  using NotifyFn = std::function<void(const std::string& channel, const std::string& payload)>;

  // Callbacks run on the listener thread and must not block for long.
  Listener(std::string dsn, std::vector<std::string> channels, NotifyFn on_notify,
           std::function<void()> on_connected);
  ~Listener();  // Stop()
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  void Start();
  void Stop();

  // True once LISTEN is in effect on a live connection. Waits up to `timeout`.
  bool WaitUntilListening(absl::Duration timeout);

 private:
  void Run();
  // Returns false when asked to stop.
  bool Session();
  // Waits until `fd` is readable, the stop event fires or the timeout passes.
  // Returns false when stopping.
  bool WaitReadable(int fd, absl::Duration timeout, bool* readable);

  const std::string dsn_;
  const std::vector<std::string> channels_;
  const NotifyFn on_notify_;
  const std::function<void()> on_connected_;
  int stop_fd_ = -1;  // eventfd written by Stop()
  std::thread thread_;
  absl::Mutex mu_;
  bool listening_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace trainmesh::pg
