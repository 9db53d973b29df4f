// Per-principal token buckets. Each rate-limited method names its bucket class
// in its (trainmesh.v1.auth) option ("write", "poll"); a caller that runs dry
// gets RESOURCE_EXHAUSTED with a google.rpc.RetryInfo saying when to come back.
#pragma once

#include <map>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
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

}  // namespace trainmesh::identity
