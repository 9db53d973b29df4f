// JSON Web Tokens signed with HS256 (a shared secret), verified with libjwt.
// The auth service (a later stage) adds RS256/ES256 keys served as JWKS; the
// claims and the Principal they produce stay the same.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "trainmesh/v1/auth.pb.h"

namespace trainmesh::identity {

struct JwtConfig {
  // At least 32 bytes.
  std::string hs256_secret;
  std::string issuer = "trainmesh";
  std::string audience = "trainmesh";
  // Tolerance for clocks that disagree, applied to exp and nbf.
  absl::Duration clock_skew = absl::Seconds(60);
};

// From --jwt_secret, --jwt_issuer, --jwt_audience, --jwt_clock_skew.
JwtConfig JwtConfigFromFlags();

// INVALID_ARGUMENT when the secret is too short to be safe.
absl::Status ValidateJwtConfig(const JwtConfig& config);

// A signed token for `subject` carrying `scopes` (claim "scope", space
// separated), valid for `ttl` from `now`.
absl::StatusOr<std::string> MintToken(const JwtConfig& config, absl::string_view subject,
                                      const std::vector<std::string>& scopes, absl::Duration ttl,
                                      absl::Time now = absl::Now());

// Verifies signature (alg pinned to HS256: "none" and every other algorithm are
// refused), issuer, audience, exp and nbf. UNAUTHENTICATED with the reason
// (never the token) when anything is wrong.
absl::StatusOr<trainmesh::v1::Principal> VerifyToken(const JwtConfig& config,
                                                     absl::string_view token,
                                                     absl::Time now = absl::Now());

}  // namespace trainmesh::identity
