// The auth service's logic, free of gRPC: users and passwords, signing keys
// and their JWKS, API keys, job tokens.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/identity/jwt.h"
#include "libs/identity/keys.h"
#include "libs/identity/rate_limiter.h"
#include "libs/identity/verifier.h"
#include "libs/pagination/page_token.h"
#include "services/auth/auth_store.h"
#include "services/auth/password.h"
#include "trainmesh/v1/auth.pb.h"

namespace trainmesh::auth {

struct AuthOptions {
  std::string issuer = "trainmesh";
  std::string audience = "trainmesh";
  std::string signing_alg = "RS256";
  absl::Duration access_token_ttl = absl::Hours(1);
  absl::Duration job_token_ttl = absl::Minutes(15);
  absl::Duration max_job_token_ttl = absl::Hours(1);
  // How often a replica re-reads the active key (another may have rotated).
  absl::Duration key_refresh = absl::Seconds(30);
  PasswordParams password;
  std::string page_token_secret;
  // Wrong logins: per user name, and per client address (looser: one
  // address may be a whole office behind NAT).
  identity::FailureThrottle::Options login_name_throttle{.free_failures = 5};
  identity::FailureThrottle::Options login_address_throttle{.free_failures = 30};
};

class AuthService {
 public:
  using Principal = trainmesh::v1::Principal;

  AuthService(AuthStore* store, AuthOptions options);

  // Makes sure a signing key exists. Call once before serving.
  absl::Status Init();

  // INVALID_ARGUMENT (field violations) for a bad name or a short password,
  // ALREADY_EXISTS for a taken name.
  absl::StatusOr<trainmesh::v1::User> CreateUser(const trainmesh::v1::CreateUserRequest& request);
  absl::StatusOr<trainmesh::v1::ListUsersResponse> ListUsers(
      const trainmesh::v1::ListUsersRequest& request);
  // NOT_FOUND for an unknown id (a user of an external identity provider has
  // none here: the mesh defaults apply to them).
  absl::StatusOr<trainmesh::v1::User> GetUser(const trainmesh::v1::GetUserRequest& request);
  // UNAUTHENTICATED with one message for a wrong name or password;
  // RESOURCE_EXHAUSTED (with RetryInfo, before any password hashing) while
  // the name or the client's address `client` ("" when unknown) has failed
  // too often; INVALID_ARGUMENT for a name or password past the length caps.
  absl::StatusOr<trainmesh::v1::LoginResponse> Login(const trainmesh::v1::LoginRequest& request,
                                                     const std::string& client = "");
  absl::StatusOr<trainmesh::v1::Jwks> GetJwks();
  absl::StatusOr<trainmesh::v1::RotateSigningKeyResponse> RotateSigningKey();
  // The caller's own keys. Scopes beyond jobs:read, jobs:write and agent need
  // the admin scope. The secret is in the response only.
  absl::StatusOr<trainmesh::v1::CreateApiKeyResponse> CreateApiKey(
      const Principal& caller, const trainmesh::v1::CreateApiKeyRequest& request);
  absl::StatusOr<trainmesh::v1::ListApiKeysResponse> ListApiKeys(
      const Principal& caller, const trainmesh::v1::ListApiKeysRequest& request);
  absl::StatusOr<trainmesh::v1::ApiKey> RevokeApiKey(
      const Principal& caller, const trainmesh::v1::RevokeApiKeyRequest& request);
  // An API key or a token of a trusted issuer to its principal. A credential
  // that is not valid is INVALID_ARGUMENT (field "credential", with the reason).
  absl::StatusOr<Principal> Authenticate(const trainmesh::v1::AuthenticateRequest& request);
  absl::StatusOr<trainmesh::v1::JobToken> MintJobToken(
      const trainmesh::v1::MintJobTokenRequest& request);
  // A fresh token with the same binding; the old one must still be valid.
  absl::StatusOr<trainmesh::v1::JobToken> RenewJobToken(
      const trainmesh::v1::RenewJobTokenRequest& request);
  // A signed URL for the caller (a user's token or API key, never a job's or
  // another URL's): the path's stream or download, read-only, for minutes.
  absl::StatusOr<trainmesh::v1::SignedUrl> SignUrl(const trainmesh::v1::Principal& caller,
                                                   const trainmesh::v1::SignUrlRequest& request);
  // Who the credential of the call is, as the services see it.
  absl::StatusOr<trainmesh::v1::Principal> WhoAmI(const trainmesh::v1::Principal& caller,
                                                  const trainmesh::v1::WhoAmIRequest&) const {
    return caller;
  }

  // The API key resolver the auth service's own authenticator uses.
  absl::StatusOr<Principal> ResolveApiKey(absl::string_view key);

  // Verifies tokens of the mesh and of trusted external issuers (for
  // Authenticate and RenewJobToken). Set once at start-up.
  void SetVerifier(std::shared_ptr<identity::TokenVerifier> verifier) { verifier_ = std::move(verifier); }

  // How long a retired key is still served: the longest a token lives.
  absl::Duration RetiredKeyLifetime() const;

 private:
  absl::StatusOr<identity::SigningKey> SigningKey();
  absl::StatusOr<trainmesh::v1::JobToken> SignClaims(const identity::Claims& claims,
                                                       absl::Duration ttl);

  AuthStore* store_;
  AuthOptions options_;
  pagination::PageTokenCodec page_tokens_;
  std::shared_ptr<identity::TokenVerifier> verifier_;
  std::string dummy_hash_;  // verified against when a user does not exist
  identity::FailureThrottle name_throttle_;
  identity::FailureThrottle address_throttle_;
  absl::Mutex mu_;
  std::optional<identity::SigningKey> key_ ABSL_GUARDED_BY(mu_);
  absl::Time key_read_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace trainmesh::auth
