#include "libs/identity/verifier.h"

#include <jwt.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "libs/identity/jwt.h"
#include "libs/identity/keys.h"
#include "libs/identity/testing/test_keys.h"

namespace trainmesh::identity {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::TestIssuer;
using trainmesh::v1::Principal;

// A JWKS source that counts fetches and can change its keys.
struct CountingSource {
  std::atomic<int> fetches{0};
  absl::Mutex mu;
  trainmesh::v1::Jwks jwks ABSL_GUARDED_BY(mu);
  absl::Status error ABSL_GUARDED_BY(mu);
  // While true, a fetch waits (the test holds it in flight).
  bool hold ABSL_GUARDED_BY(mu) = false;

  std::shared_ptr<JwksSource> Source() {
    return JwksFromFunction([this]() -> absl::StatusOr<trainmesh::v1::Jwks> {
      ++fetches;
      absl::MutexLock lock(&mu);
      mu.Await(absl::Condition(+[](bool* held) { return !*held; }, &hold));
      if (!error.ok()) return error;
      return jwks;
    });
  }
  void Fail(absl::Status status) {
    absl::MutexLock lock(&mu);
    error = std::move(status);
  }
  void Hold(bool held) {
    absl::MutexLock lock(&mu);
    hold = held;
  }
  void Set(trainmesh::v1::Jwks keys) {
    absl::MutexLock lock(&mu);
    jwks = std::move(keys);
  }
};

IssuerConfig Own(const TestIssuer& issuer, std::shared_ptr<JwksSource> source) {
  IssuerConfig config = issuer.Config();
  config.jwks = std::move(source);
  return config;
}

// The issuer's config with its keys served by `source` (which counts fetches).
IssuerConfig Counted(const TestIssuer& issuer, CountingSource* source) {
  source->Set(issuer.Jwks());
  return Own(issuer, source->Source());
}

std::string Raw(jwt_alg_t alg, const std::string& key, const std::string& kid,
                const std::string& iss = "trainmesh") {
  jwt_t* jwt = nullptr;
  jwt_new(&jwt);
  jwt_add_header(jwt, "kid", kid.c_str());
  jwt_add_grant(jwt, "sub", "mallory");
  jwt_add_grant(jwt, "iss", iss.c_str());
  jwt_add_grant(jwt, "aud", "trainmesh");
  jwt_add_grant(jwt, "scope", "admin");
  jwt_add_grant_int(jwt, "exp", static_cast<long>(absl::ToUnixSeconds(absl::Now()) + 3600));
  jwt_set_alg(jwt, alg, key.empty() ? nullptr : reinterpret_cast<const unsigned char*>(key.data()),
              static_cast<int>(key.size()));
  char* out = jwt_encode_str(jwt);
  std::string token(out);
  free(out);
  jwt_free(jwt);
  return token;
}

absl::Status Verify(TokenVerifier& verifier, const std::string& token) {
  return verifier.Verify(token).status();
}

TEST(VerifierTest, ValidTokensBecomePrincipals) {
  for (const char* alg : {"RS256", "ES256"}) {
    TestIssuer issuer("trainmesh", alg);
    TokenVerifier verifier({issuer.Config()});
    Claims claims;
    claims.subject = "u-1";
    claims.name = "alice";
    claims.scopes = {"jobs:read", "agent"};
    absl::StatusOr<Principal> p = verifier.Verify(issuer.TokenWith(claims));
    ASSERT_TRUE(p.ok()) << alg << ": " << p.status();
    EXPECT_EQ(p->subject(), "u-1");
    EXPECT_EQ(p->name(), "alice");
    EXPECT_EQ(p->kind(), Principal::USER);
    EXPECT_EQ(p->issuer(), "trainmesh");
    EXPECT_THAT(p->scopes(), ElementsAre("jobs:read", "agent"));
  }
}

TEST(VerifierTest, ExpiryAndNotBeforeHonourTheSkew) {
  TestIssuer issuer;
  TokenVerifier verifier({issuer.Config()});
  const absl::Time now = absl::Now();
  const std::string expired = issuer.Token("u", {}, absl::Hours(1), now - absl::Hours(2));
  EXPECT_THAT(Verify(verifier, expired).message(), HasSubstr("expired"));
  EXPECT_EQ(Verify(verifier, expired).code(), absl::StatusCode::kUnauthenticated);
  const std::string just_expired = issuer.Token("u", {}, absl::Hours(1), now - absl::Hours(1) - absl::Seconds(30));
  EXPECT_TRUE(Verify(verifier, just_expired).ok());  // within 60 s of skew
  const std::string future = issuer.Token("u", {}, absl::Hours(1), now + absl::Minutes(10));
  EXPECT_THAT(Verify(verifier, future).message(), HasSubstr("not valid yet"));
}

TEST(VerifierTest, ForgedOrForeignTokensAreRefused) {
  TestIssuer issuer;
  TokenVerifier verifier({issuer.Config()});
  // Wrong signature: another key claiming the trusted key's id.
  SigningKey impostor = *GenerateSigningKey("RS256");
  impostor.kid = issuer.key().kid;
  Claims claims;
  claims.subject = "mallory";
  claims.scopes = {"admin"};
  EXPECT_THAT(Verify(verifier, *SignToken(impostor, "trainmesh", "trainmesh", claims, absl::Hours(1))).message(),
              HasSubstr("bad signature"));
  // Tampered claims.
  std::string token = issuer.Token("alice", {"jobs:read"});
  std::string forged_claims = Base64UrlEncode(
      R"({"sub":"alice","iss":"trainmesh","aud":"trainmesh","scope":"admin","exp":99999999999})");
  size_t a = token.find('.'), b = token.rfind('.');
  EXPECT_THAT(Verify(verifier, token.substr(0, a + 1) + forged_claims + token.substr(b)).message(),
              HasSubstr("bad signature"));
  // Wrong issuer and wrong audience.
  TestIssuer other("https://evil.example");
  EXPECT_THAT(Verify(verifier, other.Token("u")).message(), HasSubstr("untrusted issuer"));
  EXPECT_THAT(Verify(verifier, issuer.TokenWith(claims, absl::Hours(1), absl::Now(), "other-app")).message(),
              HasSubstr("wrong audience"));
  // Garbage.
  EXPECT_EQ(Verify(verifier, "a.b.c").code(), absl::StatusCode::kUnauthenticated);
}

TEST(VerifierTest, AlgorithmIsPinnedPerKey) {
  TestIssuer issuer;
  TokenVerifier verifier({issuer.Config()});
  // "none": no signature at all.
  EXPECT_THAT(Verify(verifier, Raw(JWT_ALG_NONE, "", issuer.key().kid)).message(),
              HasSubstr("\"none\" is not accepted"));
  // HS256 keyed with the RSA public key (the classic confusion attack).
  EXPECT_THAT(Verify(verifier, Raw(JWT_ALG_HS256, issuer.key().public_pem, issuer.key().kid)).message(),
              HasSubstr("\"HS256\" is not accepted"));
  // Another RSA algorithm than the key's.
  EXPECT_THAT(Verify(verifier, Raw(JWT_ALG_RS512, issuer.key().private_pem, issuer.key().kid)).message(),
              HasSubstr("does not match key"));
}

TEST(VerifierTest, UnknownKidRefreshesOnceThenIsRefused) {
  TestIssuer issuer;
  CountingSource source;
  IssuerConfig config = Counted(issuer, &source);
  config.min_refresh_interval = absl::Hours(1);
  config.min_fetch_gap = absl::ZeroDuration();
  TokenVerifier verifier({config});
  ASSERT_TRUE(Verify(verifier, issuer.Token("u")).ok());
  EXPECT_EQ(source.fetches.load(), 1);
  SigningKey stranger = *GenerateSigningKey("RS256");
  Claims claims;
  claims.subject = "u";
  const std::string token = *SignToken(stranger, "trainmesh", "trainmesh", claims, absl::Hours(1));
  EXPECT_THAT(Verify(verifier, token).message(), HasSubstr("unknown key id"));
  EXPECT_EQ(source.fetches.load(), 2);  // a new kid is worth one fetch…
  // …but the same unknown kid again is refused without fetching.
  for (int i = 0; i < 5; ++i) EXPECT_THAT(Verify(verifier, token).message(), HasSubstr("unknown key id"));
  EXPECT_EQ(source.fetches.load(), 2);
}

// Made-up kids, each different, share one fetch budget: the burst's fetches
// find them unknown (UNAUTHENTICATED); once it is spent they are answered at
// once with UNAVAILABLE and RetryInfo (the old verifier slept out the gap on
// the worker, which here would be an hour) and the source is not asked again.
TEST(VerifierTest, DistinctUnknownKidsNeverSleepAndShareOneFetchBudget) {
  TestIssuer issuer;
  CountingSource source;
  IssuerConfig config = Counted(issuer, &source);
  config.min_fetch_gap = absl::Hours(1);
  TokenVerifier verifier({config});
  ASSERT_TRUE(Verify(verifier, issuer.Token("u")).ok());
  ASSERT_EQ(source.fetches.load(), 1);
  SigningKey stranger = *GenerateSigningKey("RS256");
  std::vector<std::thread> threads;
  std::atomic<int> refused{0}, later{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        SigningKey forged = stranger;
        forged.kid = absl::StrCat("made-up-", t, "-", i);
        Claims claims;
        claims.subject = "mallory";
        absl::Status s = Verify(
            verifier, *SignToken(forged, "trainmesh", "trainmesh", claims, absl::Hours(1)));
        if (absl::IsUnauthenticated(s) && absl::StrContains(s.message(), "unknown key id")) ++refused;
        if (absl::IsUnavailable(s) && s.GetPayload("type.googleapis.com/google.rpc.RetryInfo")) ++later;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(refused.load() + later.load(), 200);
  EXPECT_EQ(source.fetches.load(), config.fetch_burst);  // the burst, then nothing
  // Each fetch checked at least the kid that asked for it.
  EXPECT_GE(refused.load(), config.fetch_burst - 1);
  EXPECT_TRUE(Verify(verifier, issuer.Token("v")).ok());  // good tokens are unaffected
}

// Concurrent first requests wait for the one initial fetch instead of each
// fetching, and none is refused while it runs.
TEST(VerifierTest, ConcurrentFirstRequestsShareTheInitialFetch) {
  TestIssuer issuer;
  CountingSource source;
  IssuerConfig config = Counted(issuer, &source);
  source.Hold(true);
  config.min_fetch_gap = absl::Hours(1);
  TokenVerifier verifier({config});
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      if (Verify(verifier, issuer.Token(absl::StrCat("u", t))).ok()) ++ok;
    });
  }
  while (source.fetches.load() == 0) std::this_thread::yield();
  source.Hold(false);
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 8);
  EXPECT_EQ(source.fetches.load(), 1);
}

