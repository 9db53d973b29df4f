#include "libs/datasets/datasets.h"

#include <curl/curl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libs/artifacts/artifact_store.h"

namespace trainmesh::datasets {
namespace {

std::string RealPath(const std::string& path) {
  char buf[PATH_MAX];
  return realpath(path.c_str(), buf) != nullptr ? std::string(buf) : std::string();
}

constexpr int kMaxRedirects = 5;
// What is read (and dropped) of a redirect's or an error's body.
constexpr int64_t kMaxDiscardBytes = 1 << 20;

struct CurlUrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};

// One request of a download: an http(s) URL as libcurl (which connects to
// it) parses it. Errors name `host` only: the path and query may carry a
// credential (a presigned URL).
struct Target {
  std::string url;
  std::string host;  // "example.com", "127.0.0.1", "[::1]"
};

absl::StatusOr<Target> ParseTarget(const std::string& url) {
  std::unique_ptr<CURLU, CurlUrlDeleter> u(curl_url());
  if (u == nullptr) return absl::ResourceExhaustedError("out of memory");
  if (curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) {
    return absl::InvalidArgumentError("the dataset URL is not a valid http(s) URL");
  }
  auto part = [&](CURLUPart which) {
    char* text = nullptr;
    std::string out;
    if (curl_url_get(u.get(), which, &text, 0) == CURLUE_OK && text != nullptr) out = text;
    curl_free(text);
    return out;
  };
  const std::string scheme = absl::AsciiStrToLower(part(CURLUPART_SCHEME));
  if (scheme != "http" && scheme != "https") {
    return absl::InvalidArgumentError("the dataset URL must be http or https");
  }
  Target t{part(CURLUPART_URL), absl::AsciiStrToLower(part(CURLUPART_HOST))};
  if (t.url.empty() || t.host.empty()) {
    return absl::InvalidArgumentError("the dataset URL must name a host");
  }
  return t;
}

// State shared with libcurl's callbacks during one request.
struct Transfer {
  CURL* curl = nullptr;
  const netpolicy::Policy* policy = nullptr;
  bool host_allowed = false;  // by name: any address is reached
  absl::Status refused;       // the first address the policy refused
  FILE* file = nullptr;
  int64_t written = 0;
  int64_t limit = 0;
  bool too_big = false;
  int64_t discarded = 0;
};

// Every socket libcurl opens, for any request and any address of a host
// (after it resolved the name, on every redirect), passes here: the address
// checked is the one connected to, so a name resolving inward, now or on a
// second lookup, is refused like a literal address.
curl_socket_t OpenSocket(void* user, curlsocktype purpose, curl_sockaddr* address) {
  auto* t = static_cast<Transfer*>(user);
  absl::Status s;
  if (purpose != CURLSOCKTYPE_IPCXN) {
    s = absl::PermissionDeniedError("only outgoing connections are made");
  } else if (!t->host_allowed) {
    sockaddr_storage copy{};
    std::memcpy(&copy, &address->addr, std::min<size_t>(address->addrlen, sizeof(copy)));
    s = netpolicy::CheckAddress(reinterpret_cast<const sockaddr&>(copy), *t->policy);
  }
  if (!s.ok()) {
    if (t->refused.ok()) t->refused = s;
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

size_t Write(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const int64_t bytes = static_cast<int64_t>(size * n);
  long code = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
  if (code < 200 || code > 299) {
    // A redirect's or an error's body: not the dataset, never kept or shown.
    t->discarded += bytes;
    return t->discarded > kMaxDiscardBytes ? 0 : size * n;
  }
  if (t->written + bytes > t->limit) {
    t->too_big = true;
    return 0;
  }
  t->written += bytes;
  return fwrite(data, size, n, t->file);
}

// Downloads `url` into `path`, following at most kMaxRedirects redirects, each
// one re-checked (scheme, host name, the addresses connected to).
absl::Status Download(const std::string& url, const std::string& path,
                      const DatasetOptions& options) {
  auto first = ParseTarget(url);
  if (!first.ok()) return first.status();
  Target target = *first;
  auto fail = [&](absl::StatusCode code, absl::string_view why) {
    std::string where = absl::StrCat("fetching dataset from ", first->host);
    if (target.host != first->host) absl::StrAppend(&where, " (redirected to ", target.host, ")");
    return absl::Status(code, absl::StrCat(where, ": ", why));
  };
  std::unique_ptr<FILE, int (*)(FILE*)> file(fopen(path.c_str(), "wb"), fclose);
  if (file == nullptr) return absl::UnavailableError("cannot write to the dataset cache");
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (curl == nullptr) return absl::ResourceExhaustedError("cannot start a download");
  Transfer t;
  t.curl = curl.get();
  t.policy = &options.address_policy;
  t.file = file.get();
  t.limit = options.max_download_bytes;
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, OpenSocket);
  curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &t);
  // Redirects are followed here, one checked hop at a time.
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  // A proxy would connect on our behalf to an address never checked here.
  curl_easy_setopt(c, CURLOPT_PROXY, "");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  const absl::Time deadline = absl::Now() + options.download_timeout;
  for (int hop = 0;; ++hop) {
    t.host_allowed = netpolicy::HostAllowed(
        options.address_policy, absl::StripSuffix(absl::StripPrefix(target.host, "["), "]"));
    t.refused = absl::OkStatus();
    t.discarded = 0;
    const int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left_ms <= 0) return fail(absl::StatusCode::kNotFound, "timed out");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(left_ms));
    curl_easy_setopt(c, CURLOPT_URL, target.url.c_str());
    const CURLcode rc = curl_easy_perform(c);
    if (!t.refused.ok()) return fail(t.refused.code(), t.refused.message());
    if (t.too_big) {
      return fail(absl::StatusCode::kInvalidArgument,
                  absl::StrCat("the dataset is larger than the ", options.max_download_bytes,
                               "-byte download limit"));
    }
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 200 && code <= 299) {
      if (rc == CURLE_WRITE_ERROR)
        return absl::UnavailableError("cannot write to the dataset cache");
      if (rc != CURLE_OK) return fail(absl::StatusCode::kNotFound, curl_easy_strerror(rc));
      if (fflush(file.get()) != 0)
        return absl::UnavailableError("cannot write to the dataset cache");
      return absl::OkStatus();
    }
    if (code == 0) return fail(absl::StatusCode::kNotFound, curl_easy_strerror(rc));
    if (code < 300 || code > 399) {
      return fail(absl::StatusCode::kNotFound, absl::StrCat("HTTP ", code));
    }
    char* location = nullptr;
    curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &location);
    if (location == nullptr || *location == '\0') {
      return fail(absl::StatusCode::kNotFound, absl::StrCat("HTTP ", code, " without a Location"));
    }
    if (hop == kMaxRedirects) {
      return fail(absl::StatusCode::kNotFound,
                  absl::StrCat("more than ", kMaxRedirects, " redirects"));
    }
    auto next = ParseTarget(location);
    if (!next.ok()) {
      return fail(absl::StatusCode::kInvalidArgument,
                  absl::StrCat("HTTP ", code, " redirects to a URL that is not http(s)"));
    }
    target = *std::move(next);
  }
}

