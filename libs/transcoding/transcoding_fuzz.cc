// libFuzzer target for HTTP → proto transcoding on the real routes: any
// method, path, query and body is a request message or a clean error, never
// a crash; an accepted request serializes, and its reply-side JSON parses.
// Input: "METHOD\nPATH\nQUERY\nBODY" (missing parts are empty).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/json_util.h"
#include "libs/transcoding/transcoding.h"
#include "protos/registry.h"

namespace {

using namespace trainmesh::transcoding;

const Router& Routes() {
  static const Router* router = new Router(*Router::FromServices(trainmesh::proto::Services()));
  return *router;
}

absl::string_view Next(absl::string_view* rest) {
  const size_t newline = rest->find('\n');
  absl::string_view part = rest->substr(0, newline);
  rest->remove_prefix(newline == absl::string_view::npos ? rest->size() : newline + 1);
  return part;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view rest(reinterpret_cast<const char*>(data), size);
  const absl::string_view method = Next(&rest);
  const absl::string_view path = Next(&rest);
  const absl::string_view query = Next(&rest);
  const absl::string_view body = rest;

  // Templates from arbitrary text parse or fail; matching them never crashes.
  if (auto parsed = PathTemplate::Parse(path); parsed.ok()) {
    (void)parsed->Match({"v1", "jobs", "42"}, "cancel");
    (void)parsed->Variables();
  }
  auto match = Routes().Find(method, path);
  if (!match.ok()) return 0;
  if (match->route == nullptr) std::abort();
  const auto* type = match->route->method->input_type();
  std::unique_ptr<google::protobuf::Message> request(
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(type)->New());
  if (!BuildRequest(*match, query, body, request.get()).ok()) return 0;
  // What was accepted is a well-formed message that round-trips.
  std::string bytes;
  if (!request->SerializeToString(&bytes)) std::abort();
  std::unique_ptr<google::protobuf::Message> again(request->New());
  if (!again->ParseFromString(bytes)) std::abort();
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(*request, &json).ok()) std::abort();
  return 0;
}
