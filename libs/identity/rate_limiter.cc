#include "libs/identity/rate_limiter.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/rpc/error_details.pb.h"

namespace trainmesh::identity {

absl::Status RateLimiter::Take(const std::string& klass, const std::string& principal,
                               absl::Time now) {
  auto limit = classes_.find(klass);
  if (limit == classes_.end() || limit->second.per_second <= 0) return absl::OkStatus();
  const RateLimit& rl = limit->second;
  const std::string key = absl::StrCat(klass, "\x1f", principal);
  double missing = 0;
  {
    absl::MutexLock lock(&mu_);
    if (buckets_.size() >= kMaxBuckets) {
      // Idle callers' buckets are full again: forgetting them changes nothing.
      absl::erase_if(buckets_, [&](const auto& kv) {
        return kv.second.tokens +
                   absl::ToDoubleSeconds(now - kv.second.updated) * rl.per_second >=
               rl.burst;
      });
    }
    auto [it, inserted] = buckets_.try_emplace(key, Bucket{rl.burst, now});
    Bucket& b = it->second;
    b.tokens = std::min(rl.burst, b.tokens + absl::ToDoubleSeconds(now - b.updated) * rl.per_second);
    b.updated = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return absl::OkStatus();
    }
    missing = 1 - b.tokens;
  }
  const absl::Duration wait = absl::Seconds(missing / rl.per_second);
  google::rpc::RetryInfo retry;
  const int64_t nanos = absl::ToInt64Nanoseconds(wait);
  retry.mutable_retry_delay()->set_seconds(nanos / 1000000000);
  retry.mutable_retry_delay()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
  absl::Status status(absl::StatusCode::kResourceExhausted,
                      absl::StrFormat("rate limit for %s calls exceeded (%g/s, burst %g); retry "
                                      "in %s",
                                      klass, rl.per_second, rl.burst, absl::FormatDuration(wait)));
  status.SetPayload("type.googleapis.com/google.rpc.RetryInfo",
                    absl::Cord(retry.SerializeAsString()));
  return status;
}

}  // namespace trainmesh::identity
