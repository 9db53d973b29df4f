// Signed JSON Web Tokens (RS256/ES256) with libjwt: minting by the auth
// service, and reading a token's header and claims before verification (to
// pick the issuer and key). Verification lives in verifier.h.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"
#include "libs/identity/keys.h"

namespace trainmesh::identity {

// Claim names beyond the registered ones.
inline constexpr char kKindClaim[] = "tm_kind";  // "user" | "job" | "url"
inline constexpr char kJobIdClaim[] = "job_id";
inline constexpr char kAttemptClaim[] = "attempt";
inline constexpr char kAgentIdClaim[] = "agent_id";
inline constexpr char kUrlClaim[] = "tm_url";

struct Claims {
  std::string subject;
  std::vector<std::string> scopes;
  std::string name;
  // Job tokens: kind "job", bound to (job, attempt, agent); subject is the owner.
  std::string kind = "user";
  std::string job_id;
  int attempt = 0;
  std::string agent_id;
  // Signed-URL tokens: kind "url", good only as the access_token of this path.
  std::string url;
};

// The claims of a job token: kind "job", the one scope "job:report", bound to
// (job, attempt, agent); its subject is the job's owner.
Claims JobClaims(std::string owner, std::string job_id, int attempt, std::string agent_id);

// A token signed by `key` (its kid in the header), valid from `now` for `ttl`.
absl::StatusOr<std::string> SignToken(const SigningKey& key, absl::string_view issuer,
                                      absl::string_view audience, const Claims& claims,
                                      absl::Duration ttl, absl::Time now = absl::Now());

// Header and claims of a token, NOT verified. UNAUTHENTICATED when malformed.
struct UnverifiedToken {
  std::string alg;
  std::string kid;
  google::protobuf::Struct claims;
};
absl::StatusOr<UnverifiedToken> PeekToken(absl::string_view token);

// True when `credential` has the shape of a JWT (three base64url parts).
bool LooksLikeJwt(absl::string_view credential);

}  // namespace trainmesh::identity
