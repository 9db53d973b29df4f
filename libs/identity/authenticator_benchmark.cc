// What authentication adds to each RPC, in isolation: AuthorizeCredential for
// a login token and an API key (both warm in their caches, as for a client
// making many calls), against no credential check at all.
#include "benchmark/benchmark.h"
#include "libs/identity/api_keys.h"
#include "libs/identity/authenticator.h"
#include "libs/identity/jwt.h"
#include "libs/identity/testing/test_keys.h"

namespace trainmesh::identity {
namespace {

const google::protobuf::MethodDescriptor& GetJob() {
  return MethodOf("trainmesh.v1.JobService", "GetJob");
}

std::unique_ptr<Authenticator> Make(const testing::TestIssuer& issuer, bool open) {
  AuthenticatorOptions options;
  options.tokens = std::make_shared<TokenVerifier>(std::vector<IssuerConfig>{issuer.Config()});
  auto cache = std::make_shared<CachingApiKeyResolver>(
      [](absl::string_view) -> absl::StatusOr<trainmesh::v1::Principal> {
        trainmesh::v1::Principal p;
        p.set_subject("alice");
        p.add_scopes("jobs:read");
        return p;
      },
      absl::Seconds(10));
  options.api_keys = [cache](absl::string_view key) { return cache->Resolve(key); };
  options.limiter = std::make_shared<RateLimiter>(std::map<std::string, RateLimit>{{"write", {20, 40}}});
  if (open) options.insecure_fixed_subject = "alice";
  return std::make_unique<Authenticator>(std::move(options));
}

void BM_NoAuth(benchmark::State& state) {
  testing::TestIssuer issuer;
  auto auth = Make(issuer, /*open=*/true);
  for (auto _ : state) benchmark::DoNotOptimize(auth->AuthorizeCredential("", GetJob()));
}

void BM_LoginToken(benchmark::State& state) {
  testing::TestIssuer issuer;
  auto auth = Make(issuer, /*open=*/false);
  const std::string header = "Bearer " + issuer.Token("alice", {"jobs:read"});
  for (auto _ : state) benchmark::DoNotOptimize(auth->AuthorizeCredential(header, GetJob()));
}

void BM_LoginTokenFirstSight(benchmark::State& state) {
  // A token never seen before: the full RS256 signature check.
  testing::TestIssuer issuer;
  auto auth = Make(issuer, /*open=*/false);
  int i = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const std::string header = "Bearer " + issuer.Token("alice-" + std::to_string(i++), {"jobs:read"});
    state.ResumeTiming();
    benchmark::DoNotOptimize(auth->AuthorizeCredential(header, GetJob()));
  }
}

void BM_ApiKey(benchmark::State& state) {
  testing::TestIssuer issuer;
  auto auth = Make(issuer, /*open=*/false);
  const std::string header = "Bearer tm_abcdefgh_0123456789012345678901234567890123456789";
  for (auto _ : state) benchmark::DoNotOptimize(auth->AuthorizeCredential(header, GetJob()));
}

// What the auth service spends signing one job token (at every claim and
// renewal): libjwt parses the PEM key and signs.
void BM_SignJobToken(benchmark::State& state, const char* alg) {
  absl::StatusOr<SigningKey> key = GenerateSigningKey(alg);
  if (!key.ok()) {
    state.SkipWithError("no key");
    return;
  }
  const Claims claims = JobClaims("alice", "00000000-0000-4000-8000-000000000001", 1,
                                  "00000000-0000-4000-8000-000000000002");
  for (auto _ : state) benchmark::DoNotOptimize(SignToken(*key, "trainmesh", "trainmesh", claims, absl::Minutes(15)));
}

BENCHMARK(BM_NoAuth);
BENCHMARK_CAPTURE(BM_SignJobToken, RS256, "RS256");
BENCHMARK_CAPTURE(BM_SignJobToken, ES256, "ES256");
BENCHMARK(BM_LoginToken);
BENCHMARK(BM_LoginToken)->Threads(2);
BENCHMARK(BM_LoginTokenFirstSight);
BENCHMARK(BM_ApiKey);
BENCHMARK(BM_ApiKey)->Threads(2);

}  // namespace
}  // namespace trainmesh::identity

BENCHMARK_MAIN();
