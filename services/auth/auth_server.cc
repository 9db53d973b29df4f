#include "services/auth/auth_server.h"

#include "libs/server/handler.h"

namespace trainmesh::auth {

using trainmesh::v1::Principal;

// Each RPC: the shared handler path (credential, scopes, rate limit, executor,
// logging), then one call into AuthService.
#define TM_AUTH_HANDLER(Method, Request, Response, call)                                    \
  grpc::ServerUnaryReactor* AuthServer::Method(grpc::CallbackServerContext* context,        \
                                               const trainmesh::v1::Request* request,      \
                                               trainmesh::v1::Response* response) {        \
    static const auto& method = identity::MethodOf("trainmesh.v1.AuthService", #Method);    \
    return server::HandleUnary(context, *executor_, *auth_, method, response,              \
                               [this, request](const Principal& caller) {                   \
                                 (void)caller;                                              \
                                 (void)request;                                             \
                                 return call;                                               \
                               });                                                          \
  }

TM_AUTH_HANDLER(CreateUser, CreateUserRequest, User, service_->CreateUser(*request))
TM_AUTH_HANDLER(ListUsers, ListUsersRequest, ListUsersResponse, service_->ListUsers(*request))
TM_AUTH_HANDLER(Login, LoginRequest, LoginResponse, service_->Login(*request))
TM_AUTH_HANDLER(GetJwks, GetJwksRequest, Jwks, service_->GetJwks())
TM_AUTH_HANDLER(RotateSigningKey, RotateSigningKeyRequest, RotateSigningKeyResponse,
                service_->RotateSigningKey())
TM_AUTH_HANDLER(CreateApiKey, CreateApiKeyRequest, CreateApiKeyResponse,
                service_->CreateApiKey(caller, *request))
TM_AUTH_HANDLER(ListApiKeys, ListApiKeysRequest, ListApiKeysResponse,
                service_->ListApiKeys(caller, *request))
TM_AUTH_HANDLER(RevokeApiKey, RevokeApiKeyRequest, ApiKey,
                service_->RevokeApiKey(caller, *request))
TM_AUTH_HANDLER(Authenticate, AuthenticateRequest, Principal, service_->Authenticate(*request))
TM_AUTH_HANDLER(MintJobToken, MintJobTokenRequest, JobToken, service_->MintJobToken(*request))
TM_AUTH_HANDLER(RenewJobToken, RenewJobTokenRequest, JobToken, service_->RenewJobToken(*request))
TM_AUTH_HANDLER(WhoAmI, WhoAmIRequest, Principal, absl::StatusOr<Principal>(caller))

#undef TM_AUTH_HANDLER

}  // namespace trainmesh::auth
