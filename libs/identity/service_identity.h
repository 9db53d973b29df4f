// How a service learns who calls it: tokens of the mesh's own auth service
// (its JWKS fetched over gRPC) and of external identity providers (a trusted
// issuers file), API keys resolved through the auth service with a short
// cache, and per-principal rate limits. The flags that fill the options are
// the mains' (services/common/identity_flags.h).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/identity/authenticator.h"
#include "libs/identity/rate_limiter.h"

namespace trainmesh::identity {

struct ServiceIdentityOptions {
  std::string auth_endpoint = "127.0.0.1:7002";
  std::string service_api_key;
  std::string token_issuer = "trainmesh";
  std::string token_audience = "trainmesh";
  std::string trusted_issuers_file;
  absl::Duration api_key_cache_ttl = absl::Seconds(10);
  std::map<std::string, RateLimit> rate_limits;
  std::string insecure_no_auth_subject;
};

// For every service but auth: verifies against the auth service at
// options.auth_endpoint (GetJwks, Authenticate).
absl::StatusOr<std::unique_ptr<Authenticator>> AuthenticatorForService(
    const ServiceIdentityOptions& options);

// For the auth service itself: its own keys and API keys come from its store.
absl::StatusOr<std::unique_ptr<Authenticator>> AuthenticatorForAuthService(
    const ServiceIdentityOptions& options,
    std::function<absl::StatusOr<trainmesh::v1::Jwks>()> own_jwks,
    std::function<absl::StatusOr<trainmesh::v1::Principal>(absl::string_view)> api_keys);

}  // namespace trainmesh::identity
