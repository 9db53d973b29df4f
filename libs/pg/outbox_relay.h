// Delivers an outbox table (id bigserial, kind text, payload bytea) to
// another service, in id order, at least once. Rows are written in the same
// transaction as the change they announce, so a crash between commit and the
// call loses nothing; receivers are idempotent, so a repeat does no harm.
//
// One relay per table delivers at a time (a session advisory lock elects it),
// which keeps reports about one job in order across replicas. Wake() after a
// commit that wrote rows makes delivery immediate; otherwise the table is
// polled.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace trainmesh::pg {

class OutboxRelay {
 public:
  enum class Delivery {
    kDone,        // delivered (or refused for good: logged and dropped)
    kRetryLater,  // the receiver is unavailable: stop, back off, retry this row
  };
  using Deliver = std::function<Delivery(int64_t id, const std::string& kind,
                                         const std::string& payload)>;

  struct Options {
    std::string dsn;
    std::string table;  // schema-qualified
    int batch = 100;
    absl::Duration poll = absl::Milliseconds(250);
    absl::Duration max_backoff = absl::Seconds(5);
  };

  OutboxRelay(Options options, Deliver deliver);
  ~OutboxRelay();  // Stop()

  void Start();
  void Stop();
  // Rows were committed: deliver now.
  void Wake();

  // Rows delivered so far by this relay (tests, metrics).
  int64_t delivered() const;

 private:
  void Run();
  // Delivers what is there; returns false when a delivery asked to retry.
  bool DeliverPending(void* connection);
  bool Sleep(absl::Duration d);  // false when stopping

  const Options options_;
  const Deliver deliver_;
  std::thread thread_;
  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  int64_t delivered_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace trainmesh::pg