// A fetch that failed is UNAVAILABLE, not "unknown key id", and is not
// remembered against the kid: once the source is back the token verifies.
TEST(VerifierTest, AFailedFetchIsNotANegativeAnswer) {
  TestIssuer issuer;
  CountingSource source;
  IssuerConfig config = Counted(issuer, &source);
  source.Fail(absl::UnavailableError("auth service: connection refused"));
  config.min_refresh_interval = absl::Hours(1);
  config.min_fetch_gap = absl::ZeroDuration();
  TokenVerifier verifier({config});
  const std::string token = issuer.Token("u");
  absl::Status first = Verify(verifier, token);
  EXPECT_TRUE(absl::IsUnavailable(first)) << first;
  source.Fail(absl::OkStatus());
  EXPECT_TRUE(Verify(verifier, token).ok());
  // Keys loaded, then the source fails again: known kids keep verifying and
  // an unknown kid is UNAVAILABLE (it might be a fresh rotation).
  source.Fail(absl::UnavailableError("auth service: connection refused"));
  SigningKey stranger = *GenerateSigningKey("ES256");
  Claims claims;
  claims.subject = "u";
  absl::Status fresh =
      Verify(verifier, *SignToken(stranger, "trainmesh", "trainmesh", claims, absl::Hours(1)));
  EXPECT_TRUE(absl::IsUnavailable(fresh)) << fresh;
  EXPECT_TRUE(Verify(verifier, issuer.Token("v")).ok());
}

