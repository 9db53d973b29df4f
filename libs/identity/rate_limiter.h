// Per-principal token buckets. Each rate-limited method names its bucket class
// in its (trainmesh.v1.auth) option ("write", "poll"); a caller that runs dry
// gets RESOURCE_EXHAUSTED with a google.rpc.RetryInfo saying when to come back.
#pragma once

#include <map>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace trainmesh::identity {

struct RateLimit {
  double per_second = 0;  // 0: unlimited
  double burst = 1;
};

class RateLimiter {
 public:
  explicit RateLimiter(std::map<std::string, RateLimit> classes) : classes_(std::move(classes)) {}

  // Takes one token of `klass` for `principal`. OK, or RESOURCE_EXHAUSTED
  // with RetryInfo. Unknown or unlimited classes always pass.
  absl::Status Take(const std::string& klass, const std::string& principal,
                    absl::Time now = absl::Now());

 private:
  struct Bucket {
    double tokens;
    absl::Time updated;
  };
  static constexpr size_t kMaxBuckets = 100000;
  const std::map<std::string, RateLimit> classes_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

// RESOURCE_EXHAUSTED with `message` and a google.rpc.RetryInfo of `wait`.
absl::Status RetryLater(absl::string_view message, absl::Duration wait);

// Growing backoff after repeated failures of one key (a user name, a client
// address), for guesses such as wrong passwords: `free_failures` within
// `window` cost nothing; from then on the key is refused for `window`, twice
// that after the next failure, and so on up to `max_backoff`. A success
// clears the key. Memory is bounded (`max_keys`); what is forgotten first is
// a key that is not refused now.
class FailureThrottle {
 public:
  struct Options {
    int free_failures = 5;
    absl::Duration window = absl::Minutes(1);
    absl::Duration max_backoff = absl::Minutes(15);
    size_t max_keys = 100000;
  };
  explicit FailureThrottle(Options options) : options_(options) {}

  // OK, or RESOURCE_EXHAUSTED with RetryInfo while `key` is refused. `what`
  // names the key in the message ("user name", "client address").
  absl::Status Check(const std::string& key, absl::string_view what, absl::Time now = absl::Now());
  void Failure(const std::string& key, absl::Time now = absl::Now());
  void Success(const std::string& key);

 private:
  struct Entry {
    int failures = 0;
    absl::Time first;  // of the current run of failures
    absl::Time last;
  };
  // How long a key with `failures` is refused after its last failure.
  absl::Duration Backoff(int failures) const;
  // Whether `e` counts for nothing any more (its run of failures is over).
  bool Stale(const Entry& e, absl::Time now) const;

  const Options options_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace trainmesh::identity
