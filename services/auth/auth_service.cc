#include "services/auth/auth_service.h"

#include <openssl/crypto.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/time_util.h"
#include "libs/identity/api_keys.h"
#include "libs/identity/authenticator.h"
#include "libs/identity/jwt.h"
#include "libs/log/log.h"
#include "libs/pagination/page.h"
#include "libs/status/field_violations.h"
#include "libs/status/status_macros.h"

namespace trainmesh::auth {
namespace {

using google::protobuf::util::TimeUtil;
using status::FieldViolations;
using trainmesh::v1::Principal;

constexpr size_t kMinPassword = 8;
constexpr size_t kMaxPassword = 1024;
// Scopes any user may put on their own keys; the rest need admin.
constexpr const char* kUserScopes[] = {"jobs:read", "jobs:write", "agent"};
// "pool:shared" is an admin's grant to an agent key: its agents may join the
// shared pool (run other users' jobs) without the key holding admin.
constexpr const char* kAdminScopes[] = {"admin", "internal", "pool:shared"};

bool ValidUserName(absl::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  if (!absl::ascii_islower(name[0]) && !absl::ascii_isdigit(name[0])) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '.' || c == '_' || c == '-';
  });
}

bool HasScope(const Principal& p, absl::string_view scope) {
  return std::find(p.scopes().begin(), p.scopes().end(), scope) != p.scopes().end();
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(t));
}

}  // namespace

AuthService::AuthService(AuthStore* store, AuthOptions options)
    : store_(store),
      options_(std::move(options)),
      page_tokens_(options_.page_token_secret),
      name_throttle_(options_.login_name_throttle),
      address_throttle_(options_.login_address_throttle) {
  // A real hash, so that an unknown user costs as much as a wrong password.
  dummy_hash_ = HashPassword("not-a-password", options_.password).value_or("");
}

absl::Status AuthService::Init() {
  absl::StatusOr<identity::SigningKey> active = store_->ActiveKey();
  if (active.status().code() != absl::StatusCode::kNotFound) return active.status();
  TM_ASSIGN_OR_RETURN(identity::SigningKey fresh, identity::GenerateSigningKey(options_.signing_alg));
  TM_ASSIGN_OR_RETURN(identity::SigningKey winner, store_->EnsureActiveKey(fresh));
  TM_LOG(Info, "signing key ready").With("kid", winner.kid).With("alg", winner.alg);
  return absl::OkStatus();
}

absl::Duration AuthService::RetiredKeyLifetime() const {
  return std::max(options_.access_token_ttl, options_.max_job_token_ttl) + absl::Minutes(2);
}

absl::StatusOr<identity::SigningKey> AuthService::SigningKey() {
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    if (key_.has_value() && now - key_read_ < options_.key_refresh) return *key_;
  }
  TM_ASSIGN_OR_RETURN(identity::SigningKey key, store_->ActiveKey());
  absl::MutexLock lock(&mu_);
  key_ = key;
  key_read_ = now;
  return key;
}

absl::StatusOr<trainmesh::v1::User> AuthService::CreateUser(
    const trainmesh::v1::CreateUserRequest& request) {
  FieldViolations v;
  const trainmesh::v1::User& user = request.user();
  if (!ValidUserName(user.name())) {
    v.Add("user.name",
          "must be 1-63 of a-z 0-9 . _ - starting with a letter or digit");
  }
  if (request.password().size() < kMinPassword || request.password().size() > kMaxPassword) {
    v.Add("password", absl::StrCat("must be ", kMinPassword, " to ", kMaxPassword, " characters"));
  }
  if (user.max_running_jobs() < 0) v.Add("user.max_running_jobs", "must be >= 0");
  if (user.email().size() > 320) v.Add("user.email", "is too long");
  TM_RETURN_IF_ERROR(v.ToStatus("invalid user"));
  TM_ASSIGN_OR_RETURN(std::string hash, HashPassword(request.password(), options_.password));
  TM_ASSIGN_OR_RETURN(trainmesh::v1::User created, store_->CreateUser(user, hash));
  TM_LOG(Info, "user created").With("user", created.name()).With("admin", created.admin());
  return created;
}

absl::StatusOr<trainmesh::v1::User> AuthService::GetUser(const trainmesh::v1::GetUserRequest& request) {
  if (request.id().empty() || request.id().size() > 200) return status::InvalidField("id", "must be a user id");
  return store_->UserById(request.id());
}

