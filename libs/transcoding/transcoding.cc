#include "libs/transcoding/transcoding.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/api/annotations.pb.h"
#include "google/protobuf/util/json_util.h"
#include "libs/json/json.h"
#include "libs/status/field_violations.h"

namespace trainmesh::transcoding {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

bool IsVariableName(absl::string_view name) {
  if (name.empty()) return false;
  for (absl::string_view part : absl::StrSplit(name, '.')) {
    if (part.empty() || !(absl::ascii_isalpha(part[0]) || part[0] == '_')) return false;
    for (char c : part) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
    }
  }
  return true;
}

// A field by proto name or lowerCamel JSON name.
const FieldDescriptor* FindField(const Descriptor* d, absl::string_view name) {
  if (const FieldDescriptor* f = d->FindFieldByName(std::string(name))) return f;
  for (int i = 0; i < d->field_count(); ++i) {
    if (d->field(i)->json_name() == name) return d->field(i);
  }
  return nullptr;
}

bool IsWellKnownValue(const Descriptor* d) {
  const std::string& n = d->full_name();
  return n == "google.protobuf.Timestamp" || n == "google.protobuf.Duration" ||
         n == "google.protobuf.FieldMask" ||
         (absl::StartsWith(n, "google.protobuf.") && absl::EndsWith(n, "Value"));
}

// The fields along `path` in `d`; INVALID_ARGUMENT when one is missing or a
// step is not a singular message.
absl::StatusOr<std::vector<const FieldDescriptor*>> ResolvePath(const Descriptor* d, absl::string_view path) {
  std::vector<const FieldDescriptor*> out;
  std::vector<absl::string_view> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const FieldDescriptor* f = FindField(d, parts[i]);
    if (f == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown field ", parts[i]));
    out.push_back(f);
    if (i + 1 < parts.size()) {
      if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || f->is_repeated() || IsWellKnownValue(f->message_type())) {
        return absl::InvalidArgumentError(absl::StrCat(parts[i], " has no fields"));
      }
      d = f->message_type();
    }
  }
  return out;
}

// `value` as the JSON the proto3 mapping expects for `f`.
absl::StatusOr<std::string> LeafJson(const FieldDescriptor* f, absl::string_view value) {
  std::string quoted;
  json::AppendString(&quoted, value);
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_BOOL:
      if (value == "true" || value == "1") return std::string("true");
      if (value == "false" || value == "0") return std::string("false");
      return absl::InvalidArgumentError("must be true or false");
    case FieldDescriptor::CPPTYPE_ENUM: {
      int64_t number;
      if (absl::SimpleAtoi(value, &number)) return absl::StrCat(number);
      return quoted;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      if (f->is_map() || !IsWellKnownValue(f->message_type())) {
        return absl::InvalidArgumentError("is a message: set its fields (name.field=value) or use the body");
      }
      return quoted;
    default:
      return quoted;  // numbers too: the JSON parser takes "12" for any numeric field
  }
}

absl::Status ParseJson(absl::string_view text, Message* out) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  out->Clear();
  auto s = google::protobuf::util::JsonStringToMessage(std::string(text), out, options);
  if (!s.ok()) return absl::InvalidArgumentError(std::string(s.message()));
  return absl::OkStatus();
}

}  // namespace

// --- PathTemplate ---------------------------------------------------------------

