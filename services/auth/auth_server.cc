#include "services/auth/auth_server.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "libs/server/handler.h"

namespace trainmesh::auth {

using trainmesh::v1::Principal;

grpc::ServerUnaryReactor* AuthServer::Login(grpc::CallbackServerContext* context,
                                            const trainmesh::v1::LoginRequest* request,
                                            trainmesh::v1::LoginResponse* response) {
  static const auto& method = identity::MethodOf("trainmesh.v1.AuthService", "Login");
  const std::string client = ClientAddress(*context, options_.trusted_proxies);
  server::Executor& executor =
      options_.login_executor != nullptr ? *options_.login_executor : *executor_;
  return server::HandleUnary(
      context, executor, *auth_, method, response,
      [this, request, client](const Principal&) { return service_->Login(*request, client); });
}

std::string ClientAddress(const grpc::ServerContextBase& context,
                          const std::vector<std::string>& trusted_proxies) {
  // "ipv4:10.0.0.1:5000", "ipv6:[::1]:5000", "unix:/path"
  const std::string peer_text = context.peer();  // by value: keep it while viewed
  absl::string_view peer = peer_text;
  std::string ip;
  if (absl::ConsumePrefix(&peer, "ipv4:")) {
    ip = std::string(peer.substr(0, peer.rfind(':')));
  } else if (absl::ConsumePrefix(&peer, "ipv6:")) {
    absl::ConsumePrefix(&peer, "[");
    ip = std::string(peer.substr(0, peer.find(']')));
  } else {
    ip = std::string(peer);
  }
  if (std::find(trusted_proxies.begin(), trusted_proxies.end(), ip) == trusted_proxies.end())
    return ip;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("x-forwarded-for");
  if (it == metadata.end()) return ip;
  absl::string_view forwarded(it->second.data(), it->second.size());
  const size_t comma = forwarded.rfind(',');
  if (comma != absl::string_view::npos) forwarded.remove_prefix(comma + 1);
  forwarded = absl::StripAsciiWhitespace(forwarded);
  return forwarded.empty() || forwarded.size() > 64 ? ip : std::string(forwarded);
}

}  // namespace trainmesh::auth
