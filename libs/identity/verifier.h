// Verifying bearer tokens against the public keys (JWKS) of trusted issuers:
// the mesh's own auth service and any external identity provider (Clerk,
// Auth0, Keycloak). Keys are cached per issuer, refreshed periodically and at
// once (rate-limited) when a token names an unknown `kid`, so a key rotation
// needs no restart. Every key's algorithm is pinned: a token whose header
// claims another algorithm ("none", HS256 with the RSA public key as secret)
// is refused before any signature check.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/identity/rate_limiter.h"
#include "trainmesh/v1/auth.pb.h"

struct evp_pkey_st;  // OpenSSL's EVP_PKEY

namespace trainmesh::identity {

// Where an issuer's public keys come from.
class JwksSource {
 public:
  virtual ~JwksSource() = default;
  // UNAVAILABLE when the keys cannot be fetched right now.
  virtual absl::StatusOr<trainmesh::v1::Jwks> Fetch() = 0;
};

// Keys from a function (the auth service's own store, gRPC, tests).
std::shared_ptr<JwksSource> JwksFromFunction(
    std::function<absl::StatusOr<trainmesh::v1::Jwks>()> fetch);
// Keys from a JSON file {"keys": [...]}, read at every refresh.
std::shared_ptr<JwksSource> JwksFromFile(std::string path);
// Keys from an http(s) URL, fetched with a timeout and a size limit.
std::shared_ptr<JwksSource> JwksFromUrl(std::string url);

// Parses a JWKS document (unknown members are ignored, as RFC 7517 asks).
absl::StatusOr<trainmesh::v1::Jwks> ParseJwks(const std::string& json);

struct IssuerConfig {
  std::string issuer;
  // Required `aud`; empty: not checked.
  std::string audience;
  std::shared_ptr<JwksSource> jwks;
  std::string subject_claim = "sub";
  std::string subject_prefix;
  std::string name_claim = "name";
  // true: scopes come from the token's "scope" claim (the mesh's own tokens).
  // false: every user of this issuer gets default_scopes (external providers,
  // whose tokens know nothing of trainmesh scopes).
  bool scopes_from_token = false;
  std::vector<std::string> default_scopes = {"jobs:read", "jobs:write"};
  // Job tokens ("tm_kind": "job") and signed-URL tokens ("url") are honoured
  // from the mesh's own issuer only.
  bool allow_job_tokens = false;
  absl::Duration clock_skew = absl::Seconds(60);
  absl::Duration refresh_interval = absl::Minutes(5);
  // A kid still unknown after a fetch is refused without fetching again for
  // this long (the same made-up kid again costs a map lookup)…
  absl::Duration min_refresh_interval = absl::Seconds(10);
  // …and fetches, whatever the kid, come from one budget: a burst of
  // `fetch_burst`, refilled one per `min_fetch_gap` (zero: unlimited). A flood
  // of distinct made-up kids costs at most one fetch per gap; a request that
  // finds the budget spent, or a fetch already running, is answered at once
  // with UNAVAILABLE and RetryInfo (the kid may be a fresh rotation: nothing
  // says it is bad): once keys are loaded no request sleeps or waits on
  // another's fetch. The burst picks up a key rotated in right after a fetch.
  absl::Duration min_fetch_gap = absl::Milliseconds(200);
  int fetch_burst = 3;
};

// The issuers configured in a TrustedIssuers JSON file (see auth.proto).
absl::StatusOr<std::vector<IssuerConfig>> TrustedIssuersFromFile(const std::string& path);

class TokenVerifier {
 public:
  explicit TokenVerifier(std::vector<IssuerConfig> issuers);

  // The principal a token stands for. UNAUTHENTICATED with the reason (never
  // the token) for: malformed, unknown issuer, unknown kid (after a refresh),
  // pinned-algorithm mismatch, bad signature, wrong audience, expired, not yet
  // valid, no subject. UNAVAILABLE when keys are needed and cannot be fetched.
  absl::StatusOr<trainmesh::v1::Principal> Verify(absl::string_view token,
                                                  absl::Time now = absl::Now());

 private:
  struct Key {
    std::string alg;
    // Parsed once per key; signature checks run on it directly.
    std::shared_ptr<evp_pkey_st> pkey;
  };
  struct Issuer {
    IssuerConfig config;
    absl::Mutex mu;
    absl::flat_hash_map<std::string, Key> keys ABSL_GUARDED_BY(mu);
    // Last successful fetch; InfinitePast: keys never loaded.
    absl::Time fetched ABSL_GUARDED_BY(mu) = absl::InfinitePast();
    absl::Status last_error ABSL_GUARDED_BY(mu);
    // One fetch at a time; only requests that find no keys loaded yet wait
    // for it.
    bool fetching ABSL_GUARDED_BY(mu) = false;
    std::unique_ptr<RateLimiter> fetch_budget;
    // Kids a fetch did not find, and when.
    absl::flat_hash_map<std::string, absl::Time> missed ABSL_GUARDED_BY(mu);
  };

  absl::StatusOr<Key> FindKey(Issuer& issuer, const std::string& kid);
  // Fetches the keys; called with `issuer.fetching` set by the caller.
  void Refresh(Issuer& issuer) ABSL_LOCKS_EXCLUDED(issuer.mu);

  std::vector<std::unique_ptr<Issuer>> issuers_;
  // Tokens already verified, until they expire (a token cannot be revoked
  // before then anyway); bounded.
  static constexpr size_t kCacheEntries = 8192;
  absl::Mutex cache_mu_;
  absl::flat_hash_map<std::string, trainmesh::v1::Principal> verified_ ABSL_GUARDED_BY(cache_mu_);
};

}  // namespace trainmesh::identity
