#include "libs/transcoding/openapi.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/api/field_behavior.pb.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/rpc/status.pb.h"
#include "nlohmann/json.hpp"

namespace trainmesh::transcoding {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using nlohmann::json;

std::string Ref(const Descriptor* type) { return "#/components/schemas/" + type->full_name(); }

// google.protobuf.Int64Value and friends: written as the wrapped value.
const FieldDescriptor* WrappedValue(const Descriptor* type) {
  const std::string& name = type->full_name();
  if (!absl::StartsWith(name, "google.protobuf.") || !absl::EndsWith(name, "Value") ||
      name == "google.protobuf.Value" || name == "google.protobuf.ListValue") {
    return nullptr;
  }
  return type->FindFieldByName("value");
}

// Messages the proto3 JSON mapping writes as something other than an object.
bool WellKnown(const Descriptor* type, json* schema) {
  const std::string& name = type->full_name();
  if (name == "google.protobuf.Timestamp") {
    *schema = {{"type", "string"}, {"format", "date-time"}};
  } else if (name == "google.protobuf.Duration") {
    *schema = {{"type", "string"}, {"pattern", "^-?[0-9]+(\\.[0-9]+)?s$"}, {"example", "1.5s"}};
  } else if (name == "google.protobuf.Struct") {
    *schema = {{"type", "object"}, {"additionalProperties", true}};
  } else if (name == "google.protobuf.Value") {
    *schema = json::object();  // any JSON value
  } else if (name == "google.protobuf.ListValue") {
    *schema = {{"type", "array"}, {"items", json::object()}};
  } else if (name == "google.protobuf.FieldMask") {
    *schema = {{"type", "string"}};
  } else if (name == "google.protobuf.Empty") {
    *schema = {{"type", "object"}};
  } else if (name == "google.protobuf.Any") {
    *schema = {{"type", "object"},
               {"properties", {{"@type", {{"type", "string"}}}}},
               {"additionalProperties", true}};
  } else {
    return false;
  }
  return true;
}

class Builder {
 public:
  // The schema of one value of `field` (ignoring repetition).
  json Scalar(const FieldDescriptor* field) {
    switch (field->type()) {
      case FieldDescriptor::TYPE_INT32:
      case FieldDescriptor::TYPE_SINT32:
      case FieldDescriptor::TYPE_SFIXED32:
        return {{"type", "integer"}, {"format", "int32"}};
      case FieldDescriptor::TYPE_UINT32:
      case FieldDescriptor::TYPE_FIXED32:
        return {{"type", "integer"}, {"format", "uint32"}, {"minimum", 0}};
      // 64-bit integers are strings in proto3 JSON (numbers are accepted too).
      case FieldDescriptor::TYPE_INT64:
      case FieldDescriptor::TYPE_SINT64:
      case FieldDescriptor::TYPE_SFIXED64:
        return {{"type", "string"}, {"format", "int64"}};
      case FieldDescriptor::TYPE_UINT64:
      case FieldDescriptor::TYPE_FIXED64:
        return {{"type", "string"}, {"format", "uint64"}};
      case FieldDescriptor::TYPE_FLOAT:
        return {{"type", "number"}, {"format", "float"}};
      case FieldDescriptor::TYPE_DOUBLE:
        return {{"type", "number"}, {"format", "double"}};
      case FieldDescriptor::TYPE_BOOL:
        return {{"type", "boolean"}};
      case FieldDescriptor::TYPE_STRING:
        return {{"type", "string"}};
      case FieldDescriptor::TYPE_BYTES:
        return {{"type", "string"}, {"format", "byte"}};
      case FieldDescriptor::TYPE_ENUM: {
        json names = json::array();
        for (int i = 0; i < field->enum_type()->value_count(); ++i) names.push_back(field->enum_type()->value(i)->name());
        return {{"type", "string"}, {"enum", names}};
      }
      case FieldDescriptor::TYPE_MESSAGE:
      case FieldDescriptor::TYPE_GROUP:
        return Message(field->message_type());
    }
    return json::object();
  }

