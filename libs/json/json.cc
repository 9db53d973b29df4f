#include "libs/json/json.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace trainmesh::json {
namespace {

constexpr int kMaxDepth = 64;

void AppendNumber(std::string* out, double d) {
  if (!std::isfinite(d)) {
    out->append("null");
    return;
  }
  char buf[32];
  auto result = std::to_chars(buf, buf + sizeof(buf), d);
  out->append(buf, result.ptr);
}

void AppendStruct(std::string* out, const google::protobuf::Struct& s) {
  out->push_back('{');
  bool first = true;
  for (const auto& [key, value] : s.fields()) {
    if (!first) out->push_back(',');
    first = false;
    AppendString(out, key);
    out->push_back(':');
    AppendValue(out, value);
  }
  out->push_back('}');
}

class Parser {
 public:
  Parser(absl::string_view text, ParseOptions options) : text_(text), options_(options) {}

  absl::Status ParseObject(google::protobuf::Struct* out, int depth) {
    if (depth > kMaxDepth) return Error("nested too deeply");
    if (!Consume('{')) return Error("expected '{'");
    SkipSpace();
    if (Consume('}')) return absl::OkStatus();
    while (true) {
      SkipSpace();
      std::string key;
      if (absl::Status s = ParseString(&key); !s.ok()) return s;
      SkipSpace();
      if (!Consume(':')) return Error("expected ':'");
      SkipSpace();
      if (absl::Status s = ParseValue(&(*out->mutable_fields())[key], depth + 1); !s.ok()) {
        return s;
      }
      SkipSpace();
      if (Consume('}')) return absl::OkStatus();
      if (!Consume(',')) return Error("expected ',' or '}'");
    }
  }

  absl::Status Finish() {
    SkipSpace();
    return pos_ == text_.size() ? absl::OkStatus() : Error("trailing characters");
  }

 private:
  absl::Status ParseValue(google::protobuf::Value* out, int depth) {
    if (pos_ >= text_.size()) return Error("unexpected end");
    const char c = text_[pos_];
    if (c == '{') return ParseObject(out->mutable_struct_value(), depth);
    if (c == '[') {
      if (depth > kMaxDepth) return Error("nested too deeply");
      ++pos_;
      auto* list = out->mutable_list_value();
      SkipSpace();
      if (Consume(']')) return absl::OkStatus();
      while (true) {
        SkipSpace();
        if (absl::Status s = ParseValue(list->add_values(), depth + 1); !s.ok()) return s;
        SkipSpace();
        if (Consume(']')) return absl::OkStatus();
        if (!Consume(',')) return Error("expected ',' or ']'");
      }
    }
    if (c == '"') return ParseString(out->mutable_string_value());
    if (Literal("true")) {
      out->set_bool_value(true);
      return absl::OkStatus();
    }
    if (Literal("false")) {
      out->set_bool_value(false);
      return absl::OkStatus();
    }
    if (Literal("null")) {
      out->set_null_value(google::protobuf::NULL_VALUE);
      return absl::OkStatus();
    }
    if (options_.allow_nonfinite) {
      if (Literal("NaN")) {
        out->set_number_value(std::numeric_limits<double>::quiet_NaN());
        return absl::OkStatus();
      }
      if (Literal("Infinity")) {
        out->set_number_value(std::numeric_limits<double>::infinity());
        return absl::OkStatus();
      }
      if (Literal("-Infinity")) {
        out->set_number_value(-std::numeric_limits<double>::infinity());
        return absl::OkStatus();
      }
    }
    return ParseNumber(out);
  }

  absl::Status ParseNumber(google::protobuf::Value* out) {
    const size_t start = pos_;
    if (pos_ < text_.size() && text_[pos_] == '-') ++pos_;
    while (pos_ < text_.size() && (std::isdigit(static_cast<unsigned char>(text_[pos_])) ||
                                   text_[pos_] == '.' || text_[pos_] == 'e' ||
                                   text_[pos_] == 'E' || text_[pos_] == '+' ||
                                   text_[pos_] == '-')) {
      ++pos_;
    }
    double d = 0;
    auto result = std::from_chars(text_.data() + start, text_.data() + pos_, d);
    if (pos_ == start || result.ec != std::errc() || result.ptr != text_.data() + pos_) {
      pos_ = start;
      return Error("expected a value");
    }
    out->set_number_value(d);
    return absl::OkStatus();
  }

  absl::Status ParseString(std::string* out) {
    if (!Consume('"')) return Error("expected a string");
    while (pos_ < text_.size()) {
      const char c = text_[pos_++];
      if (c == '"') return absl::OkStatus();
      if (static_cast<unsigned char>(c) < 0x20) return Error("control character in string");
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) break;
      const char e = text_[pos_++];
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          uint32_t cp = 0;
          if (!Hex4(&cp)) return Error("bad \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t low = 0;
            if (!Consume('\\') || !Consume('u') || !Hex4(&low) || low < 0xDC00 || low > 0xDFFF) {
              return Error("unpaired surrogate");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          AppendUtf8(out, cp);
          break;
        }
        default:
          return Error("bad escape");
      }
    }
    return Error("unterminated string");
  }

  bool Hex4(uint32_t* out) {
    if (pos_ + 4 > text_.size()) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else return false;
    }
    *out = v;
    return true;
  }

  static void AppendUtf8(std::string* out, uint32_t cp) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  bool Literal(absl::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  bool Consume(char c) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                   text_[pos_] == '\r' || text_[pos_] == '\t')) {
      ++pos_;
    }
  }

  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON at offset ", pos_, ": ", what));
  }

  absl::string_view text_;
  ParseOptions options_;
  size_t pos_ = 0;
};

}  // namespace

void AppendString(std::string* out, absl::string_view s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c < 0x20) {
          absl::StrAppendFormat(out, "\\u%04x", c);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

void AppendValue(std::string* out, const google::protobuf::Value& v) {
  switch (v.kind_case()) {
    case google::protobuf::Value::kNumberValue:
      AppendNumber(out, v.number_value());
      break;
    case google::protobuf::Value::kStringValue:
      AppendString(out, v.string_value());
      break;
    case google::protobuf::Value::kBoolValue:
      out->append(v.bool_value() ? "true" : "false");
      break;
    case google::protobuf::Value::kStructValue:
      AppendStruct(out, v.struct_value());
      break;
    case google::protobuf::Value::kListValue: {
      out->push_back('[');
      bool first = true;
      for (const auto& item : v.list_value().values()) {
        if (!first) out->push_back(',');
        first = false;
        AppendValue(out, item);
      }
      out->push_back(']');
      break;
    }
    default:
      out->append("null");
  }
}

std::string FromStruct(const google::protobuf::Struct& s) {
  std::string out;
  out.reserve(64 + s.fields_size() * 24);
  AppendStruct(&out, s);
  return out;
}

absl::Status ToStruct(absl::string_view text, google::protobuf::Struct* out,
                      ParseOptions options) {
  out->Clear();
  Parser parser(text, options);
  if (absl::Status s = parser.ParseObject(out, 0); !s.ok()) return s;
  return parser.Finish();
}

}  // namespace trainmesh::json