absl::StatusOr<trainmesh::v1::ListUsersResponse> AuthService::ListUsers(
    const trainmesh::v1::ListUsersRequest& request) {
  FieldViolations v;
  const int size = pagination::PageSize(request.page_size(), &v);
  TM_RETURN_IF_ERROR(v.ToStatus());
  std::string after;
  if (!request.page_token().empty()) {
    TM_ASSIGN_OR_RETURN(after, page_tokens_.Decode("users", request.page_token()));
  }
  TM_ASSIGN_OR_RETURN(std::vector<trainmesh::v1::User> users, store_->ListUsers(after, pagination::RowsToRead(size)));
  trainmesh::v1::ListUsersResponse response;
  if (pagination::FillPage(users, size, response.mutable_users())) {
    response.set_next_page_token(
        page_tokens_.Encode("users", response.users(response.users_size() - 1).name()));
  }
  return response;
}

absl::StatusOr<trainmesh::v1::LoginResponse> AuthService::Login(
    const trainmesh::v1::LoginRequest& request, const std::string& client) {
  // Caps first: argon2 never runs on a megabyte of "password".
  FieldViolations v;
  if (request.name().size() > 256) v.Add("name", "must be at most 256 bytes");
  if (request.password().size() > kMaxPassword) {
    v.Add("password", absl::StrCat("must be at most ", kMaxPassword, " bytes"));
  }
  TM_RETURN_IF_ERROR(v.ToStatus("invalid login"));
  // Refused guessers cost no hashing either.
  const std::string name_key = absl::AsciiStrToLower(request.name());
  TM_RETURN_IF_ERROR(name_throttle_.Check(name_key, "user name"));
  if (!client.empty()) TM_RETURN_IF_ERROR(address_throttle_.Check(client, "client address"));
  absl::StatusOr<StoredUser> user = store_->UserByName(request.name());
  if (!user.ok() && user.status().code() != absl::StatusCode::kNotFound) return user.status();
  // The same work and the same answer whether the name or the password is wrong.
  const bool match =
      VerifyPassword(request.password(), user.ok() ? user->password_hash : dummy_hash_);
  if (!user.ok() || !match) {
    name_throttle_.Failure(name_key);
    if (!client.empty()) address_throttle_.Failure(client);
    TM_LOG(Info, "login refused").With("user", request.name()).With("client", client);
    return absl::UnauthenticatedError("wrong user name or password");
  }
  // Only the name's count is cleared: one valid account must not reset the
  // count of an address that guesses at others.
  name_throttle_.Success(name_key);
  identity::Claims claims;
  claims.subject = user->user.id();
  claims.name = user->user.name();
  claims.scopes = {"jobs:read", "jobs:write"};
  if (user->user.admin()) claims.scopes.push_back("admin");
  TM_ASSIGN_OR_RETURN(identity::SigningKey key, SigningKey());
  const absl::Time now = absl::Now();
  TM_ASSIGN_OR_RETURN(std::string token,
                      identity::SignToken(key, options_.issuer, options_.audience, claims,
                                          options_.access_token_ttl, now));
  trainmesh::v1::LoginResponse response;
  response.set_access_token(token);
  *response.mutable_expire_time() = ToProto(now + options_.access_token_ttl);
  *response.mutable_user() = user->user;
  return response;
}

absl::StatusOr<trainmesh::v1::Jwks> AuthService::GetJwks() {
  TM_ASSIGN_OR_RETURN(std::vector<identity::SigningKey> keys,
                      store_->PublicKeys(RetiredKeyLifetime()));
  trainmesh::v1::Jwks jwks;
  for (const auto& key : keys) {
    TM_ASSIGN_OR_RETURN(*jwks.add_keys(), identity::PublicJwk(key));
  }
  return jwks;
}

absl::StatusOr<trainmesh::v1::RotateSigningKeyResponse> AuthService::RotateSigningKey() {
  TM_ASSIGN_OR_RETURN(identity::SigningKey fresh, identity::GenerateSigningKey(options_.signing_alg));
  TM_RETURN_IF_ERROR(store_->Rotate(fresh));
  {
    absl::MutexLock lock(&mu_);
    key_ = fresh;
    key_read_ = absl::Now();
  }
  TM_LOG(Info, "signing key rotated").With("kid", fresh.kid);
  trainmesh::v1::RotateSigningKeyResponse response;
  response.set_kid(fresh.kid);
  *response.mutable_create_time() = ToProto(absl::Now());
  return response;
}