absl::StatusOr<PathTemplate> PathTemplate::Parse(absl::string_view text) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("path template ", text, ": ", why));
  };
  if (!absl::StartsWith(text, "/")) return bad("must start with /");
  PathTemplate t;
  t.text_ = std::string(text);
  absl::string_view rest = text.substr(1);
  // The verb: a ':' after the last '/' and outside braces.
  int depth = 0;
  size_t verb_at = absl::string_view::npos;
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == '{') ++depth;
    if (rest[i] == '}') --depth;
    if (rest[i] == '/' && depth == 0) verb_at = absl::string_view::npos;
    if (rest[i] == ':' && depth == 0) verb_at = i;
  }
  if (depth != 0) return bad("unbalanced braces");
  if (verb_at != absl::string_view::npos) {
    t.verb_ = std::string(rest.substr(verb_at + 1));
    rest = rest.substr(0, verb_at);
    if (t.verb_.empty()) return bad("empty verb");
  }
  auto add_segment = [&](absl::string_view s) -> absl::Status {
    if (s.empty()) return bad("empty segment");
    if (s == "*") {
      t.segments_.push_back({Segment::kAny, ""});
    } else if (s == "**") {
      t.segments_.push_back({Segment::kRest, ""});
    } else {
      if (absl::StrContains(s, '{') || absl::StrContains(s, '}') || absl::StrContains(s, '*')) {
        return bad(absl::StrCat("bad segment ", s));
      }
      t.segments_.push_back({Segment::kLiteral, std::string(s)});
    }
    return absl::OkStatus();
  };
  size_t i = 0;
  while (i <= rest.size()) {
    if (i < rest.size() && rest[i] == '{') {
      const size_t close = rest.find('}', i);
      absl::string_view inside = rest.substr(i + 1, close - i - 1);
      std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(inside, absl::MaxSplits('=', 1));
      if (!IsVariableName(parts.first)) return bad(absl::StrCat("bad variable ", inside));
      Variable v{std::string(parts.first), t.segments_.size(), 1};
      if (absl::StrContains(inside, '=')) {
        std::vector<absl::string_view> sub = absl::StrSplit(parts.second, '/');
        for (absl::string_view s : sub) {
          if (auto st = add_segment(s); !st.ok()) return st;
        }
        v.count = sub.size();
        if (!t.segments_.empty() && t.segments_.back().kind == Segment::kRest) v.count = 0;
      } else {
        t.segments_.push_back({Segment::kAny, ""});
      }
      t.variables_.push_back(std::move(v));
      i = close + 1;
      if (i < rest.size() && rest[i] != '/') return bad("a variable must fill whole segments");
      ++i;
      continue;
    }
    size_t slash = rest.find('/', i);
    if (slash == absl::string_view::npos) slash = rest.size();
    if (auto st = add_segment(rest.substr(i, slash - i)); !st.ok()) return st;
    i = slash + 1;
  }
  for (size_t k = 0; k + 1 < t.segments_.size(); ++k) {
    if (t.segments_[k].kind == Segment::kRest) return bad("** must be the last segment");
  }
  return t;
}

std::optional<std::vector<std::pair<std::string, std::string>>> PathTemplate::Match(
    const std::vector<std::string>& segments, absl::string_view verb) const {
  if (verb != verb_) return std::nullopt;
  const bool rest = !segments_.empty() && segments_.back().kind == Segment::kRest;
  if (rest ? segments.size() < segments_.size() - 1 : segments.size() != segments_.size()) return std::nullopt;
  for (size_t i = 0; i < segments_.size(); ++i) {
    const Segment& s = segments_[i];
    if (s.kind == Segment::kRest) break;
    if (s.kind == Segment::kLiteral && segments[i] != s.literal) return std::nullopt;
    if (s.kind == Segment::kAny && segments[i].empty()) return std::nullopt;
  }
  std::vector<std::pair<std::string, std::string>> bindings;
  for (const Variable& v : variables_) {
    const size_t end = v.count == 0 ? segments.size() : v.first + v.count;
    bindings.emplace_back(v.field_path,
                          absl::StrJoin(segments.begin() + static_cast<long>(v.first),
                                        segments.begin() + static_cast<long>(end), "/"));
  }
  return bindings;
}

std::vector<std::string> PathTemplate::Variables() const {
  std::vector<std::string> out;
  for (const auto& v : variables_) out.push_back(v.field_path);
  return out;
}