absl::StatusOr<Source> Fetch(const std::string& url, const std::string& expected_sha,
                             const DatasetOptions& options) {
  if (options.cache_dir.empty()) return absl::FailedPreconditionError("no dataset cache directory");
  mkdir(options.cache_dir.c_str(), 0755);
  unsigned char digest[32];
  EVP_Digest(url.data(), url.size(), digest, nullptr, EVP_sha256(), nullptr);
  const std::string key =
      absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(digest), 16));
  const std::string path = absl::StrCat(options.cache_dir, "/", key);
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    if (expected_sha.empty() || artifacts::Sha256File(path).value_or("") == expected_sha) {
      return Source{path, "", {}};
    }
  }
  const std::string partial = absl::StrCat(path, ".", getpid(), ".part");
  if (absl::Status s = Download(url, partial, options); !s.ok()) {
    unlink(partial.c_str());
    return s;
  }
  if (!expected_sha.empty()) {
    const std::string got = artifacts::Sha256File(partial).value_or("");
    if (got != expected_sha) {
      unlink(partial.c_str());
      auto target = ParseTarget(url);
      return absl::InvalidArgumentError(
          absl::StrCat("fetching dataset from ", target.ok() ? target->host : "its host",
                       ": its sha256 is ", got, ", not the pinned ", expected_sha));
    }
  }
  if (rename(partial.c_str(), path.c_str()) != 0) {
    unlink(partial.c_str());
    return absl::UnavailableError("cannot write to the dataset cache");
  }
  return Source{path, "", {}};
}

}  // namespace

absl::StatusOr<double> Source::Number(const std::string& key, double fallback) const {
  auto it = params.find(key);
  if (it == params.end()) return fallback;
  double v = 0;
  if (!absl::SimpleAtod(it->second, &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset parameter ", key, "=", it->second, " is not a number"));
  }
  return v;
}

absl::StatusOr<Source> Resolve(const recipes::DatasetRef& ref, const DatasetOptions& options) {
  switch (ref.scheme) {
    case recipes::DatasetRef::Scheme::kSynthetic:
      return Source{"", ref.generator, ref.params};
    case recipes::DatasetRef::Scheme::kFile: {
      if (options.data_root.empty()) {
        return absl::FailedPreconditionError("this agent has no data root for file:// datasets");
      }
      const std::string root = RealPath(options.data_root);
      const std::string real = RealPath(absl::StrCat(options.data_root, "/", ref.path));
      if (real.empty()) {
        return absl::NotFoundError(
            absl::StrCat("dataset file://", ref.path, " does not exist under the data root"));
      }
      // Symlinks are resolved first: the file must really be inside.
      if (root.empty() || !absl::StartsWith(real, absl::StrCat(root, "/"))) {
        return absl::InvalidArgumentError(
            absl::StrCat("dataset file://", ref.path, " is outside the data root"));
      }
      return Source{real, "", {}};
    }
    case recipes::DatasetRef::Scheme::kHttp:
      return Fetch(ref.url, ref.sha256, options);
  }
  return absl::InvalidArgumentError("unknown dataset scheme");
}

absl::StatusOr<Table> ReadCsv(const std::string& path, size_t max_rows) {
  auto text = ReadText(path, std::numeric_limits<int64_t>::max());
  if (!text.ok()) return text.status();
  CsvLimits limits;
  limits.max_rows = max_rows;
  return ParseCsv(*text, limits);
}

absl::StatusOr<std::string> ReadText(const std::string& path, int64_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  struct stat st;
  if (!in || stat(path.c_str(), &st) != 0)
    return absl::NotFoundError(absl::StrCat("cannot read ", path));
  // Sized by the file, not the limit: a small file costs little.
  std::string text;
  text.resize(static_cast<size_t>(std::clamp<int64_t>(st.st_size, 0, max_bytes)));
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

}  // namespace trainmesh::datasets
