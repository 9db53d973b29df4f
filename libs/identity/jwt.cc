#include "libs/identity/jwt.h"

#include <jwt.h>

#include <cerrno>
#include <cstdlib>
#include <memory>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

ABSL_FLAG(std::string, jwt_secret, "",
          "HS256 secret (at least 32 bytes) that user tokens are signed with.");
ABSL_FLAG(std::string, jwt_issuer, "trainmesh", "Expected `iss` of tokens.");
ABSL_FLAG(std::string, jwt_audience, "trainmesh", "Expected `aud` of tokens.");
ABSL_FLAG(absl::Duration, jwt_clock_skew, absl::Seconds(60),
          "Clock skew tolerated when checking exp and nbf.");

namespace trainmesh::identity {
namespace {

struct JwtDeleter {
  void operator()(jwt_t* jwt) const { jwt_free(jwt); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtDeleter>;

constexpr size_t kMinSecretBytes = 32;

// Reads a numeric claim; false when absent.
bool IntClaim(jwt_t* jwt, const char* name, long* out) {
  errno = 0;
  long v = jwt_get_grant_int(jwt, name);
  if (errno != 0) return false;
  *out = v;
  return true;
}

bool AudienceMatches(jwt_t* jwt, const std::string& audience) {
  const char* single = jwt_get_grant(jwt, "aud");
  if (single != nullptr) return audience == single;
  // An array of audiences: ["a","b"].
  char* json = jwt_get_grants_json(jwt, "aud");
  if (json == nullptr) return false;
  std::string list(json);
  free(json);
  return list.find(absl::StrCat("\"", audience, "\"")) != std::string::npos;
}

}  // namespace

JwtConfig JwtConfigFromFlags() {
  JwtConfig config;
  config.hs256_secret = absl::GetFlag(FLAGS_jwt_secret);
  config.issuer = absl::GetFlag(FLAGS_jwt_issuer);
  config.audience = absl::GetFlag(FLAGS_jwt_audience);
  config.clock_skew = absl::GetFlag(FLAGS_jwt_clock_skew);
  return config;
}

absl::Status ValidateJwtConfig(const JwtConfig& config) {
  if (config.hs256_secret.size() < kMinSecretBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("jwt secret must be at least ", kMinSecretBytes, " bytes (set --jwt_secret "
                     "or TRAINMESH_JWT_SECRET)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> MintToken(const JwtConfig& config, absl::string_view subject,
                                      const std::vector<std::string>& scopes, absl::Duration ttl,
                                      absl::Time now) {
  if (absl::Status s = ValidateJwtConfig(config); !s.ok()) return s;
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) return absl::InternalError("jwt_new failed");
  JwtPtr jwt(raw);
  const long iat = static_cast<long>(absl::ToUnixSeconds(now));
  const long exp = static_cast<long>(absl::ToUnixSeconds(now + ttl));
  const std::string sub(subject);
  const std::string scope = absl::StrJoin(scopes, " ");
  if (jwt_add_grant(jwt.get(), "sub", sub.c_str()) != 0 ||
      jwt_add_grant(jwt.get(), "iss", config.issuer.c_str()) != 0 ||
      jwt_add_grant(jwt.get(), "aud", config.audience.c_str()) != 0 ||
      jwt_add_grant(jwt.get(), "scope", scope.c_str()) != 0 ||
      jwt_add_grant_int(jwt.get(), "iat", iat) != 0 ||
      jwt_add_grant_int(jwt.get(), "nbf", iat) != 0 ||
      jwt_add_grant_int(jwt.get(), "exp", exp) != 0) {
    return absl::InternalError("cannot build token claims");
  }
  if (jwt_set_alg(jwt.get(), JWT_ALG_HS256,
                  reinterpret_cast<const unsigned char*>(config.hs256_secret.data()),
                  static_cast<int>(config.hs256_secret.size())) != 0) {
    return absl::InternalError("cannot set token algorithm");
  }
  char* encoded = jwt_encode_str(jwt.get());
  if (encoded == nullptr) return absl::InternalError("cannot sign token");
  std::string token(encoded);
  free(encoded);
  return token;
}

absl::StatusOr<trainmesh::v1::Principal> VerifyToken(const JwtConfig& config,
                                                     absl::string_view token, absl::Time now) {
  if (absl::Status s = ValidateJwtConfig(config); !s.ok()) {
    return absl::UnauthenticatedError("token verification is not configured");
  }
  const std::string text(token);
  jwt_t* raw = nullptr;
  if (jwt_decode(&raw, text.c_str(),
                 reinterpret_cast<const unsigned char*>(config.hs256_secret.data()),
                 static_cast<int>(config.hs256_secret.size())) != 0) {
    return absl::UnauthenticatedError("invalid token: malformed or bad signature");
  }
  JwtPtr jwt(raw);
  // libjwt does not enforce the algorithm: pin it.
  if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256) {
    return absl::UnauthenticatedError(
        absl::StrCat("invalid token: algorithm ", jwt_alg_str(jwt_get_alg(jwt.get())),
                     " is not accepted"));
  }
  const char* iss = jwt_get_grant(jwt.get(), "iss");
  if (iss == nullptr || config.issuer != iss) {
    return absl::UnauthenticatedError("invalid token: wrong issuer");
  }
  if (!AudienceMatches(jwt.get(), config.audience)) {
    return absl::UnauthenticatedError("invalid token: wrong audience");
  }
  long exp = 0;
  if (!IntClaim(jwt.get(), "exp", &exp)) {
    return absl::UnauthenticatedError("invalid token: no expiry");
  }
  if (absl::FromUnixSeconds(exp) + config.clock_skew < now) {
    return absl::UnauthenticatedError("token expired");
  }
  long nbf = 0;
  if (IntClaim(jwt.get(), "nbf", &nbf) && absl::FromUnixSeconds(nbf) - config.clock_skew > now) {
    return absl::UnauthenticatedError("token not valid yet");
  }
  const char* sub = jwt_get_grant(jwt.get(), "sub");
  if (sub == nullptr || *sub == '\0') {
    return absl::UnauthenticatedError("invalid token: no subject");
  }
  trainmesh::v1::Principal principal;
  principal.set_subject(sub);
  principal.set_kind(trainmesh::v1::Principal::USER);
  principal.set_issuer(iss);
  principal.mutable_expire_time()->set_seconds(exp);
  if (const char* scope = jwt_get_grant(jwt.get(), "scope"); scope != nullptr) {
    for (absl::string_view s : absl::StrSplit(scope, ' ', absl::SkipEmpty())) {
      principal.add_scopes(std::string(s));
    }
  }
  return principal;
}

}  // namespace trainmesh::identity
