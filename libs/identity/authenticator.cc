#include "libs/identity/authenticator.h"

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "libs/identity/api_keys.h"
#include "libs/identity/jwt.h"
#include "libs/transcoding/transcoding.h"
#include "protos/registry.h"
#include "trainmesh/v1/options.pb.h"

namespace trainmesh::identity {

using trainmesh::v1::Principal;

absl::StatusOr<const google::protobuf::MethodDescriptor*> SignableMethod(absl::string_view path) {
  static const transcoding::Router* const router = [] {
    absl::StatusOr<transcoding::Router> r = transcoding::Router::FromServices(proto::Services());
    if (!r.ok()) std::abort();  // the compiled-in protos are the gateway's too
    return new transcoding::Router(*std::move(r));
  }();
  const absl::string_view bare = path.substr(0, path.find('?'));
  absl::StatusOr<transcoding::Router::Match> match = router->Find("GET", bare);
  const google::protobuf::MethodDescriptor* method = match.ok() ? match->route->method : nullptr;
  bool reads = false;
  if (method != nullptr) {
    for (const std::string& scope : method->options().GetExtension(trainmesh::v1::auth).scopes()) {
      reads = reads || scope == "jobs:read";
    }
  }
  if (method == nullptr || !method->server_streaming() || !reads) {
    return absl::InvalidArgumentError(
        "only the GET path of a stream or download can be signed (a job's :watch, "
        "jobs:watch, metrics:stream, logs:stream, artifact)");
  }
  return method;
}

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
  auto url = metadata.find(kSignedUrlMetadata);
  absl::string_view signed_url;
  if (url != metadata.end()) signed_url = absl::string_view(url->second.data(), url->second.size());
  return AuthorizeCredential(header, method, signed_url);
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
    absl::string_view header, const google::protobuf::MethodDescriptor& method,
    absl::string_view signed_url) const {
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
  if (principal.kind() == Principal::URL || !signed_url.empty()) {
    // A signed URL opens its own path only; a URL carries nothing else.
    if (signed_url.empty()) {
      return absl::UnauthenticatedError(
          "a signed URL's token works only as the ?access_token= of the URL it was signed for");
    }
    if (principal.kind() != Principal::URL) {
      return absl::UnauthenticatedError(
          "?access_token= takes only a signed URL's token (POST /v1/auth:signUrl); send "
          "tokens and API keys in the Authorization header");
    }
    absl::StatusOr<const google::protobuf::MethodDescriptor*> opens = SignableMethod(signed_url);
    if (principal.url() != signed_url || !opens.ok() || *opens != &method) {
      return absl::UnauthenticatedError("this signed URL was signed for another path");
    }
  }
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
