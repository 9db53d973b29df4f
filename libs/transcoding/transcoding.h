// HTTP/JSON ⇄ gRPC transcoding driven by the `google.api.http` options of the
// compiled-in service descriptors, in the manner of Envoy's transcoder: no code
// per method, so a newly annotated RPC is served without touching the
// gateway.
//
//   Router router = *Router::FromServices(proto::Services());
//   auto match = router.Find("GET", "/v1/jobs/42");             // route + {id: 42}
//   BuildRequest(*match, "pageSize=5", body, request.get());      // proto3 JSON rules
//
// Path templates follow google/api/http.proto: literal segments, `*` (one
// segment), `**` (the rest), `{field.path}` (= `{field.path=*}`),
// `{field.path=segments/*}` and a trailing `:verb`.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace trainmesh::transcoding {

class PathTemplate {
 public:
  // INVALID_ARGUMENT for a malformed template.
  static absl::StatusOr<PathTemplate> Parse(absl::string_view text);

  // Variable bindings (field path → value) when `segments` (split on '/',
  // percent-decoded) and `verb` match.
  std::optional<std::vector<std::pair<std::string, std::string>>> Match(
      const std::vector<std::string>& segments, absl::string_view verb) const;

  const std::string& text() const { return text_; }
  // Field paths bound by variables, in order.
  std::vector<std::string> Variables() const;
  // Literal segments and verb count more than wildcards when two routes match.
  int Specificity() const;

 private:
  struct Segment {
    enum Kind { kLiteral, kAny, kRest } kind;
    std::string literal;
  };
  struct Variable {
    std::string field_path;
    size_t first, count;  // segments it covers; count 0 = to the end (`**`)
  };
  std::string text_;
  std::vector<Segment> segments_;
  std::vector<Variable> variables_;
  std::string verb_;
};

struct Route {
  std::string http_method;  // GET, POST, PUT, DELETE, PATCH or a custom kind
  PathTemplate path;
  std::string body;           // "", "*" or a top-level message field
  std::string response_body;  // "" or a top-level field
  const google::protobuf::MethodDescriptor* method = nullptr;
  // "/package.Service/Method", the gRPC path.
  std::string grpc_path;
};

class Router {
 public:
  // A route for every binding (and additional binding) of every method that
  // carries google.api.http. INVALID_ARGUMENT for a template or body that does
  // not fit its method's messages.
  static absl::StatusOr<Router> FromServices(
      const std::vector<const google::protobuf::ServiceDescriptor*>& services);

  struct Match {
    const Route* route = nullptr;
    std::vector<std::pair<std::string, std::string>> bindings;
  };
  // NOT_FOUND when no route has the path; UNIMPLEMENTED (HTTP 405) when some
  // route has the path but not the method.
  absl::StatusOr<Match> Find(absl::string_view http_method, absl::string_view path) const;

  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

// Fills `request` (of the route's input type) from the path bindings, the URL
// query (`a.b=1&tags=x&tags=y`, names as proto or lowerCamel JSON names) and
// the JSON body, by the proto3 JSON mapping (unknown fields rejected). A
// binding wins over the body for the same field. INVALID_ARGUMENT with field
// violations for what does not fit.
absl::Status BuildRequest(const Router::Match& match, absl::string_view query, absl::string_view body,
                          google::protobuf::Message* request);

// The response as proto3 JSON (lowerCamel names, enums as strings), or its
// `response_body` field alone.
absl::StatusOr<std::string> ResponseJson(const Route& route, const google::protobuf::Message& response);

// HTTP status for a gRPC status code (the table Envoy and grpc-gateway use).
int HttpStatus(int grpc_code);

// Percent-decodes `text` ('+' stays '+' in paths; `plus_is_space` for query
// strings). False for a malformed escape.
bool PercentDecode(absl::string_view text, bool plus_is_space, std::string* out);

}  // namespace trainmesh::transcoding
