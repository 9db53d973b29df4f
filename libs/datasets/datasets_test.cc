#include "libs/datasets/datasets.h"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/datasets/frames.h"
#include "libs/http/http_server.h"

namespace trainmesh::datasets {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A URL resolved as a job's is: parsed by the one grammar, then resolved.
absl::StatusOr<Source> Resolve(absl::string_view url, const DatasetOptions& options) {
  auto ref = recipes::ParseDatasetUrl(url);
  if (!ref.ok()) return ref.status();
  return datasets::Resolve(*ref, options);
}

struct Dirs {
  Dirs() {
    std::string t = absl::StrCat(::testing::TempDir(), "/data-XXXXXX");
    base = mkdtemp(t.data());
    root = base + "/root";
    mkdir(root.c_str(), 0755);
    mkdir((root + "/sub").c_str(), 0755);
    std::ofstream(root + "/sub/train.csv") << "a,b,label\n1,2,x\n3,\"4,5\",y\n";
    std::ofstream(base + "/secret.txt") << "outside";
    symlink((base + "/secret.txt").c_str(), (root + "/escape.txt").c_str());
  }
  DatasetOptions Options() const { return {.data_root = root, .cache_dir = base + "/cache"}; }
  // Downloads may reach `cidrs` (and nothing else inward).
  DatasetOptions Allowing(const std::vector<std::string>& cidrs,
                          const std::vector<std::string>& hosts = {}) const {
    DatasetOptions o = Options();
    auto policy = netpolicy::ParsePolicy(hosts, cidrs);
    EXPECT_TRUE(policy.ok()) << policy.status();
    o.address_policy = *policy;
    o.address_policy.allow_hint = "an operator can allow it with --dataset_allow_cidrs";
    return o;
  }
  std::string base, root;
};

// A real HTTP server on a loopback address, port 0, answering every request
// with `respond(target)`.
class Site {
 public:
  using Respond = std::function<httpd::HttpResponse(const std::string& target)>;
  Site(const std::string& ip, Respond respond) : respond_(std::move(respond)) {
    httpd::HttpServer::Options o;
    o.address = ip + ":0";
    server_ = std::make_unique<httpd::HttpServer>(
        o, [this](const httpd::HttpRequest& r, std::function<void(httpd::HttpResponse)> done) {
          ++requests_;
          done(respond_(r.target));
        });
    const absl::Status s = server_->Start();
    EXPECT_TRUE(s.ok()) << s;
    url_ = absl::StrCat("http://", ip, ":", server_->port());
  }
  // "http://ip:port" + path.
  std::string Url(const std::string& path) const { return url_ + path; }
  int port() const { return server_->port(); }
  int requests() const { return requests_; }

  static httpd::HttpResponse Body(int status, std::string body) {
    httpd::HttpResponse r;
    r.status = status;
    r.content_type = "text/csv";
    r.body = std::move(body);
    return r;
  }
  static httpd::HttpResponse Redirect(const std::string& location) {
    httpd::HttpResponse r = Body(302, "SECRET-REDIRECT-BODY");
    r.headers.emplace_back("Location", location);
    return r;
  }

 private:
  Respond respond_;
  std::atomic<int> requests_{0};
  std::unique_ptr<httpd::HttpServer> server_;
  std::string url_;
};

constexpr char kCsv[] = "obs_0,act_0\n1,2\n3,4\n";

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[32];
  EVP_Digest(data.data(), data.size(), digest, nullptr, EVP_sha256(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(digest), 32));
}

std::string Message(const absl::StatusOr<Source>& s) { return std::string(s.status().message()); }

TEST(DatasetsTest, FilesStayInsideTheDataRoot) {
  Dirs d;
  auto ok = Resolve("file:///sub/train.csv", d.Options());
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_THAT(ok->path, HasSubstr("/root/sub/train.csv"));
  EXPECT_EQ(Resolve("file:///../secret.txt", d.Options()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Resolve("file:///escape.txt", d.Options()).status().message(),
              HasSubstr("outside the data root"));
  EXPECT_EQ(Resolve("file:///nope.csv", d.Options()).status().code(), absl::StatusCode::kNotFound);
}

TEST(DatasetsTest, SyntheticParameters) {
  auto s = Resolve("synthetic://reach?samples=2000&obs_dim=8&name=a%20b", {});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->generator, "reach");
  EXPECT_EQ(*s->Number("samples", 1), 2000);
  EXPECT_EQ(*s->Number("missing", 7), 7);
  EXPECT_EQ(s->params.at("name"), "a b");
  EXPECT_FALSE(Resolve("synthetic://reach?samples=many", {})->Number("samples", 1).ok());
}