absl::StatusOr<trainmesh::v1::CreateApiKeyResponse> AuthService::CreateApiKey(
    const Principal& caller, const trainmesh::v1::CreateApiKeyRequest& request) {
  FieldViolations v;
  trainmesh::v1::ApiKey key = request.api_key();
  if (key.name().size() > 200) v.Add("api_key.name", "must be at most 200 bytes");
  if (key.scopes().empty()) {
    key.add_scopes("jobs:read");
    key.add_scopes("jobs:write");
  }
  for (int i = 0; i < key.scopes_size(); ++i) {
    const std::string& s = key.scopes(i);
    const bool user_scope = std::find(std::begin(kUserScopes), std::end(kUserScopes), s) !=
                            std::end(kUserScopes);
    const bool admin_scope = std::find(std::begin(kAdminScopes), std::end(kAdminScopes), s) !=
                             std::end(kAdminScopes);
    if (!user_scope && !admin_scope) {
      v.Add(absl::StrCat("api_key.scopes[", i, "]"),
            "must be one of jobs:read, jobs:write, agent, admin, internal, pool:shared");
    } else if (admin_scope && !HasScope(caller, "admin")) {
      return absl::PermissionDeniedError(absl::StrCat("only admins may create keys with scope ", s));
    }
  }
  if (key.has_expire_time() &&
      TimeUtil::TimestampToMicroseconds(key.expire_time()) <= absl::ToUnixMicros(absl::Now())) {
    v.Add("api_key.expire_time", "must be in the future");
  }
  // A key for another user acts as that user: an admin's grant (pool:shared)
  // to an operator, never the admin's own authority.
  std::string owner = caller.subject();
  if (!request.for_user().empty()) {
    if (!HasScope(caller, "admin")) {
      return absl::PermissionDeniedError("only admins make keys for other users (for_user)");
    }
    for (int i = 0; i < key.scopes_size(); ++i) {
      if (key.scopes(i) == "admin" || key.scopes(i) == "internal") {
        v.Add(absl::StrCat("api_key.scopes[", i, "]"),
              "a key for another user holds jobs:read, jobs:write, agent and pool:shared at most");
      }
    }
    absl::StatusOr<trainmesh::v1::User> user = store_->UserById(request.for_user());
    if (!user.ok() && absl::IsNotFound(user.status())) {
      absl::StatusOr<StoredUser> named = store_->UserByName(request.for_user());
      if (named.ok()) user = named->user;
    }
    if (user.ok()) {
      owner = user->id();
    } else if (absl::IsNotFound(user.status())) {
      v.Add("for_user", "no such user (a user id or name)");
    } else {
      return user.status();
    }
  }
  TM_RETURN_IF_ERROR(v.ToStatus("invalid API key"));
  // A key never mints a broader or longer-lived key: a leaked narrow key stays
  // narrow and dies when it would have. A signed-in user (password or an
  // identity provider) holds the user's whole authority and may make any key
  // the user may hold; job tokens and services make none.
  if (caller.kind() == Principal::JOB) {
    return absl::PermissionDeniedError("a job token cannot create API keys");
  }
  if (caller.kind() == Principal::API_KEY) {
    for (const std::string& s : key.scopes()) {
      // An admin key holds what pool:shared grants.
      if (!HasScope(caller, s) && !(s == "pool:shared" && HasScope(caller, "admin"))) {
        return absl::PermissionDeniedError(
            absl::StrCat("an API key cannot create a key with scope ", s, ", which it does not hold itself"));
      }
    }
    if (caller.has_expire_time()) {
      if (!key.has_expire_time()) {
        *key.mutable_expire_time() = caller.expire_time();  // dies with its maker
      } else if (TimeUtil::TimestampToMicroseconds(key.expire_time()) >
                 TimeUtil::TimestampToMicroseconds(caller.expire_time())) {
        return absl::PermissionDeniedError(
            "an API key cannot create a key that expires after it does (api_key.expire_time)");
      }
    }
  }
  identity::NewApiKey fresh = identity::GenerateApiKey();
  key.set_owner(owner);
  key.set_prefix(fresh.prefix);
  TM_ASSIGN_OR_RETURN(trainmesh::v1::ApiKey stored, store_->CreateApiKey(key, fresh.hash));
  TM_LOG(Info, "API key created")
      .With("owner", owner)
      .With("by", caller.subject())
      .With("prefix", stored.prefix())
      .With("scopes", absl::StrJoin(stored.scopes(), " "));
  trainmesh::v1::CreateApiKeyResponse response;
  *response.mutable_api_key() = stored;
  response.set_secret(fresh.secret);
  return response;
}