  json Field(const FieldDescriptor* field) {
    if (field->is_map()) {
      return {{"type", "object"}, {"additionalProperties", Scalar(field->message_type()->map_value())}};
    }
    json schema = Scalar(field);
    if (field->is_repeated()) schema = {{"type", "array"}, {"items", schema}};
    return schema;
  }

  // A reference to the message's schema (added to the components once).
  json Message(const Descriptor* type) {
    json known;
    if (WellKnown(type, &known)) return known;
    if (const FieldDescriptor* value = WrappedValue(type); value != nullptr) return Scalar(value);
    if (seen_.insert(type->full_name()).second) {
      json schema = {{"type", "object"}, {"properties", json::object()}};
      json required = json::array();
      for (int i = 0; i < type->field_count(); ++i) {
        const FieldDescriptor* field = type->field(i);
        schema["properties"][field->json_name()] = Field(field);
        for (int b : field->options().GetRepeatedExtension(google::api::field_behavior)) {
          if (b == google::api::REQUIRED) required.push_back(field->json_name());
          if (b == google::api::OUTPUT_ONLY) schema["properties"][field->json_name()]["readOnly"] = true;
        }
      }
      if (!required.empty()) schema["required"] = required;
      schemas_[type->full_name()] = std::move(schema);
    }
    return {{"$ref", Ref(type)}};
  }

  // Query parameters for the scalar leaves of `type` not bound elsewhere
  // (nested messages as dotted names; repeated ones as repeated parameters).
  void QueryParameters(const Descriptor* type, const std::string& prefix, const std::set<std::string>& bound,
                       int depth, json* out) {
    if (depth > 3) return;
    for (int i = 0; i < type->field_count(); ++i) {
      const FieldDescriptor* field = type->field(i);
      const std::string path = prefix + field->name();
      if (bound.count(path) > 0 || field->is_map()) continue;
      if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
        if (field->is_repeated()) continue;
        json known;
        if (const FieldDescriptor* value = WrappedValue(field->message_type()); value != nullptr) {
          out->push_back({{"name", path}, {"in", "query"}, {"schema", Scalar(value)}});
        } else if (WellKnown(field->message_type(), &known)) {
          if (known.value("type", "") == "string") out->push_back({{"name", path}, {"in", "query"}, {"schema", known}});
        } else {
          QueryParameters(field->message_type(), path + ".", bound, depth + 1, out);
        }
        continue;
      }
      json parameter = {{"name", path}, {"in", "query"}, {"schema", Field(field)}};
      if (field->is_repeated()) {
        parameter["style"] = "form";
        parameter["explode"] = true;
      }
      out->push_back(std::move(parameter));
    }
  }

  json& schemas() { return schemas_; }

 private:
  std::set<std::string> seen_;
  json schemas_ = json::object();
};

// The field at a dotted path of `type`, or null.
const FieldDescriptor* FieldAt(const Descriptor* type, const std::string& path) {
  const FieldDescriptor* field = nullptr;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    if (type == nullptr) return nullptr;
    field = type->FindFieldByName(std::string(part));
    if (field == nullptr) return nullptr;
    type = field->message_type();
  }
  return field;
}

// "/v1/jobs/{id}:cancel" from the template ("{name=jobs/*}" → "{name}").
std::string OpenApiPath(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '{') {
      out += text[i];
      continue;
    }
    const size_t close = text.find('}', i);
    const std::string inside = text.substr(i + 1, close - i - 1);
    out += "{" + inside.substr(0, inside.find('=')) + "}";
    i = close;
  }
  return out;
}

}  // namespace