int PathTemplate::Specificity() const {
  int n = verb_.empty() ? 0 : 1;
  for (const auto& s : segments_) n += s.kind == Segment::kLiteral ? 2 : 0;
  return n;
}

// --- Router ---------------------------------------------------------------------

absl::StatusOr<Router> Router::FromServices(
    const std::vector<const google::protobuf::ServiceDescriptor*>& services) {
  Router router;
  for (const auto* service : services) {
    for (int m = 0; m < service->method_count(); ++m) {
      const auto* method = service->method(m);
      if (!method->options().HasExtension(google::api::http)) continue;
      const google::api::HttpRule& top = method->options().GetExtension(google::api::http);
      std::vector<const google::api::HttpRule*> rules = {&top};
      for (const auto& extra : top.additional_bindings()) rules.push_back(&extra);
      for (const google::api::HttpRule* rule : rules) {
        Route route;
        route.method = method;
        route.grpc_path = absl::StrCat("/", service->full_name(), "/", method->name());
        std::string path;
        switch (rule->pattern_case()) {
          case google::api::HttpRule::kGet: route.http_method = "GET", path = rule->get(); break;
          case google::api::HttpRule::kPost: route.http_method = "POST", path = rule->post(); break;
          case google::api::HttpRule::kPut: route.http_method = "PUT", path = rule->put(); break;
          case google::api::HttpRule::kDelete: route.http_method = "DELETE", path = rule->delete_(); break;
          case google::api::HttpRule::kPatch: route.http_method = "PATCH", path = rule->patch(); break;
          case google::api::HttpRule::kCustom:
            route.http_method = rule->custom().kind(), path = rule->custom().path();
            break;
          default:
            return absl::InvalidArgumentError(absl::StrCat(method->full_name(), ": http rule without a pattern"));
        }
        auto parsed = PathTemplate::Parse(path);
        if (!parsed.ok()) return absl::InvalidArgumentError(absl::StrCat(method->full_name(), ": ", parsed.status().message()));
        route.path = *std::move(parsed);
        for (const std::string& v : route.path.Variables()) {
          auto fields = ResolvePath(method->input_type(), v);
          if (!fields.ok() || fields->back()->is_repeated() ||
              fields->back()->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
            return absl::InvalidArgumentError(
                absl::StrCat(method->full_name(), ": path variable ", v, " is not a singular scalar field"));
          }
        }
        route.body = rule->body();
        if (!route.body.empty() && route.body != "*" && FindField(method->input_type(), route.body) == nullptr) {
          return absl::InvalidArgumentError(absl::StrCat(method->full_name(), ": body field ", route.body, " does not exist"));
        }
        route.response_body = rule->response_body();
        if (!route.response_body.empty() && FindField(method->output_type(), route.response_body) == nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat(method->full_name(), ": response_body field ", route.response_body, " does not exist"));
        }
        router.routes_.push_back(std::move(route));
      }
    }
  }
  return router;
}

absl::StatusOr<Router::Match> Router::Find(absl::string_view http_method, absl::string_view path) const {
  if (!absl::StartsWith(path, "/")) return absl::NotFoundError("the path must start with /");
  std::vector<std::string> raw = absl::StrSplit(path.substr(1), '/');
  // The last segment may end in ":verb"; try both readings.
  std::string verb;
  std::vector<std::string> with_verb = raw;
  if (const size_t colon = raw.back().rfind(':'); colon != std::string::npos) {
    verb = raw.back().substr(colon + 1);
    with_verb.back() = raw.back().substr(0, colon);
  }
  auto decode = [](std::vector<std::string> segments) -> std::optional<std::vector<std::string>> {
    for (auto& s : segments) {
      std::string d;
      if (!PercentDecode(s, /*plus_is_space=*/false, &d)) return std::nullopt;
      s = std::move(d);
    }
    return segments;
  };
  auto plain = decode(raw), verbed = decode(with_verb);
  if (!plain.has_value() || !verbed.has_value()) return absl::InvalidArgumentError("malformed percent-escape in the path");
  std::string decoded_verb;
  if (!PercentDecode(verb, false, &decoded_verb)) return absl::InvalidArgumentError("malformed percent-escape in the path");

  Match best;
  int best_score = -1;
  bool path_known = false;
  for (const Route& r : routes_) {
    auto bindings = r.path.Match(*plain, "");
    if (!bindings.has_value() && !verb.empty()) bindings = r.path.Match(*verbed, decoded_verb);
    if (!bindings.has_value()) continue;
    path_known = true;
    if (r.http_method != http_method) continue;
    if (r.path.Specificity() > best_score) {
      best_score = r.path.Specificity();
      best = Match{&r, *std::move(bindings)};
    }
  }
  if (best.route != nullptr) return best;
  if (path_known) return absl::UnimplementedError(absl::StrCat("method ", http_method, " is not allowed on ", path));
  return absl::NotFoundError(absl::StrCat("no route for ", path));
}

