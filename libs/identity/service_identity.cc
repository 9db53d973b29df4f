#include "libs/identity/service_identity.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "libs/identity/api_keys.h"
#include "libs/log/log.h"
#include "libs/rpc/call.h"
#include "libs/status/field_violations.h"
#include "libs/status/grpc_status.h"
#include "trainmesh/v1/auth.grpc.pb.h"
#include "libs/tls/tls.h"

namespace trainmesh::identity {

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

absl::StatusOr<std::unique_ptr<Authenticator>> AuthenticatorForService(
    const ServiceIdentityOptions& o) {
  auto channel = tls::Channel(o.auth_endpoint);
  std::shared_ptr<trainmesh::v1::AuthService::Stub> stub =
      trainmesh::v1::AuthService::NewStub(channel);
  const std::string credential = o.service_api_key;
  if (credential.empty()) {
    TM_LOG(Warning, "no --service_api_key: API keys of callers cannot be resolved");
  }
  auto jwks = [stub]() {
    return rpc::Call("auth service", *stub, &trainmesh::v1::AuthService::Stub::GetJwks,
                     trainmesh::v1::GetJwksRequest(), "", absl::Seconds(5));
  };
  auto api_keys = [stub, credential](
                      absl::string_view key) -> absl::StatusOr<trainmesh::v1::Principal> {
    if (credential.empty()) {
      return absl::UnavailableError("this service has no --service_api_key to resolve API keys");
    }
    grpc::ClientContext ctx;
    rpc::Prepare(&ctx, credential, absl::Seconds(5));
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

absl::StatusOr<std::unique_ptr<Authenticator>> AuthenticatorForAuthService(
    const ServiceIdentityOptions& options,
    std::function<absl::StatusOr<trainmesh::v1::Jwks>()> own_jwks,
    std::function<absl::StatusOr<trainmesh::v1::Principal>(absl::string_view)> api_keys) {
  return Build(options, std::move(own_jwks), std::move(api_keys));
}

}  // namespace trainmesh::identity
