// API keys: "tm_<prefix>_<secret>". The prefix (visible, indexed) finds the
// key; only a SHA-256 of the whole key is stored (API keys are long random
// strings, so a fast hash is safe where a password would need a slow KDF).
// Services resolve keys through the auth service with a short cache:
// revocation takes effect within the cache TTL.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "trainmesh/v1/auth.pb.h"

namespace trainmesh::identity {

struct NewApiKey {
  std::string prefix;  // "tm_" + 8 random characters
  std::string secret;  // the whole key, shown once
  std::string hash;    // what is stored
};

NewApiKey GenerateApiKey();

// The prefix of a well-formed key, or "" when `key` is not one.
std::string ApiKeyPrefix(absl::string_view key);

// SHA-256 of the key, hex.
std::string HashApiKey(absl::string_view key);

bool LooksLikeApiKey(absl::string_view credential);

// Resolves API keys to principals, remembering answers for `ttl`: successes
// (never past the key's expiry) and refusals (briefly, so a flood of bad keys
// does not reach the auth service). Failures to reach the resolver are not
// remembered.
class CachingApiKeyResolver {
 public:
  using Fetch = std::function<absl::StatusOr<trainmesh::v1::Principal>(absl::string_view key)>;
  CachingApiKeyResolver(Fetch fetch, absl::Duration ttl) : fetch_(std::move(fetch)), ttl_(ttl) {}

  absl::StatusOr<trainmesh::v1::Principal> Resolve(absl::string_view key,
                                                   absl::Time now = absl::Now());

 private:
  struct Entry {
    absl::StatusOr<trainmesh::v1::Principal> answer;
    absl::Time until;
  };
  static constexpr size_t kMaxEntries = 16384;
  Fetch fetch_;
  absl::Duration ttl_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> cache_ ABSL_GUARDED_BY(mu_);
};

}  // namespace trainmesh::identity
