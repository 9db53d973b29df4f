#include "services/common/identity_flags.h"

#include "absl/flags/flag.h"
#include "absl/time/time.h"

ABSL_FLAG(std::string, auth_endpoint, "127.0.0.1:7002", "gRPC address of the auth service.");
ABSL_FLAG(std::string, service_api_key, "",
          "This service's own credential for calls to other services (an API key with scope "
          "\"internal\").");
ABSL_FLAG(std::string, token_issuer, "trainmesh", "`iss` of the mesh's own tokens.");
ABSL_FLAG(std::string, token_audience, "trainmesh", "`aud` of the mesh's own tokens.");
ABSL_FLAG(std::string, trusted_issuers_file, "",
          "JSON file of external identity providers whose tokens are accepted "
          "(trainmesh.v1.TrustedIssuers).");
ABSL_FLAG(absl::Duration, api_key_cache_ttl, absl::Seconds(10),
          "How long a resolved API key is remembered; a revoked key works at most this long.");
ABSL_FLAG(double, write_rate, 20, "Write calls per second per caller (0: unlimited).");
ABSL_FLAG(double, write_burst, 40, "Write calls a caller may make at once.");
ABSL_FLAG(double, poll_rate, 50,
          "Agent polls per second per caller, all of its agents together (0: unlimited); "
          "a busy agent polls once per job it claims.");
ABSL_FLAG(double, poll_burst, 100, "Agent polls a caller may make at once.");
ABSL_FLAG(std::string, insecure_no_auth_subject, "",
          "BENCHMARKS ONLY: skip authentication and treat every caller as this user.");

namespace trainmesh::service {

identity::ServiceIdentityOptions IdentityOptionsFromFlags() {
  identity::ServiceIdentityOptions o;
  o.auth_endpoint = absl::GetFlag(FLAGS_auth_endpoint);
  o.service_api_key = absl::GetFlag(FLAGS_service_api_key);
  o.token_issuer = absl::GetFlag(FLAGS_token_issuer);
  o.token_audience = absl::GetFlag(FLAGS_token_audience);
  o.trusted_issuers_file = absl::GetFlag(FLAGS_trusted_issuers_file);
  o.api_key_cache_ttl = absl::GetFlag(FLAGS_api_key_cache_ttl);
  o.rate_limits = {
      {"write", {absl::GetFlag(FLAGS_write_rate), absl::GetFlag(FLAGS_write_burst)}},
      {"poll", {absl::GetFlag(FLAGS_poll_rate), absl::GetFlag(FLAGS_poll_burst)}}};
  o.insecure_no_auth_subject = absl::GetFlag(FLAGS_insecure_no_auth_subject);
  return o;
}

absl::StatusOr<std::unique_ptr<identity::Authenticator>> AuthenticatorFromFlags() {
  return identity::AuthenticatorForService(IdentityOptionsFromFlags());
}

absl::StatusOr<std::unique_ptr<identity::Authenticator>> AuthenticatorFromFlags(
    std::function<absl::StatusOr<trainmesh::v1::Jwks>()> own_jwks,
    std::function<absl::StatusOr<trainmesh::v1::Principal>(absl::string_view)> api_keys) {
  return identity::AuthenticatorForAuthService(IdentityOptionsFromFlags(), std::move(own_jwks),
                                               std::move(api_keys));
}

std::string TokenIssuer() { return absl::GetFlag(FLAGS_token_issuer); }
std::string TokenAudience() { return absl::GetFlag(FLAGS_token_audience); }
std::string ServiceCredential() { return absl::GetFlag(FLAGS_service_api_key); }

}  // namespace trainmesh::service