// --- Requests and responses -----------------------------------------------------

absl::Status BuildRequest(const Router::Match& match, absl::string_view query, absl::string_view body,
                          Message* request) {
  const Route& route = *match.route;
  const Descriptor* type = request->GetDescriptor();
  status::FieldViolations violations;
  request->Clear();
  const bool has_body = !absl::StripAsciiWhitespace(body).empty();
  if (has_body) {
    if (route.body.empty()) {
      violations.Add("body", absl::StrCat(route.http_method, " ", route.path.text(), " takes no body"));
    } else if (route.body == "*") {
      if (auto s = ParseJson(body, request); !s.ok()) violations.Add("body", std::string(s.message()));
    } else {
      const FieldDescriptor* f = FindField(type, route.body);
      std::string wrapped;
      json::AppendString(&wrapped, f->name());
      wrapped = absl::StrCat("{", wrapped, ":", body, "}");
      if (auto s = ParseJson(wrapped, request); !s.ok()) violations.Add(route.body, std::string(s.message()));
    }
  }

  // Path bindings, then query parameters, each parsed on its own so that an
  // error names its field.
  std::vector<std::pair<std::string, std::string>> params = match.bindings;
  const size_t path_params = params.size();
  if (!query.empty()) {
    for (absl::string_view pair : absl::StrSplit(query, '&', absl::SkipEmpty())) {
      std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
      std::string key, value;
      if (!PercentDecode(kv.first, true, &key) || !PercentDecode(kv.second, true, &value)) {
        violations.Add(std::string(kv.first), "malformed percent-escape");
        continue;
      }
      if (route.body == "*") {
        violations.Add(key, "not a query parameter: the body carries every field of this method");
        continue;
      }
      params.emplace_back(std::move(key), std::move(value));
    }
  }
  std::unique_ptr<Message> one(request->New());
  std::unique_ptr<Message> bound(request->New());
  // The fields the path binds: a query parameter may not set them again (it
  // would win, and a URL signed for /v1/jobs/A/… would open ?jobId=B).
  std::vector<std::string> path_fields;
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& [name, value] = params[i];
    auto fields = ResolvePath(type, name);
    if (!fields.ok()) {
      violations.Add(name, std::string(fields.status().message()));
      continue;
    }
    std::string field_path;
    for (const FieldDescriptor* f : *fields) absl::StrAppend(&field_path, field_path.empty() ? "" : ".", f->name());
    if (i < path_params) {
      path_fields.push_back(field_path);
    } else if (std::find(path_fields.begin(), path_fields.end(), field_path) != path_fields.end()) {
      violations.Add(name, "is bound by the path; a query parameter cannot set it again");
      continue;
    }
    if (i >= path_params && !route.body.empty() && fields->front()->name() == FindField(type, route.body)->name()) {
      violations.Add(name, "is in the body");
      continue;
    }
    auto leaf = LeafJson(fields->back(), value);
    if (!leaf.ok()) {
      violations.Add(name, std::string(leaf.status().message()));
      continue;
    }
    std::string text;
    for (const FieldDescriptor* f : *fields) {
      text += "{";
      json::AppendString(&text, f->name());
      text += ":";
    }
    text += fields->back()->is_repeated() ? absl::StrCat("[", *leaf, "]") : *leaf;
    text.append(fields->size(), '}');
    if (auto s = ParseJson(text, one.get()); !s.ok()) {
      violations.Add(name, std::string(s.message()));
      continue;
    }
    bound->MergeFrom(*one);
  }
  if (auto s = violations.ToStatus(); !s.ok()) return s;
  request->MergeFrom(*bound);  // a binding wins over the body
  return absl::OkStatus();
}

