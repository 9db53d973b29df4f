#include "libs/identity/authenticator.h"

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "google/protobuf/descriptor.pb.h"
#include "protos/registry.h"
#include "trainmesh/v1/options.pb.h"

namespace trainmesh::identity {

const google::protobuf::MethodDescriptor& MethodOf(const std::string& service,
                                                   const std::string& method) {
  const auto* m = proto::FindMethod(service, method);
  if (m == nullptr) std::abort();
  return *m;
}

absl::StatusOr<trainmesh::v1::Principal> Authenticator::Authorize(
    const grpc::ServerContextBase& context,
    const google::protobuf::MethodDescriptor& method) const {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  absl::string_view header;
  if (it != metadata.end()) header = absl::string_view(it->second.data(), it->second.size());
  return AuthorizeCredential(header, method);
}

absl::StatusOr<trainmesh::v1::Principal> Authenticator::AuthorizeCredential(
    absl::string_view header, const google::protobuf::MethodDescriptor& method) const {
  const trainmesh::v1::MethodAuth& rule = method.options().GetExtension(trainmesh::v1::auth);
  if (header.empty()) {
    if (rule.public_()) return trainmesh::v1::Principal();
    return absl::UnauthenticatedError(
        "missing credential: send `authorization: Bearer <token>`");
  }
  absl::string_view token = header;
  if (!absl::ConsumePrefix(&token, "Bearer ") && !absl::ConsumePrefix(&token, "bearer ")) {
    return absl::UnauthenticatedError("authorization header must be `Bearer <token>`");
  }
  token = absl::StripAsciiWhitespace(token);
  absl::StatusOr<trainmesh::v1::Principal> principal = Verify(token);
  if (!principal.ok()) return principal.status();
  if (rule.public_() || rule.scopes().empty()) return principal;
  for (const std::string& needed : rule.scopes()) {
    for (const std::string& held : principal->scopes()) {
      if (held == needed) return principal;
    }
  }
  return absl::PermissionDeniedError(
      absl::StrCat(method.full_name(), " needs scope ", absl::StrJoin(rule.scopes(), " or ")));
}

absl::StatusOr<trainmesh::v1::Principal> Authenticator::Verify(absl::string_view token) const {
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    auto it = verified_.find(token);
    if (it != verified_.end()) {
      // Same expiry rule as VerifyToken, including the skew.
      if (absl::FromUnixSeconds(it->second.expire_time().seconds()) + config_.clock_skew >= now) {
        return it->second;
      }
      verified_.erase(it);
    }
  }
  absl::StatusOr<trainmesh::v1::Principal> principal = VerifyToken(config_, token, now);
  if (principal.ok()) {
    absl::MutexLock lock(&mu_);
    if (verified_.size() >= kCacheEntries) verified_.clear();
    verified_.emplace(std::string(token), *principal);
  }
  return principal;
}

}  // namespace trainmesh::identity
