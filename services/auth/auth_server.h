// The gRPC adapter of the auth service.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "libs/identity/authenticator.h"
#include "libs/server/executor.h"
#include "libs/server/handler.h"
#include "services/auth/auth_service.h"
#include "trainmesh/v1/auth.adapter.h"

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
std::string ClientAddress(const grpc::ServerContextBase& context,
                          const std::vector<std::string>& trusted_proxies);

// The auth service's RPCs: the generated adapter binds each to AuthService's
// method of the same name; Login runs apart, on its own executor.
class AuthServer final : public trainmesh::v1::AuthServiceAdapter<AuthService> {
 public:
  AuthServer(AuthService* service, server::Executor* executor,
             const identity::Authenticator* authenticator, AuthServerOptions options = {})
      : AuthServiceAdapter(service, executor, authenticator), options_(std::move(options)) {}

  TM_UNARY_HANDLER(Login, LoginRequest, LoginResponse);

 private:
  const AuthServerOptions options_;
};

}  // namespace trainmesh::auth
