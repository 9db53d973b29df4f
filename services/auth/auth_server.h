// The gRPC adapter of the auth service.
#pragma once

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

#define TM_AUTH_RPC(Method, Request, Response)                                              \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* context,                    \
                                   const trainmesh::v1::Request* request,                  \
                                   trainmesh::v1::Response* response) override;
  TM_AUTH_RPC(CreateUser, CreateUserRequest, User)
  TM_AUTH_RPC(ListUsers, ListUsersRequest, ListUsersResponse)
  TM_AUTH_RPC(GetUser, GetUserRequest, User)
  TM_AUTH_RPC(Login, LoginRequest, LoginResponse)
  TM_AUTH_RPC(GetJwks, GetJwksRequest, Jwks)
  TM_AUTH_RPC(RotateSigningKey, RotateSigningKeyRequest, RotateSigningKeyResponse)
  TM_AUTH_RPC(CreateApiKey, CreateApiKeyRequest, CreateApiKeyResponse)
  TM_AUTH_RPC(ListApiKeys, ListApiKeysRequest, ListApiKeysResponse)
  TM_AUTH_RPC(RevokeApiKey, RevokeApiKeyRequest, ApiKey)
  TM_AUTH_RPC(Authenticate, AuthenticateRequest, Principal)
  TM_AUTH_RPC(MintJobToken, MintJobTokenRequest, JobToken)
  TM_AUTH_RPC(RenewJobToken, RenewJobTokenRequest, JobToken)
  TM_AUTH_RPC(SignUrl, SignUrlRequest, SignedUrl)
  TM_AUTH_RPC(WhoAmI, WhoAmIRequest, Principal)
#undef TM_AUTH_RPC

 private:
  AuthService* service_;
  server::Executor* executor_;
  const identity::Authenticator* auth_;
  const AuthServerOptions options_;
};

}  // namespace trainmesh::auth
