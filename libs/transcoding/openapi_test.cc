// The OpenAPI document for the real routes: it parses, every route is in it
// with its path parameters, and every schema reference resolves.
#include "libs/transcoding/openapi.h"

#include <functional>
#include <regex>

#include "absl/strings/ascii.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "protos/registry.h"

namespace trainmesh::transcoding {
namespace {

using nlohmann::json;

class OpenApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto router = Router::FromServices(proto::Services());
    ASSERT_TRUE(router.ok()) << router.status();
    router_ = *std::move(router);
    doc_ = json::parse(OpenApi(router_));
  }
  Router router_;
  json doc_;
};

TEST_F(OpenApiTest, EveryRouteIsAnOperationWithItsPathParameters) {
  EXPECT_EQ(doc_["openapi"], "3.0.3");
  ASSERT_FALSE(router_.routes().empty());
  std::set<std::string> operation_ids;
  for (const Route& route : router_.routes()) {
    // {name=jobs/*} is written {name}.
    const std::string path = std::regex_replace(route.path.text(), std::regex("\\{([^=}]+)=[^}]*\\}"), "{$1}");
    const std::string verb = absl::AsciiStrToLower(route.http_method);
    ASSERT_TRUE(doc_["paths"].contains(path)) << path;
    ASSERT_TRUE(doc_["paths"][path].contains(verb)) << route.http_method << " " << path;
    const json& operation = doc_["paths"][path][verb];
    EXPECT_TRUE(operation_ids.insert(operation["operationId"].get<std::string>()).second) << operation["operationId"];
    EXPECT_TRUE(operation["responses"].contains("200"));
    EXPECT_EQ(operation["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
              "#/components/schemas/google.rpc.Status");
    for (const std::string& variable : route.path.Variables()) {
      bool declared = false;
      for (const json& p : operation.value("parameters", json::array())) {
        declared = declared || (p["in"] == "path" && p["name"] == variable && p["required"] == true);
      }
      EXPECT_TRUE(declared) << variable << " of " << path;
    }
    EXPECT_EQ(operation.contains("requestBody"), !route.body.empty()) << path;
  }
}

TEST_F(OpenApiTest, SchemasFollowTheProto3JsonMappingAndEveryReferenceResolves) {
  const json& schemas = doc_["components"]["schemas"];
  const json& job = schemas["trainmesh.v1.Job"];
  EXPECT_EQ(job["type"], "object");
  EXPECT_EQ(job["properties"]["datasetUrl"]["type"], "string");      // lowerCamel names
  EXPECT_EQ(job["properties"]["createTime"]["format"], "date-time");  // Timestamp
  EXPECT_EQ(job["properties"]["state"]["type"], "string");            // enums by name
  EXPECT_THAT(job["properties"]["state"]["enum"].get<std::vector<std::string>>(), ::testing::Contains("RUNNING"));
  EXPECT_EQ(job["properties"]["labels"]["additionalProperties"]["type"], "string");  // a map
  // Required fields from google.api.field_behavior.
  EXPECT_THAT(schemas["trainmesh.v1.LoginRequest"]["required"].get<std::vector<std::string>>(),
              ::testing::ElementsAre("name", "password"));
  EXPECT_THAT(job["required"].get<std::vector<std::string>>(), ::testing::Contains("model"));
  EXPECT_EQ(job["properties"]["createTime"]["readOnly"], true);

  // Query parameters of GET /v1/jobs, by their field paths.
  std::set<std::string> query;
  for (const json& p : doc_["paths"]["/v1/jobs"]["get"]["parameters"]) query.insert(p["name"].get<std::string>());
  EXPECT_THAT(query, ::testing::IsSupersetOf({"page_size", "page_token"}));
  // The watch stream documents its formats and resume header.
  const json& watch = doc_["paths"]["/v1/jobs/{id}:watch"]["get"];
  EXPECT_TRUE(watch["responses"]["200"]["content"].contains("text/event-stream"));
  EXPECT_EQ(watch["parameters"].back()["name"], "Last-Event-ID");
  EXPECT_EQ(doc_["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");

  size_t refs = 0;
  std::function<void(const json&)> visit = [&](const json& node) {
    if (node.is_object()) {
      if (node.contains("$ref")) {
        const std::string ref = node["$ref"];
        ASSERT_EQ(ref.rfind("#/components/schemas/", 0), 0u) << ref;
        EXPECT_TRUE(schemas.contains(ref.substr(21))) << ref;
        ++refs;
      }
      for (const auto& [key, value] : node.items()) visit(value);
    } else if (node.is_array()) {
      for (const json& item : node) visit(item);
    }
  };
  visit(doc_);
  EXPECT_GT(refs, 20u);
}

}  // namespace
}  // namespace trainmesh::transcoding