absl::StatusOr<std::string> ResponseJson(const Route& route, const Message& response) {
  google::protobuf::util::JsonPrintOptions options;
  std::string out;
  if (route.response_body.empty()) {
    auto s = google::protobuf::util::MessageToJsonString(response, &out, options);
    if (!s.ok()) return absl::InternalError(std::string(s.message()));
    return out;
  }
  const FieldDescriptor* f = FindField(response.GetDescriptor(), route.response_body);
  if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !f->is_repeated()) {
    auto s = google::protobuf::util::MessageToJsonString(response.GetReflection()->GetMessage(response, f), &out, options);
    if (!s.ok()) return absl::InternalError(std::string(s.message()));
    return out;
  }
  // Any other field: print a message holding only it, keep its value.
  std::unique_ptr<Message> only(response.New());
  only->CopyFrom(response);
  std::vector<const FieldDescriptor*> set;
  only->GetReflection()->ListFields(*only, &set);
  for (const FieldDescriptor* other : set) {
    if (other != f) only->GetReflection()->ClearField(only.get(), other);
  }
  auto s = google::protobuf::util::MessageToJsonString(*only, &out, options);
  if (!s.ok()) return absl::InternalError(std::string(s.message()));
  const std::string prefix = absl::StrCat("{\"", f->json_name(), "\":");
  if (!absl::StartsWith(out, prefix)) return std::string("null");
  return out.substr(prefix.size(), out.size() - prefix.size() - 1);
}

int HttpStatus(int grpc_code) {
  switch (grpc_code) {
    case 0: return 200;    // OK
    case 1: return 499;    // CANCELLED
    case 2: return 500;    // UNKNOWN
    case 3: return 400;    // INVALID_ARGUMENT
    case 4: return 504;    // DEADLINE_EXCEEDED
    case 5: return 404;    // NOT_FOUND
    case 6: return 409;    // ALREADY_EXISTS
    case 7: return 403;    // PERMISSION_DENIED
    case 8: return 429;    // RESOURCE_EXHAUSTED
    case 9: return 400;    // FAILED_PRECONDITION
    case 10: return 409;   // ABORTED
    case 11: return 400;   // OUT_OF_RANGE
    case 12: return 501;   // UNIMPLEMENTED
    case 13: return 500;   // INTERNAL
    case 14: return 503;   // UNAVAILABLE
    case 15: return 500;   // DATA_LOSS
    case 16: return 401;   // UNAUTHENTICATED
    default: return 500;
  }
}

bool PercentDecode(absl::string_view text, bool plus_is_space, std::string* out) {
  out->clear();
  out->reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size() || !absl::ascii_isxdigit(static_cast<unsigned char>(text[i + 1])) ||
          !absl::ascii_isxdigit(static_cast<unsigned char>(text[i + 2]))) {
        return false;
      }
      auto hex = [](char h) {
        const auto u = static_cast<unsigned char>(h);
        return absl::ascii_isdigit(u) ? h - '0' : absl::ascii_tolower(u) - 'a' + 10;
      };
      out->push_back(static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2])));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return true;
}

}  // namespace trainmesh::transcoding
