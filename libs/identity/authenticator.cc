#include "libs/identity/authenticator.h"

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "libs/identity/api_keys.h"
#include "libs/identity/jwt.h"
#include "protos/registry.h"
#include "trainmesh/v1/options.pb.h"

namespace trainmesh::identity {

using trainmesh::v1::Principal;

const google::protobuf::MethodDescriptor& MethodOf(const std::string& service,
                                                   const std::string& method) {
  const auto* m = proto::FindMethod(service, method);
  if (m == nullptr) std::abort();
  return *m;
}

Authenticator::Authenticator(AuthenticatorOptions options) : options_(std::move(options)) {}

absl::StatusOr<Principal> Authenticator::Authorize(
    const grpc::ServerContextBase& context,
    const google::protobuf::MethodDescriptor& method) const {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  absl::string_view header;
  if (it != metadata.end()) header = absl::string_view(it->second.data(), it->second.size());
  return AuthorizeCredential(header, method);
}

absl::StatusOr<Principal> Authenticator::AuthorizeWithBodyToken(
    const grpc::ServerContextBase& context, const google::protobuf::MethodDescriptor& method,
    const std::string& body_token) const {
  if (body_token.empty()) return Authorize(context, method);
  return AuthorizeCredential(absl::StrCat("Bearer ", body_token), method);
}

absl::StatusOr<Principal> Authenticator::Authenticate(absl::string_view credential) const {
  if (LooksLikeApiKey(credential)) {
    if (!options_.api_keys) return absl::UnauthenticatedError("API keys are not accepted here");
    if (ApiKeyPrefix(credential).empty()) return absl::UnauthenticatedError("malformed API key");
    return options_.api_keys(credential);
  }
  if (LooksLikeJwt(credential)) return options_.tokens->Verify(credential);
  return absl::UnauthenticatedError("unrecognised credential: expected a JWT or an API key");
}

absl::StatusOr<Principal> Authenticator::AuthorizeCredential(
    absl::string_view header, const google::protobuf::MethodDescriptor& method) const {
  const trainmesh::v1::MethodAuth& rule = method.options().GetExtension(trainmesh::v1::auth);
  Principal principal;
  if (!options_.insecure_fixed_subject.empty()) {
    principal.set_subject(options_.insecure_fixed_subject);
    principal.set_kind(Principal::USER);
    for (const char* s : {"jobs:read", "jobs:write", "agent", "admin", "internal"}) {
      principal.add_scopes(s);
    }
    return principal;
  }
  if (header.empty()) {
    if (rule.public_()) return principal;
    return absl::UnauthenticatedError(
        "missing credential: send `authorization: Bearer <token or API key>`");
  }
  absl::string_view credential = header;
  if (!absl::ConsumePrefix(&credential, "Bearer ") && !absl::ConsumePrefix(&credential, "bearer ")) {
    return absl::UnauthenticatedError("authorization header must be `Bearer <credential>`");
  }
  credential = absl::StripAsciiWhitespace(credential);
  absl::StatusOr<Principal> resolved = Authenticate(credential);
  if (!resolved.ok()) return resolved.status();
  principal = *std::move(resolved);
  if (!rule.public_() && rule.scopes_size() > 0) {
    bool allowed = false;
    for (const std::string& needed : rule.scopes()) {
      for (const std::string& held : principal.scopes()) allowed = allowed || held == needed;
    }
    if (!allowed) {
      return absl::PermissionDeniedError(absl::StrCat(
          method.full_name(), " needs scope ", absl::StrJoin(rule.scopes(), " or ")));
    }
  }
  if (options_.limiter != nullptr && !rule.rate_limit().empty()) {
    absl::Status limited = options_.limiter->Take(rule.rate_limit(), principal.subject());
    if (!limited.ok()) return limited;
  }
  return principal;
}

absl::Status CheckJobToken(const Principal& caller, absl::string_view job_id, int attempt,
                           bool allow_other_kinds) {
  if (caller.kind() != Principal::JOB) {
    if (allow_other_kinds) return absl::OkStatus();
    return absl::PermissionDeniedError("a job token is required");
  }
  if (caller.job_id() != job_id) {
    return absl::PermissionDeniedError(
        absl::StrCat("the job token is for job ", caller.job_id(), ", not ", job_id));
  }
  if (caller.attempt() != attempt) {
    return absl::PermissionDeniedError(absl::StrCat("the job token is for attempt ",
                                                    caller.attempt(), "; the job is on attempt ",
                                                    attempt));
  }
  return absl::OkStatus();
}

}  // namespace trainmesh::identity
