#include "libs/identity/jwt.h"

#include <jwt.h>

#include <cstdlib>
#include <memory>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/json/json.h"

namespace trainmesh::identity {
namespace {

struct JwtDeleter {
  void operator()(jwt_t* jwt) const { jwt_free(jwt); }
};

}  // namespace

absl::StatusOr<std::string> SignToken(const SigningKey& key, absl::string_view issuer,
                                      absl::string_view audience, const Claims& claims,
                                      absl::Duration ttl, absl::Time now) {
  const jwt_alg_t alg = jwt_str_alg(key.alg.c_str());
  if (alg != JWT_ALG_RS256 && alg != JWT_ALG_ES256) {
    return absl::InvalidArgumentError("signing key must be RS256 or ES256");
  }
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) return absl::InternalError("jwt_new failed");
  std::unique_ptr<jwt_t, JwtDeleter> jwt(raw);
  const long iat = static_cast<long>(absl::ToUnixSeconds(now));
  const std::string iss(issuer), aud(audience), scope = absl::StrJoin(claims.scopes, " ");
  int rc = jwt_add_header(jwt.get(), "kid", key.kid.c_str());
  rc |= jwt_add_grant(jwt.get(), "sub", claims.subject.c_str());
  rc |= jwt_add_grant(jwt.get(), "iss", iss.c_str());
  rc |= jwt_add_grant(jwt.get(), "aud", aud.c_str());
  rc |= jwt_add_grant(jwt.get(), "scope", scope.c_str());
  rc |= jwt_add_grant(jwt.get(), kKindClaim, claims.kind.c_str());
  rc |= jwt_add_grant_int(jwt.get(), "iat", iat);
  rc |= jwt_add_grant_int(jwt.get(), "nbf", iat);
  rc |= jwt_add_grant_int(jwt.get(), "exp", static_cast<long>(absl::ToUnixSeconds(now + ttl)));
  if (!claims.name.empty()) rc |= jwt_add_grant(jwt.get(), "name", claims.name.c_str());
  if (!claims.job_id.empty()) {
    rc |= jwt_add_grant(jwt.get(), kJobIdClaim, claims.job_id.c_str());
    rc |= jwt_add_grant_int(jwt.get(), kAttemptClaim, claims.attempt);
    rc |= jwt_add_grant(jwt.get(), kAgentIdClaim, claims.agent_id.c_str());
  }
  if (rc != 0) return absl::InternalError("cannot build token claims");
  if (jwt_set_alg(jwt.get(), alg, reinterpret_cast<const unsigned char*>(key.private_pem.data()),
                  static_cast<int>(key.private_pem.size())) != 0) {
    return absl::InternalError("cannot set the signing key");
  }
  char* encoded = jwt_encode_str(jwt.get());
  if (encoded == nullptr) return absl::InternalError("cannot sign token");
  std::string token(encoded);
  free(encoded);
  return token;
}

bool LooksLikeJwt(absl::string_view credential) {
  std::vector<absl::string_view> parts = absl::StrSplit(credential, '.');
  return parts.size() == 3 && !parts[0].empty() && !parts[1].empty();
}

absl::StatusOr<UnverifiedToken> PeekToken(absl::string_view token) {
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3) return absl::UnauthenticatedError("invalid token: not a JWT");
  std::string header_json, claims_json;
  google::protobuf::Struct header;
  UnverifiedToken out;
  if (!Base64UrlDecode(parts[0], &header_json) || !Base64UrlDecode(parts[1], &claims_json) ||
      !json::ToStruct(header_json, &header).ok() || !json::ToStruct(claims_json, &out.claims).ok()) {
    return absl::UnauthenticatedError("invalid token: malformed header or claims");
  }
  auto text = [&header](const char* name) {
    auto it = header.fields().find(name);
    return it == header.fields().end() ? std::string() : it->second.string_value();
  };
  out.alg = text("alg");
  out.kid = text("kid");
  return out;
}

}  // namespace trainmesh::identity