absl::StatusOr<trainmesh::v1::ListApiKeysResponse> AuthService::ListApiKeys(
    const Principal& caller, const trainmesh::v1::ListApiKeysRequest& request) {
  FieldViolations v;
  const int size = pagination::PageSize(request.page_size(), &v);
  TM_RETURN_IF_ERROR(v.ToStatus());
  std::optional<std::pair<int64_t, std::string>> after;
  const std::string query = absl::StrCat("keys:", caller.subject());
  if (!request.page_token().empty()) {
    TM_ASSIGN_OR_RETURN(std::string position, page_tokens_.Decode(query, request.page_token()));
    std::pair<std::string, std::string> parts = absl::StrSplit(position, absl::MaxSplits('|', 1));
    int64_t micros = 0;
    if (!absl::SimpleAtoi(parts.first, &micros)) {
      return status::InvalidField("page_token", "is malformed");
    }
    after = std::make_pair(micros, parts.second);
  }
  TM_ASSIGN_OR_RETURN(std::vector<trainmesh::v1::ApiKey> keys,
                      store_->ListApiKeys(caller.subject(), after, pagination::RowsToRead(size)));
  trainmesh::v1::ListApiKeysResponse response;
  if (pagination::FillPage(keys, size, response.mutable_api_keys())) {
    const auto& last = response.api_keys(response.api_keys_size() - 1);
    response.set_next_page_token(page_tokens_.Encode(
        query, absl::StrCat(TimeUtil::TimestampToMicroseconds(last.create_time()), "|", last.id())));
  }
  return response;
}

absl::StatusOr<trainmesh::v1::ApiKey> AuthService::RevokeApiKey(
    const Principal& caller, const trainmesh::v1::RevokeApiKeyRequest& request) {
  if (request.id().empty()) return status::InvalidField("id", "is required");
  TM_ASSIGN_OR_RETURN(trainmesh::v1::ApiKey key, store_->RevokeApiKey(caller.subject(), request.id()));
  TM_LOG(Info, "API key revoked").With("owner", caller.subject()).With("prefix", key.prefix());
  return key;
}

absl::StatusOr<Principal> AuthService::ResolveApiKey(absl::string_view key) {
  const std::string prefix = identity::ApiKeyPrefix(key);
  if (prefix.empty()) return absl::UnauthenticatedError("malformed API key");
  absl::StatusOr<StoredApiKey> stored = store_->ApiKeyByPrefix(prefix);
  if (stored.status().code() == absl::StatusCode::kNotFound) {
    return absl::UnauthenticatedError("unknown API key");
  }
  if (!stored.ok()) return stored.status();
  const std::string hash = identity::HashApiKey(key);
  if (hash.size() != stored->hash.size() ||
      CRYPTO_memcmp(hash.data(), stored->hash.data(), hash.size()) != 0) {
    return absl::UnauthenticatedError("unknown API key");
  }
  const trainmesh::v1::ApiKey& k = stored->key;
  if (k.has_revoke_time()) return absl::UnauthenticatedError("API key revoked");
  if (k.has_expire_time() &&
      TimeUtil::TimestampToMicroseconds(k.expire_time()) <= absl::ToUnixMicros(absl::Now())) {
    return absl::UnauthenticatedError("API key expired");
  }
  (void)store_->TouchApiKey(k.id());
  Principal p;
  p.set_subject(k.owner());
  p.set_kind(Principal::API_KEY);
  p.set_api_key_id(k.id());
  // The owner's user name when the owner is a user of this mesh.
  absl::StatusOr<trainmesh::v1::User> owner = store_->UserById(k.owner());
  p.set_name(owner.ok() ? owner->name() : k.name());
  p.set_issuer(options_.issuer);
  *p.mutable_scopes() = k.scopes();
  if (k.has_expire_time()) *p.mutable_expire_time() = k.expire_time();
  return p;
}

absl::StatusOr<Principal> AuthService::Authenticate(
    const trainmesh::v1::AuthenticateRequest& request) {
  if (request.credential().empty()) return status::InvalidField("credential", "is required");
  absl::StatusOr<Principal> principal =
      identity::LooksLikeApiKey(request.credential())
          ? ResolveApiKey(request.credential())
          : (verifier_ != nullptr ? verifier_->Verify(request.credential())
                                  : absl::UnauthenticatedError("tokens are not accepted here"));
  // A bad credential in the request is the request's fault (INVALID_ARGUMENT);
  // UNAUTHENTICATED is kept for the calling service's own credential.
  if (principal.status().code() == absl::StatusCode::kUnauthenticated) {
    return status::InvalidField("credential", std::string(principal.status().message()));
  }
  return principal;
}

