// Identity on every call: reads `authorization: Bearer <credential>`, resolves
// it (a JWT verified locally against cached JWKS, or an API key resolved by the
// auth service with a short cache), enforces the scopes the method declares in
// its (trainmesh.v1.auth) option and the method's rate limit. No handler checks
// scopes by hand; every service calls this once per RPC (libs/server/handler.h).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/grpcpp.h"
#include "libs/identity/rate_limiter.h"
#include "libs/identity/verifier.h"
#include "trainmesh/v1/auth.pb.h"

namespace trainmesh::identity {

// Metadata the gateway sets to the request's path and query (less the
// access_token) when the credential came from `?access_token=`: such a
// credential must be a signed URL's token, signed for exactly that URL, and
// opens only the method its path routes to.
inline constexpr char kSignedUrlMetadata[] = "x-trainmesh-url";

// The method a signed URL for `path` (a query is ignored) opens: the GET route
// of a server-streaming method that reads (needs jobs:read): job, jobs-feed,
// metric and log streams and artifact downloads. INVALID_ARGUMENT otherwise.
absl::StatusOr<const google::protobuf::MethodDescriptor*> SignableMethod(absl::string_view path);

struct AuthenticatorOptions {
  std::shared_ptr<TokenVerifier> tokens;
  // Resolves API keys; unset: API keys are refused.
  std::function<absl::StatusOr<trainmesh::v1::Principal>(absl::string_view key)> api_keys;
  // Unset: no rate limits.
  std::shared_ptr<RateLimiter> limiter;
  // Benchmarks only: when set, nothing is verified and every caller is this
  // subject with every scope.
  std::string insecure_fixed_subject;
};

class Authenticator {
 public:
  explicit Authenticator(AuthenticatorOptions options);

  // The caller of `method`:
  //   no, malformed, forged or expired credential -> UNAUTHENTICATED
  //   valid credential without one of the method's scopes -> PERMISSION_DENIED
  //   the caller's bucket for the method is empty -> RESOURCE_EXHAUSTED + RetryInfo
  //   the auth service is unreachable for an API key -> UNAVAILABLE
  // Public methods return an empty principal when no credential is sent.
  // May block (key refresh, API key lookup): call it off the gRPC threads.
  absl::StatusOr<trainmesh::v1::Principal> Authorize(
      const grpc::ServerContextBase& context,
      const google::protobuf::MethodDescriptor& method) const;

  // As Authorize, for a credential at hand. `signed_url` is the path the
  // gateway saw the credential in (kSignedUrlMetadata), or empty.
  absl::StatusOr<trainmesh::v1::Principal> AuthorizeCredential(
      absl::string_view authorization_header,
      const google::protobuf::MethodDescriptor& method,
      absl::string_view signed_url = {}) const;

  // For reports that carry a job token in the request body (agents that only
  // speak REST, or whose header holds their API key): the body token wins
  // when present.
  absl::StatusOr<trainmesh::v1::Principal> AuthorizeWithBodyToken(
      const grpc::ServerContextBase& context, const google::protobuf::MethodDescriptor& method,
      const std::string& body_token) const;

  // A bare credential (JWT or API key) to its principal, no method checks.
  absl::StatusOr<trainmesh::v1::Principal> Authenticate(absl::string_view credential) const;

  const std::shared_ptr<TokenVerifier>& verifier() const { return options_.tokens; }

 private:
  AuthenticatorOptions options_;
};

// The descriptor of `service`.`method` from the compiled-in protos; aborts if
// absent (a programming error, caught by every test that calls the method).
const google::protobuf::MethodDescriptor& MethodOf(const std::string& service,
                                                   const std::string& method);

// For reports made with a job token: the token must be for `job_id` and for
// `attempt` (the current one). PERMISSION_DENIED for another job, a stale
// attempt, or a credential that is not a job token (unless it is an agent or
// internal caller, which `allow_other_kinds` admits).
absl::Status CheckJobToken(const trainmesh::v1::Principal& caller, absl::string_view job_id,
                           int attempt, bool allow_other_kinds = false);

}  // namespace trainmesh::identity
