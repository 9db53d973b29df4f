#include "libs/recipes/dataset_url.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace trainmesh::recipes {
namespace {

constexpr size_t kMaxUrlBytes = 2048;

absl::Status Bad(absl::string_view why) { return absl::InvalidArgumentError(why); }

// "sha256=" and 64 hex digits.
bool IsSha256Pin(absl::string_view s) {
  return absl::ConsumePrefix(&s, "sha256=") && s.size() == 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return absl::ascii_isxdigit(c); });
}

// Percent-decoding, with "+" as a space (query style).
std::string Decode(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && absl::ascii_isxdigit(s[i + 1]) && absl::ascii_isxdigit(s[i + 2])) {
      const auto hex = [](char c) {
        return absl::ascii_isdigit(c) ? c - '0' : absl::ascii_tolower(c) - 'a' + 10;
      };
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i] == '+' ? ' ' : s[i]);
    }
  }
  return out;
}

absl::StatusOr<DatasetRef> ParseFile(absl::string_view rest) {
  if (!absl::StartsWith(rest, "/") || rest.size() < 2) {
    return Bad("must be file:///<path> (relative to the trainer's data root)");
  }
  DatasetRef ref;
  ref.scheme = DatasetRef::Scheme::kFile;
  ref.path = Decode(rest);
  for (absl::string_view part : absl::StrSplit(ref.path, '/')) {
    if (part == "..") return Bad("points outside the data root: \"..\" is not allowed");
  }
  if (ref.path.find('\0') != std::string::npos) return Bad("must not contain a NUL byte");
  return ref;
}

absl::StatusOr<DatasetRef> ParseHttp(absl::string_view url, absl::string_view rest) {
  const absl::string_view host = rest.substr(0, rest.find_first_of("/?#"));
  if (host.empty()) return Bad("is not a valid http(s) URL: it must name a host");
  DatasetRef ref;
  ref.scheme = DatasetRef::Scheme::kHttp;
  const size_t hash = rest.find('#');
  if (hash != absl::string_view::npos) {
    const absl::string_view pin = rest.substr(hash + 1);
    if (!IsSha256Pin(pin)) return Bad(absl::StrCat("may end only in a content pin, ", kPinGrammar));
    ref.sha256 = absl::AsciiStrToLower(pin.substr(7));
  }
  // A pin written as a query parameter would be sent and pin nothing.
  const absl::string_view before_fragment = rest.substr(0, hash);
  if (const size_t q = before_fragment.find('?'); q != absl::string_view::npos) {
    for (absl::string_view kv : absl::StrSplit(before_fragment.substr(q + 1), '&')) {
      if (IsSha256Pin(kv)) {
        return Bad(absl::StrCat(
            "pins its content in the query, which is sent and pins nothing: write ", kPinGrammar));
      }
    }
  }
  ref.url = std::string(url.substr(0, url.size() - rest.size() + before_fragment.size()));
  return ref;
}

absl::StatusOr<DatasetRef> ParseSynthetic(absl::string_view rest) {
  const size_t q = rest.find('?');
  DatasetRef ref;
  ref.scheme = DatasetRef::Scheme::kSynthetic;
  ref.generator = std::string(rest.substr(0, q));
  if (ref.generator.empty()) return Bad("must name a generator: synthetic://<name>");
  if (q == absl::string_view::npos) return ref;
  for (absl::string_view kv : absl::StrSplit(rest.substr(q + 1), '&', absl::SkipEmpty())) {
    const size_t eq = kv.find('=');
    if (eq == absl::string_view::npos || eq == 0) {
      return Bad(absl::StrCat("parameter \"", kv, "\" must be key=value"));
    }
    ref.params[Decode(kv.substr(0, eq))] = Decode(kv.substr(eq + 1));
  }
  return ref;
}

}  // namespace

absl::StatusOr<DatasetRef> ParseDatasetUrl(absl::string_view url) {
  if (url.empty()) return Bad("is required (file://, http://, https:// or synthetic://)");
  if (url.size() > kMaxUrlBytes) return Bad(absl::StrCat("must be at most ", kMaxUrlBytes, " bytes"));
  for (char c : url) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c)) || absl::ascii_iscntrl(c)) {
      return Bad("must not contain spaces or control characters");
    }
  }
  const size_t sep = url.find("://");
  const std::string scheme =
      sep == absl::string_view::npos ? "" : absl::AsciiStrToLower(url.substr(0, sep));
  const absl::string_view rest = sep == absl::string_view::npos ? "" : url.substr(sep + 3);
  if (scheme == "file") return ParseFile(rest);
  if (scheme == "http" || scheme == "https") return ParseHttp(url, rest);
  if (scheme == "synthetic") return ParseSynthetic(rest);
  return Bad(absl::StrCat("scheme must be one of file, http, https, synthetic (",
                          scheme.empty() ? "the URL has none"
                                         : absl::StrCat("scheme ", scheme, " is not supported"),
                          ")"));
}

}  // namespace trainmesh::recipes
