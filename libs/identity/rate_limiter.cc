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
  return RetryLater(absl::StrFormat("rate limit for %s calls exceeded (%g/s, burst %g); retry in %s", klass,
                                    rl.per_second, rl.burst, absl::FormatDuration(wait)),
                    wait);
}

absl::Status RetryLater(absl::string_view message, absl::Duration wait) {
  google::rpc::RetryInfo retry;
  const int64_t nanos = absl::ToInt64Nanoseconds(wait);
  retry.mutable_retry_delay()->set_seconds(nanos / 1000000000);
  retry.mutable_retry_delay()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
  absl::Status status(absl::StatusCode::kResourceExhausted, message);
  status.SetPayload("type.googleapis.com/google.rpc.RetryInfo", absl::Cord(retry.SerializeAsString()));
  return status;
}

absl::Duration FailureThrottle::Backoff(int failures) const {
  const int doublings = std::min(failures - options_.free_failures, 30);
  if (doublings < 0) return absl::ZeroDuration();
  return std::min(options_.max_backoff, options_.window * (int64_t{1} << doublings));
}

bool FailureThrottle::Stale(const Entry& e, absl::Time now) const {
  // Below the threshold a run lasts one window; above it, until its refusal
  // has ended and a window has passed without failure.
  if (e.failures < options_.free_failures) return now - e.first >= options_.window;
  return now - e.last >= Backoff(e.failures) + options_.window;
}

absl::Status FailureThrottle::Check(const std::string& key, absl::string_view what, absl::Time now) {
  absl::Duration wait;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second.failures < options_.free_failures) return absl::OkStatus();
    const absl::Time until = it->second.last + Backoff(it->second.failures);
    if (now >= until) return absl::OkStatus();
    wait = until - now;
  }
  return RetryLater(absl::StrCat("too many failed attempts for this ", what, "; retry in ",
                                 absl::FormatDuration(absl::Ceil(wait, absl::Seconds(1)))),
                    wait);
}

void FailureThrottle::Failure(const std::string& key, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (entries_.size() >= options_.max_keys && !entries_.contains(key)) {
    absl::erase_if(entries_, [&](const auto& kv) { return Stale(kv.second, now); });
    if (entries_.size() >= options_.max_keys) {
      // Still full: forget the keys that are not refused now.
      absl::erase_if(entries_, [&](const auto& kv) { return kv.second.failures < options_.free_failures; });
    }
    if (entries_.size() >= options_.max_keys) return;
  }
  Entry& e = entries_[key];
  if (e.failures > 0 && Stale(e, now)) e = Entry();
  if (e.failures == 0) e.first = now;
  ++e.failures;
  e.last = now;
}

void FailureThrottle::Success(const std::string& key) {
  absl::MutexLock lock(&mu_);
  entries_.erase(key);
}

}  // namespace trainmesh::identity