absl::StatusOr<trainmesh::v1::JobToken> AuthService::SignClaims(const identity::Claims& claims,
                                                                  absl::Duration ttl) {
  TM_ASSIGN_OR_RETURN(identity::SigningKey key, SigningKey());
  const absl::Time now = absl::Now();
  TM_ASSIGN_OR_RETURN(std::string token, identity::SignToken(key, options_.issuer,
                                                             options_.audience, claims, ttl, now));
  trainmesh::v1::JobToken out;
  out.set_token(token);
  *out.mutable_expire_time() = ToProto(now + ttl);
  return out;
}

absl::StatusOr<trainmesh::v1::JobToken> AuthService::MintJobToken(
    const trainmesh::v1::MintJobTokenRequest& request) {
  FieldViolations v;
  if (request.job_id().empty()) v.Add("job_id", "is required");
  if (request.owner().empty()) v.Add("owner", "is required");
  if (request.attempt() < 1) v.Add("attempt", "must be >= 1");
  absl::Duration ttl = options_.job_token_ttl;
  if (request.has_ttl()) {
    ttl = absl::Seconds(request.ttl().seconds());
    if (ttl <= absl::ZeroDuration() || ttl > options_.max_job_token_ttl) {
      v.Add("ttl", absl::StrCat("must be between 1s and ", absl::FormatDuration(options_.max_job_token_ttl)));
    }
  }
  TM_RETURN_IF_ERROR(v.ToStatus());
  return SignClaims(identity::JobClaims(request.owner(), request.job_id(), request.attempt(),
                                        request.agent_id()),
                    ttl);
}

absl::StatusOr<trainmesh::v1::JobToken> AuthService::RenewJobToken(
    const trainmesh::v1::RenewJobTokenRequest& request) {
  if (verifier_ == nullptr) return absl::FailedPreconditionError("no verifier");
  TM_ASSIGN_OR_RETURN(Principal current, verifier_->Verify(request.token()));
  if (current.kind() != Principal::JOB || current.issuer() != options_.issuer) {
    return status::InvalidField("token", "is not a job token of this mesh");
  }
  return SignClaims(identity::JobClaims(current.subject(), current.job_id(), current.attempt(),
                                        current.agent_id()),
                    options_.job_token_ttl);
}

absl::StatusOr<trainmesh::v1::SignedUrl> AuthService::SignUrl(
    const Principal& caller, const trainmesh::v1::SignUrlRequest& request) {
  constexpr absl::Duration kMaxUrlTtl = absl::Minutes(5);
  if (caller.kind() != Principal::USER && caller.kind() != Principal::API_KEY) {
    return absl::PermissionDeniedError("only a user's token or API key can sign URLs");
  }
  FieldViolations v;
  const std::string& path = request.path();
  const bool printable = std::all_of(path.begin(), path.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  const absl::string_view query =
      path.find('?') == std::string::npos ? absl::string_view() : absl::string_view(path).substr(path.find('?'));
  if (path.empty()) {
    v.Add("path", "is required");
  } else if (path.size() > 2048 || !printable || path[0] != '/') {
    v.Add("path", "must be a path of this API (\"/v1/…\"), printable ASCII, at most 2048 bytes");
  } else if (absl::StrContains(query, "access_token=")) {
    v.Add("path", "must not carry an access_token already");
  } else if (absl::Status s = identity::SignableMethod(path).status(); !s.ok()) {
    v.Add("path", std::string(s.message()));
  }
  absl::Duration ttl = kMaxUrlTtl;
  if (request.has_ttl()) {
    ttl = absl::Seconds(request.ttl().seconds());
    if (ttl < absl::Seconds(1) || ttl > kMaxUrlTtl) v.Add("ttl", "must be between 1s and 5m");
  }
  TM_RETURN_IF_ERROR(v.ToStatus());
  if (caller.has_expire_time()) {
    // Never outlives the credential that asked for it.
    ttl = std::min(ttl, absl::FromUnixSeconds(caller.expire_time().seconds()) - absl::Now());
    if (ttl < absl::Seconds(1)) return absl::UnauthenticatedError("the credential expires now");
  }
  identity::Claims claims;
  claims.kind = "url";
  claims.subject = caller.subject();
  claims.name = caller.name();
  claims.scopes = {"jobs:read"};
  claims.url = path;  // the query too: ?name=model.pt opens that file only
  TM_ASSIGN_OR_RETURN(trainmesh::v1::JobToken token, SignClaims(claims, ttl));
  trainmesh::v1::SignedUrl out;
  out.set_url(absl::StrCat(path, query.empty() ? "?" : "&", "access_token=", token.token()));
  out.set_access_token(token.token());
  *out.mutable_expire_time() = token.expire_time();
  return out;
}

}  // namespace trainmesh::auth