TEST(VerifierTest, RotatedKeysArePickedUpWithoutRestart) {
  TestIssuer issuer;
  CountingSource source;
  IssuerConfig config = Counted(issuer, &source);
  config.min_refresh_interval = absl::ZeroDuration();
  config.min_fetch_gap = absl::ZeroDuration();
  TokenVerifier verifier({config});
  const std::string old_token = issuer.Token("u");
  ASSERT_TRUE(Verify(verifier, old_token).ok());
  // Rotation: the auth service now signs with B and still serves A.
  SigningKey b = *GenerateSigningKey("ES256");
  trainmesh::v1::Jwks both = issuer.Jwks();
  *both.add_keys() = *PublicJwk(b);
  source.Set(both);
  Claims claims;
  claims.subject = "u2";
  ASSERT_TRUE(Verify(verifier, *SignToken(b, "trainmesh", "trainmesh", claims, absl::Hours(1))).ok());
  ASSERT_TRUE(verifier.Verify(issuer.Token("u3")).ok());  // A still verifies
}

TEST(VerifierTest, ExternalIssuersMapClaimsAndNeverMintJobTokens) {
  TestIssuer clerk("https://clerk.example.dev", "RS256");
  IssuerConfig config = clerk.Config();
  config.scopes_from_token = false;
  config.allow_job_tokens = false;
  config.subject_prefix = "clerk:";
  config.default_scopes = {"jobs:read"};
  TokenVerifier verifier({config});
  Claims claims;
  claims.subject = "user_2abc";
  claims.scopes = {"admin"};  // not trusted from an external provider
  absl::StatusOr<Principal> p = verifier.Verify(clerk.TokenWith(claims));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->subject(), "clerk:user_2abc");
  EXPECT_THAT(p->scopes(), ElementsAre("jobs:read"));
  claims.kind = "job";
  claims.job_id = "j";
  EXPECT_THAT(Verify(verifier, clerk.TokenWith(claims)).message(), HasSubstr("job tokens"));
}