TEST(DatasetsTest, CsvWithQuotes) {
  Dirs d;
  auto t = ReadCsv(d.root + "/sub/train.csv");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(t->header, ElementsAre("a", "b", "label"));
  ASSERT_EQ(t->rows.size(), 2u);
  EXPECT_THAT(t->rows[1], ElementsAre("3", "4,5", "y"));
  std::ofstream(d.root + "/bad.csv") << "a,b\n1\n";
  EXPECT_THAT(ReadCsv(d.root + "/bad.csv").status().message(), HasSubstr("row 2 has 1 fields"));
  EXPECT_EQ(ReadCsv(d.root + "/none.csv").status().code(), absl::StatusCode::kNotFound);
}

// The issue's repro: a loopback dataset was fetched and its first line quoted.
TEST(DatasetsTest, LoopbackIsRefusedByDefaultWithoutReadingIt) {
  Dirs d;
  Site site("127.0.0.1", [](const std::string&) { return Site::Body(200, "SECRET,LINE\n1,2\n"); });
  DatasetOptions options = d.Options();
  options.address_policy.allow_hint = "an operator can allow it with --dataset_allow_cidrs";
  auto s = Resolve(site.Url("/s.csv?token=SECRET-QUERY"), options);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Message(s),
            "fetching dataset from 127.0.0.1: address 127.0.0.1 is loopback; an operator can "
            "allow it with --dataset_allow_cidrs");
  EXPECT_EQ(site.requests(), 0);  // refused before connecting
}

TEST(DatasetsTest, AnOperatorAllowsABlock) {
  Dirs d;
  Site site("127.0.0.1", [](const std::string& target) {
    return target == "/s.csv" ? Site::Body(200, kCsv) : Site::Body(404, "nope");
  });
  auto s = Resolve(site.Url("/s.csv"), d.Allowing({"127.0.0.0/8"}));
  ASSERT_TRUE(s.ok()) << s.status();
  auto demos = ReadDemonstrations(s->path);
  ASSERT_TRUE(demos.ok()) << demos.status();
  EXPECT_THAT(demos->act.data, ElementsAre(2, 4));
}

TEST(DatasetsTest, AnOperatorAllowsAHostByName) {
  Dirs d;
  Site site("127.0.0.1", [](const std::string&) { return Site::Body(200, kCsv); });
  const std::string url = absl::StrCat("http://localhost:", site.port(), "/s.csv");
  // localhost resolves to loopback: refused like the literal address...
  auto refused = Resolve(url, d.Options());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(Message(refused),
              ::testing::AllOf(HasSubstr("fetching dataset from localhost: address "),
                               HasSubstr("loopback")));
  // ...unless the operator allows the name, whatever it resolves to.
  auto allowed = Resolve(url, d.Allowing({}, {"localhost"}));
  ASSERT_TRUE(allowed.ok()) << allowed.status();
  EXPECT_EQ(site.requests(), 1);
}

TEST(DatasetsTest, InwardAddressesInEveryFormAreRefused) {
  Dirs d;
  const struct {
    const char* url;
    const char* message;
  } cases[] = {
      {"http://169.254.169.254/latest/meta-data/iam",
       "fetching dataset from 169.254.169.254: address 169.254.169.254 is link-local"},
      {"http://[::1]:9/x.csv", "fetching dataset from [::1]: address ::1 is loopback"},
      {"http://[::ffff:127.0.0.1]:9/x.csv", "(IPv4-mapped 127.0.0.1) is loopback"},
      {"http://2130706433:9/x.csv", "address 127.0.0.1 is loopback"},  // 127.0.0.1 as a number
      {"http://0.0.0.0:9/x.csv", "address 0.0.0.0 is unspecified"},
      {"http://10.1.2.3:9/x.csv", "address 10.1.2.3 is private"},
      {"http://[fe80::1]:9/x.csv", "address fe80::1 is link-local"},
  };
  for (const auto& c : cases) {
    auto s = Resolve(c.url, d.Options());
    EXPECT_EQ(s.status().code(), absl::StatusCode::kPermissionDenied)
        << c.url << ": " << s.status();
    EXPECT_THAT(Message(s), HasSubstr(c.message)) << c.url;
  }
}

TEST(DatasetsTest, EveryRedirectHopIsChecked) {
  Dirs d;
  Site inner("127.0.0.1", [](const std::string&) { return Site::Body(200, kCsv); });
  Site outer("127.0.0.2", [&](const std::string&) { return Site::Redirect(inner.Url("/s.csv")); });
  // Only 127.0.0.2 is allowed: its redirect to 127.0.0.1 is refused at the hop.
  auto s = Resolve(outer.Url("/start.csv"), d.Allowing({"127.0.0.2/32"}));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Message(s),
            "fetching dataset from 127.0.0.2 (redirected to 127.0.0.1): address 127.0.0.1 is "
            "loopback; an operator can allow it with --dataset_allow_cidrs");
  EXPECT_EQ(outer.requests(), 1);
  EXPECT_EQ(inner.requests(), 0);
  // Both allowed: followed.
  auto both = Resolve(outer.Url("/start.csv"), d.Allowing({"127.0.0.0/30"}));
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_EQ(inner.requests(), 1);
}