std::string OpenApi(const Router& router, const OpenApiInfo& info) {
  Builder builder;
  json paths = json::object();
  json tags = json::array();
  std::set<std::string> tagged;
  const json error = {{"description", "An error: a google.rpc.Status with its details."},
                      {"content", {{"application/json", {{"schema", {{"$ref", "#/components/schemas/google.rpc.Status"}}}}}}}};
  for (const Route& route : router.routes()) {
    const auto* method = route.method;
    const Descriptor* input = method->input_type();
    const std::string tag = method->service()->name();
    if (tagged.insert(tag).second) tags.push_back({{"name", tag}});
    json operation = {{"operationId", absl::StrCat(tag, "_", method->name())}, {"tags", {tag}}};
    json parameters = json::array();
    std::set<std::string> bound;
    for (const std::string& variable : route.path.Variables()) {
      bound.insert(variable);
      const FieldDescriptor* field = FieldAt(input, variable);
      parameters.push_back({{"name", variable},
                            {"in", "path"},
                            {"required", true},
                            {"schema", field != nullptr ? builder.Field(field) : json{{"type", "string"}}}});
    }
    if (route.body == "*") {
      operation["requestBody"] = {{"required", true},
                                  {"content", {{"application/json", {{"schema", builder.Message(input)}}}}}};
    } else {
      if (!route.body.empty()) {
        bound.insert(route.body);
        const FieldDescriptor* body = input->FindFieldByName(route.body);
        operation["requestBody"] = {{"required", true},
                                    {"content", {{"application/json", {{"schema", builder.Field(body)}}}}}};
      }
      builder.QueryParameters(input, "", bound, 0, &parameters);
    }
    if (method->server_streaming()) {
      parameters.push_back({{"name", "Last-Event-ID"},
                            {"in", "header"},
                            {"description", "Resume a Server-Sent Events stream after this event id (sequence number)."},
                            {"schema", {{"type", "string"}}}});
    }
    if (!parameters.empty()) operation["parameters"] = parameters;

    json result = builder.Message(method->output_type());
    if (!route.response_body.empty()) {
      result = builder.Field(method->output_type()->FindFieldByName(route.response_body));
    }
    json ok = {{"description", "OK"}};
    if (method->server_streaming()) {
      ok["description"] =
          "A stream of messages: Server-Sent Events (Accept: text/event-stream; id = sequence number, "
          "event `end` after the last, `error` with a google.rpc.Status on failure) or newline-delimited "
          "JSON (each line {\"result\": message} or a final {\"error\": status}).";
      ok["content"] = {{"text/event-stream", {{"schema", {{"type", "string"}}}}},
                       {"application/x-ndjson", {{"schema", {{"type", "object"}, {"properties", {{"result", result}}}}}}}};
      if (const auto* data = method->output_type()->FindFieldByName("data");
          data != nullptr && data->type() == FieldDescriptor::TYPE_BYTES) {
        ok["content"]["application/octet-stream"] = {{"schema", {{"type", "string"}, {"format", "binary"}}}};
      }
    } else {
      ok["content"] = {{"application/json", {{"schema", result}}}};
    }
    if (method->client_streaming()) {
      operation["description"] = "Streams requests: served over gRPC only (this route answers 501).";
    }
    operation["responses"] = {{"200", ok}, {"default", error}};
    paths[OpenApiPath(route.path.text())][absl::AsciiStrToLower(route.http_method)] = std::move(operation);
  }
  builder.Message(google::rpc::Status::descriptor());
  json doc = {
      {"openapi", "3.0.3"},
      {"info", {{"title", info.title}, {"version", info.version}, {"description", info.description}}},
      {"paths", paths},
      {"tags", tags},
      {"security", {{{"bearer", json::array()}}}},
      {"components",
       {{"schemas", builder.schemas()},
        {"securitySchemes",
         {{"bearer",
           {{"type", "http"},
            {"scheme", "bearer"},
            {"bearerFormat", "JWT or API key"},
            {"description", "A login token, an API key, or a job token."}}}}}}},
  };
  return doc.dump();
}

}  // namespace trainmesh::transcoding
