// The gRPC adapter of the auth service.
#pragma once

#include "libs/server/handler.h"

#include <string>
#include <utility>
#include <vector>

#include "libs/identity/authenticator.h"
#include "libs/server/executor.h"
#include "services/auth/auth_service.h"
#include "trainmesh/v1/auth.grpc.pb.h"

namespace trainmesh::auth {

struct AuthServerOptions {
  // Runs Login (argon2: CPU-heavy) apart from the other calls, so a flood of
  // logins cannot starve the API-key lookups the whole mesh waits on. Null:
  // the shared executor.
  server::Executor* login_executor = nullptr;
  // Peers (IP addresses) whose x-forwarded-for names the real client (the
  // gateway); any other peer is the client itself.
  std::vector<std::string> trusted_proxies = {"127.0.0.1", "::1"};
};

// The address a call comes from, as login throttling counts it: the peer's
// IP, or the last x-forwarded-for entry when the peer is a trusted proxy.
std::string ClientAddress(const grpc::ServerContextBase& context, const std::vector<std::string>& trusted_proxies);

class AuthServer final : public trainmesh::v1::AuthService::CallbackService {
 public:
  AuthServer(AuthService* service, server::Executor* executor, const identity::Authenticator* authenticator,
             AuthServerOptions options = {})
      : service_(service), executor_(executor), auth_(authenticator), options_(std::move(options)) {}

  TM_UNARY_HANDLER(CreateUser, CreateUserRequest, User);
  TM_UNARY_HANDLER(ListUsers, ListUsersRequest, ListUsersResponse);
  TM_UNARY_HANDLER(GetUser, GetUserRequest, User);
  TM_UNARY_HANDLER(Login, LoginRequest, LoginResponse);
  TM_UNARY_HANDLER(GetJwks, GetJwksRequest, Jwks);
  TM_UNARY_HANDLER(RotateSigningKey, RotateSigningKeyRequest, RotateSigningKeyResponse);
  TM_UNARY_HANDLER(CreateApiKey, CreateApiKeyRequest, CreateApiKeyResponse);
  TM_UNARY_HANDLER(ListApiKeys, ListApiKeysRequest, ListApiKeysResponse);
  TM_UNARY_HANDLER(RevokeApiKey, RevokeApiKeyRequest, ApiKey);
  TM_UNARY_HANDLER(Authenticate, AuthenticateRequest, Principal);
  TM_UNARY_HANDLER(MintJobToken, MintJobTokenRequest, JobToken);
  TM_UNARY_HANDLER(RenewJobToken, RenewJobTokenRequest, JobToken);
  TM_UNARY_HANDLER(SignUrl, SignUrlRequest, SignedUrl);
  TM_UNARY_HANDLER(WhoAmI, WhoAmIRequest, Principal);

 private:
  AuthService* service_;
  server::Executor* executor_;
  const identity::Authenticator* auth_;
  const AuthServerOptions options_;
};

}  // namespace trainmesh::auth