TEST(DatasetsTest, RedirectsAreBoundedAndStayHttp) {
  Dirs d;
  Site loop("127.0.0.1", [&](const std::string& target) {
    if (target == "/ftp") return Site::Redirect("ftp://127.0.0.1/x.csv");
    if (target == "/file") return Site::Redirect("file:///etc/passwd");
    return Site::Redirect(target + "x");  // forever
  });
  const DatasetOptions options = d.Allowing({"127.0.0.0/8"});
  EXPECT_THAT(Message(Resolve(loop.Url("/a"), options)),
              HasSubstr("fetching dataset from 127.0.0.1: more than 5 redirects"));
  EXPECT_EQ(loop.requests(), 6);
  for (const char* target : {"/ftp", "/file"}) {
    auto s = Resolve(loop.Url(target), options);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(s), HasSubstr("HTTP 302 redirects to a URL that is not http(s)"));
  }
}

TEST(DatasetsTest, ErrorsNameTheHostAndStatusNeverTheBodyOrQuery) {
  Dirs d;
  Site site("127.0.0.1", [](const std::string& target) {
    if (target.rfind("/missing", 0) == 0) return Site::Body(404, "SECRET-BODY-404");
    if (target == "/broken") return Site::Body(500, "SECRET-BODY-500");
    return Site::Body(200, "SECRET,HEADER\nx,y\n1,2\n");
  });
  const DatasetOptions options = d.Allowing({"127.0.0.0/8"});
  auto missing = Resolve(site.Url("/missing.csv?X-Amz-Signature=SECRETSIG"), options);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Message(missing), "fetching dataset from 127.0.0.1: HTTP 404");
  EXPECT_EQ(Message(Resolve(site.Url("/broken"), options)),
            "fetching dataset from 127.0.0.1: HTTP 500");
  // A fetched file that does not parse is described, not quoted.
  auto fetched = Resolve(site.Url("/data.csv"), options);
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  auto demos = ReadDemonstrations(fetched->path);
  EXPECT_EQ(demos.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(demos.status().message()),
              ::testing::AllOf(HasSubstr("obs_*"), ::testing::Not(HasSubstr("SECRET"))));
  // Nothing reachable there.
  auto down = Resolve("http://127.0.0.1:1/data.csv?sig=SECRETSIG", options);
  EXPECT_EQ(down.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Message(down), "fetching dataset from 127.0.0.1: Couldn't connect to server");
}

TEST(DatasetsTest, PinsAndSizeLimits) {
  Dirs d;
  Site site("127.0.0.1", [](const std::string&) { return Site::Body(200, kCsv); });
  DatasetOptions options = d.Allowing({"127.0.0.0/8"});
  const std::string pin = Sha256Hex(kCsv);
  auto pinned = Resolve(site.Url("/p.csv#sha256=") + pin, options);
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  auto upper = Resolve(site.Url("/p.csv#sha256=") + absl::AsciiStrToUpper(pin), options);
  ASSERT_TRUE(upper.ok()) << upper.status();
  EXPECT_EQ(upper->path, pinned->path);  // the same download, from the cache
  const std::string other(64, 'a');
  auto wrong = Resolve(site.Url("/w.csv#sha256=") + other, options);
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Message(wrong), absl::StrCat("fetching dataset from 127.0.0.1: its sha256 is ", pin,
                                         ", not the pinned ", other));
  for (const char* fragment : {"#sha256=abc", "#sha256", "#md5=0", "#", "#sha256="}) {
    auto bad = Resolve(site.Url("/b.csv") + fragment, options);
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << fragment;
    EXPECT_THAT(Message(bad), HasSubstr("#sha256=<64 hex digits>")) << fragment;
  }
  const int before = site.requests();
  options.max_download_bytes = 10;
  auto big = Resolve(site.Url("/big.csv"), options);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Message(big),
            "fetching dataset from 127.0.0.1: the dataset is larger than the 10-byte download "
            "limit");
  EXPECT_EQ(site.requests(), before + 1);
}

TEST(DatasetsTest, OnlyHttpUrlsAreFetched) {
  Dirs d;
  EXPECT_THAT(Message(Resolve("http://", d.Options())), HasSubstr("not a valid http(s) URL"));
  EXPECT_THAT(Message(Resolve("gopher://example.com/", d.Options())),
              HasSubstr("scheme gopher is not supported"));
}

}  // namespace
}  // namespace trainmesh::datasets
