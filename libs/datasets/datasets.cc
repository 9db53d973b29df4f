#include "libs/datasets/datasets.h"

#include <curl/curl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
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

std::string Decode(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && absl::ascii_isxdigit(s[i + 1]) && absl::ascii_isxdigit(s[i + 2])) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i] == '+' ? ' ' : s[i]);
    }
  }
  return out;
}

std::string RealPath(const std::string& path) {
  char buf[PATH_MAX];
  return realpath(path.c_str(), buf) != nullptr ? std::string(buf) : std::string();
}

struct Download {
  FILE* file;
  int64_t written = 0;
  int64_t limit;
  bool too_big = false;
};

size_t Write(char* data, size_t size, size_t n, void* user) {
  auto* d = static_cast<Download*>(user);
  if (d->written + static_cast<int64_t>(size * n) > d->limit) {
    d->too_big = true;
    return 0;
  }
  d->written += static_cast<int64_t>(size * n);
  return fwrite(data, size, n, d->file);
}

absl::StatusOr<Source> Fetch(const std::string& url, const std::string& expected_sha,
                             const DatasetOptions& options) {
  if (options.cache_dir.empty()) return absl::FailedPreconditionError("no dataset cache directory");
  mkdir(options.cache_dir.c_str(), 0755);
  unsigned char digest[32];
  EVP_Digest(url.data(), url.size(), digest, nullptr, EVP_sha256(), nullptr);
  const std::string key = absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(digest), 16));
  const std::string path = absl::StrCat(options.cache_dir, "/", key);
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    if (expected_sha.empty() || artifacts::Sha256File(path).value_or("") == expected_sha) return Source{path, "", {}};
  }
  const std::string partial = absl::StrCat(path, ".", getpid(), ".part");
  Download d{fopen(partial.c_str(), "wb"), 0, options.max_download_bytes};
  if (d.file == nullptr) return absl::UnavailableError("cannot write to the dataset cache");
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, Write);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &d);
  curl_easy_setopt(curl.get(), CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(curl.get(), CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl.get(), CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options.download_timeout)));
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_FAILONERROR, 1L);
  const CURLcode rc = curl_easy_perform(curl.get());
  fclose(d.file);
  if (d.too_big) {
    unlink(partial.c_str());
    return absl::InvalidArgumentError(absl::StrCat("dataset ", url, " is larger than the ",
                                                   options.max_download_bytes, "-byte limit"));
  }
  if (rc != CURLE_OK) {
    unlink(partial.c_str());
    return absl::NotFoundError(absl::StrCat("cannot download dataset ", url, ": ", curl_easy_strerror(rc)));
  }
  if (!expected_sha.empty()) {
    const std::string got = artifacts::Sha256File(partial).value_or("");
    if (got != expected_sha) {
      unlink(partial.c_str());
      return absl::InvalidArgumentError(absl::StrCat("dataset ", url, " has sha256 ", got,
                                                     ", not the expected ", expected_sha));
    }
  }
  rename(partial.c_str(), path.c_str());
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

absl::StatusOr<Source> Resolve(absl::string_view url, const DatasetOptions& options) {
  const size_t sep = url.find("://");
  if (sep == absl::string_view::npos) return absl::InvalidArgumentError("dataset URL has no scheme");
  const std::string scheme = absl::AsciiStrToLower(url.substr(0, sep));
  absl::string_view rest = url.substr(sep + 3);
  if (scheme == "synthetic") {
    Source s;
    s.generator = std::string(rest.substr(0, rest.find('?')));
    if (rest.find('?') != absl::string_view::npos) {
      for (absl::string_view kv : absl::StrSplit(rest.substr(rest.find('?') + 1), '&', absl::SkipEmpty())) {
        std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
        s.params[Decode(p.first)] = Decode(p.second);
      }
    }
    return s;
  }
  if (scheme == "file") {
    if (options.data_root.empty()) {
      return absl::FailedPreconditionError("this agent has no data root for file:// datasets");
    }
    const std::string root = RealPath(options.data_root);
    const std::string wanted = absl::StrCat(options.data_root, "/", Decode(rest));
    const std::string real = RealPath(wanted);
    if (real.empty()) {
      return absl::NotFoundError(absl::StrCat("dataset ", url, " does not exist under the data root"));
    }
    // Symlinks and ".." are resolved first: the file must really be inside.
    if (root.empty() || !absl::StartsWith(real, absl::StrCat(root, "/"))) {
      return absl::InvalidArgumentError(absl::StrCat("dataset ", url, " is outside the data root"));
    }
    return Source{real, "", {}};
  }
  if (scheme == "http" || scheme == "https") {
    std::string fetch(url);
    std::string sha;
    if (size_t hash = fetch.find("#sha256="); hash != std::string::npos) {
      sha = absl::AsciiStrToLower(fetch.substr(hash + 8));
      fetch = fetch.substr(0, hash);
    }
    return Fetch(fetch, sha, options);
  }
  return absl::InvalidArgumentError(absl::StrCat("dataset scheme ", scheme, " is not supported"));
}

absl::StatusOr<Table> ReadCsv(const std::string& path, size_t max_rows) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  Table t;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  auto end_row = [&] {
    row.push_back(std::move(field));
    field.clear();
    if (!(row.size() == 1 && row[0].empty())) {
      if (t.header.empty()) {
        t.header = std::move(row);
      } else {
        t.rows.push_back(std::move(row));
      }
    }
    row.clear();
  };
  char c;
  while (in.get(c)) {
    any = true;
    if (quoted) {
      if (c == '"') {
        if (in.peek() == '"') {
          field.push_back('"');
          in.get(c);
        } else {
          quoted = false;
        }
      } else {
        field.push_back(c);
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
    } else if (c == '\n') {
      end_row();
      if (t.rows.size() > max_rows) return absl::InvalidArgumentError("CSV has too many rows");
    } else if (c != '\r') {
      field.push_back(c);
    }
  }
  if (any && (!field.empty() || !row.empty())) end_row();
  if (t.header.empty()) return absl::InvalidArgumentError(absl::StrCat(path, " is empty"));
  for (size_t i = 0; i < t.rows.size(); ++i) {
    if (t.rows[i].size() != t.header.size()) {
      return absl::InvalidArgumentError(absl::StrCat("CSV row ", i + 2, " has ", t.rows[i].size(),
                                                     " fields; the header has ", t.header.size()));
    }
  }
  return t;
}

absl::StatusOr<std::string> ReadText(const std::string& path, int64_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::string text;
  text.resize(static_cast<size_t>(max_bytes));
  in.read(text.data(), max_bytes);
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

}  // namespace trainmesh::datasets
