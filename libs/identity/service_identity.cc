#include "libs/identity/service_identity.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "libs/identity/api_keys.h"
#include "libs/log/log.h"
#include "libs/status/field_violations.h"
#include "libs/status/grpc_status.h"
#include "trainmesh/v1/auth.grpc.pb.h"
#include "libs/tls/tls.h"

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

namespace trainmesh::identity {

ServiceIdentityOptions ServiceIdentityOptionsFromFlags() {
  ServiceIdentityOptions o;
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

namespace {

absl::StatusOr<std::unique_ptr<Authenticator>> Build(
    const ServiceIdentityOptions& o, std::function<absl::StatusOr<trainmesh::v1::Jwks>()> own_jwks,
    std::function<absl::StatusOr<trainmesh::v1::Principal>(absl::string_view)> api_keys) {
  std::vector<IssuerConfig> issuers;
  IssuerConfig own;
  own.issuer = o.token_issuer;
  own.audience = o.token_audience;
  own.jwks = JwksFromFunction(std::move(own_jwks));
  own.scopes_from_token = true;
  own.allow_job_tokens = true;
  issuers.push_back(std::move(own));
  if (!o.trusted_issuers_file.empty()) {
    absl::StatusOr<std::vector<IssuerConfig>> external = TrustedIssuersFromFile(o.trusted_issuers_file);
    if (!external.ok()) return external.status();
    for (auto& issuer : *external) {
      if (issuer.issuer == o.token_issuer) {
        return absl::InvalidArgumentError(
            absl::StrCat(o.trusted_issuers_file, ": issuer ", issuer.issuer, " is the mesh's own"));
      }
      issuers.push_back(std::move(issuer));
    }
  }
  AuthenticatorOptions options;
  options.tokens = std::make_shared<TokenVerifier>(std::move(issuers));
  auto cache = std::make_shared<CachingApiKeyResolver>(std::move(api_keys), o.api_key_cache_ttl);
  options.api_keys = [cache](absl::string_view key) { return cache->Resolve(key); };
  options.limiter = std::make_shared<RateLimiter>(o.rate_limits);
  options.insecure_fixed_subject = o.insecure_no_auth_subject;
  if (!options.insecure_fixed_subject.empty()) {
    TM_LOG(Warning, "AUTHENTICATION IS OFF (--insecure_no_auth_subject): benchmarks only")
        .With("subject", options.insecure_fixed_subject);
  }
  return std::make_unique<Authenticator>(std::move(options));
}

}  // namespace

std::string TokenIssuer() { return absl::GetFlag(FLAGS_token_issuer); }
std::string TokenAudience() { return absl::GetFlag(FLAGS_token_audience); }
std::string ServiceCredential() { return absl::GetFlag(FLAGS_service_api_key); }

absl::StatusOr<std::unique_ptr<Authenticator>> AuthenticatorForService(
    const ServiceIdentityOptions& o) {
  auto channel = tls::Channel(o.auth_endpoint);
  std::shared_ptr<trainmesh::v1::AuthService::Stub> stub =
      trainmesh::v1::AuthService::NewStub(channel);
  const std::string credential = o.service_api_key;
  if (credential.empty()) {
    TM_LOG(Warning, "no --service_api_key: API keys of callers cannot be resolved");
  }
  auto deadline = [] { return absl::ToChronoTime(absl::Now() + absl::Seconds(5)); };
  auto jwks = [stub, deadline]() -> absl::StatusOr<trainmesh::v1::Jwks> {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    trainmesh::v1::Jwks out;
    grpc::Status s = stub->GetJwks(&ctx, {}, &out);
    if (!s.ok()) {
      return absl::UnavailableError(absl::StrCat("auth service: ", s.error_message()));
    }
    return out;
  };
  auto api_keys = [stub, credential, deadline](
                      absl::string_view key) -> absl::StatusOr<trainmesh::v1::Principal> {
    if (credential.empty()) {
      return absl::UnavailableError("this service has no --service_api_key to resolve API keys");
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    ctx.AddMetadata("authorization", "Bearer " + credential);
    trainmesh::v1::AuthenticateRequest request;
    request.set_credential(std::string(key));
    trainmesh::v1::Principal out;
    grpc::Status s = stub->Authenticate(&ctx, request, &out);
    if (s.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      // The caller's key is not valid; the reason is in the field violation.
      absl::Status refused = status::FromGrpcStatus(s);
      auto violations = status::FieldViolationsOf(refused);
      return absl::UnauthenticatedError(violations.empty() ? s.error_message()
                                                           : violations[0].description);
    }
    if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
        s.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
      TM_LOG(Error, "the auth service refused this service's own credential")
          .With("error", s.error_message());
    }
    if (!s.ok()) {
      return absl::UnavailableError(absl::StrCat("auth service: ", s.error_message()));
    }
    return out;
  };
  return Build(o, jwks, api_keys);
}

absl::StatusOr<std::unique_ptr<Authenticator>> AuthenticatorFromFlags() {
  return AuthenticatorForService(ServiceIdentityOptionsFromFlags());
}

absl::StatusOr<std::unique_ptr<Authenticator>> AuthenticatorFromFlags(
    std::function<absl::StatusOr<trainmesh::v1::Jwks>()> own_jwks,
    std::function<absl::StatusOr<trainmesh::v1::Principal>(absl::string_view)> api_keys) {
  return Build(ServiceIdentityOptionsFromFlags(), std::move(own_jwks), std::move(api_keys));
}

}  // namespace trainmesh::identity
