// The identity flags of every service but the gateway and the trainer:
// --auth_endpoint, --service_api_key (this service's own credential, an API
// key with scope "internal"), --token_issuer, --token_audience,
// --trusted_issuers_file, --api_key_cache_ttl, --write_rate, --write_burst,
// --poll_rate, --poll_burst, --insecure_no_auth_subject (benchmarks only).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "libs/identity/service_identity.h"

namespace trainmesh::service {

identity::ServiceIdentityOptions IdentityOptionsFromFlags();

// identity::AuthenticatorForService, configured from the flags.
absl::StatusOr<std::unique_ptr<identity::Authenticator>> AuthenticatorFromFlags();

// identity::AuthenticatorForAuthService, configured from the flags.
absl::StatusOr<std::unique_ptr<identity::Authenticator>> AuthenticatorFromFlags(
    std::function<absl::StatusOr<trainmesh::v1::Jwks>()> own_jwks,
    std::function<absl::StatusOr<trainmesh::v1::Principal>(absl::string_view)> api_keys);

// The issuer and audience the mesh's tokens carry.
std::string TokenIssuer();
std::string TokenAudience();

// The credential this service presents to others ("" when none).
std::string ServiceCredential();

}  // namespace trainmesh::service