TEST(VerifierTest, JobTokensCarryTheirBinding) {
  TestIssuer issuer;
  TokenVerifier verifier({issuer.Config()});
  absl::StatusOr<Principal> p =
      verifier.Verify(issuer.TokenWith(JobClaims("owner-1", "job-9", 3, "agent-7")));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->kind(), Principal::JOB);
  EXPECT_EQ(p->subject(), "owner-1");
  EXPECT_EQ(p->job_id(), "job-9");
  EXPECT_EQ(p->attempt(), 3);
  EXPECT_EQ(p->agent_id(), "agent-7");
}

// Serves `body` over HTTP/1.0 to every connection, on a port of its own.
class TinyHttpServer {
 public:
  explicit TinyHttpServer(std::string body) : body_(std::move(body)) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    listen(fd_, 8);
    thread_ = std::thread([this] {
      while (true) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        char buf[4096];
        (void)!read(c, buf, sizeof(buf));
        std::string response = absl::StrCat("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
                                            "Content-Length: ", body_.size(), "\r\n\r\n", body_);
        (void)!write(c, response.data(), response.size());
        close(c);
      }
    });
  }
  ~TinyHttpServer() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  int port() const { return port_; }

 private:
  std::string body_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

TEST(VerifierTest, JwksFromUrlAndFile) {
  TestIssuer issuer("https://idp.example");
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(issuer.Jwks(), &json).ok());
  // Providers add members we do not know ("x5c", "x5t"): they are ignored.
  json.insert(json.find("\"kid\""), "\"x5t\":\"abc\",");
  TinyHttpServer server(json);
  IssuerConfig by_url = issuer.Config();
  by_url.jwks = JwksFromUrl(absl::StrCat("http://127.0.0.1:", server.port(), "/jwks.json"));
  TokenVerifier url_verifier({by_url});
  EXPECT_TRUE(Verify(url_verifier, issuer.Token("u")).ok());

  const std::string path = absl::StrCat(::testing::TempDir(), "/jwks.json");
  std::ofstream(path) << json;
  IssuerConfig by_file = issuer.Config();
  by_file.jwks = JwksFromFile(path);
  TokenVerifier file_verifier({by_file});
  EXPECT_TRUE(Verify(file_verifier, issuer.Token("u")).ok());

  IssuerConfig unreachable = issuer.Config();
  unreachable.jwks = JwksFromUrl("http://127.0.0.1:1/jwks.json");
  TokenVerifier down({unreachable});
  EXPECT_EQ(Verify(down, issuer.Token("u")).code(), absl::StatusCode::kUnavailable);
}

TEST(VerifierTest, TrustedIssuersFile) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/issuers.json");
  std::ofstream(path) << R"({"issuers": [{"issuer": "https://clerk.example.dev",
      "jwksUrl": "https://clerk.example.dev/.well-known/jwks.json", "audience": "trainmesh",
      "subjectPrefix": "clerk:", "defaultScopes": ["jobs:read"]}]})";
  absl::StatusOr<std::vector<IssuerConfig>> issuers = TrustedIssuersFromFile(path);
  ASSERT_TRUE(issuers.ok()) << issuers.status();
  ASSERT_EQ(issuers->size(), 1u);
  EXPECT_EQ((*issuers)[0].subject_prefix, "clerk:");
  EXPECT_FALSE((*issuers)[0].allow_job_tokens);
  std::ofstream(path) << R"({"issuers": [{"issuer": "x"}]})";
  EXPECT_EQ(TrustedIssuersFromFile(path).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace trainmesh::identity
