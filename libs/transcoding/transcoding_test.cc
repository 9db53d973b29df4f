// Transcoding on the real service descriptors: path templates, the route
// table built from google.api.http, requests from paths, queries and bodies
// (with field violations for what does not fit), responses as proto3 JSON.
#include "libs/transcoding/transcoding.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/status/field_violations.h"
#include "protos/registry.h"
#include "trainmesh/v1/jobs.pb.h"
#include "trainmesh/v1/metrics.pb.h"

namespace trainmesh::transcoding {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

std::vector<std::string> Split(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 1;
  while (true) {
    const size_t slash = path.find('/', start);
    out.push_back(path.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) return out;
    start = slash + 1;
  }
}

TEST(PathTemplateTest, ParsesAndMatchesVariablesWildcardsAndVerbs) {
  auto job = PathTemplate::Parse("/v1/jobs/{id}");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(*job->Match(Split("/v1/jobs/42"), ""), ElementsAre(Pair("id", "42")));
  EXPECT_FALSE(job->Match(Split("/v1/jobs/42/events"), "").has_value());
  EXPECT_FALSE(job->Match(Split("/v1/jobs/"), "").has_value());  // an empty id matches nothing
  EXPECT_FALSE(job->Match(Split("/v1/jobs/42"), "cancel").has_value());

  auto cancel = PathTemplate::Parse("/v1/jobs/{id}:cancel");
  ASSERT_TRUE(cancel.ok());
  EXPECT_THAT(*cancel->Match(Split("/v1/jobs/42"), "cancel"), ElementsAre(Pair("id", "42")));
  EXPECT_FALSE(cancel->Match(Split("/v1/jobs/42"), "").has_value());

  auto named = PathTemplate::Parse("/v1/{name=projects/*/jobs/*}/events");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_THAT(*named->Match(Split("/v1/projects/p/jobs/j/events"), ""), ElementsAre(Pair("name", "projects/p/jobs/j")));
  EXPECT_FALSE(named->Match(Split("/v1/teams/p/jobs/j/events"), "").has_value());

  auto rest = PathTemplate::Parse("/static/{path=**}");
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_THAT(*rest->Match(Split("/static/js/app.js"), ""), ElementsAre(Pair("path", "js/app.js")));

  for (const char* bad : {"v1/jobs", "/v1/{id", "/v1/**/x", "/v1/{9x}", "/v1/a{id}", "/v1//x", "/v1/x:"}) {
    EXPECT_EQ(PathTemplate::Parse(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = Router::FromServices(proto::Services());
    ASSERT_TRUE(r.ok()) << r.status();
    router_ = std::make_unique<Router>(*std::move(r));
  }
  std::unique_ptr<Router> router_;
};

TEST_F(RouterTest, EveryAnnotatedMethodHasARouteAndPathsResolve) {
  int annotated = 0;
  for (const auto* s : proto::Services()) {
    for (int m = 0; m < s->method_count(); ++m) annotated += s->method(m)->options().HasExtension(google::api::http);
  }
  EXPECT_GT(annotated, 30);
  EXPECT_EQ(static_cast<int>(router_->routes().size()), annotated);

  auto get = router_->Find("GET", "/v1/jobs/0b9e");
  ASSERT_TRUE(get.ok()) << get.status();
  EXPECT_EQ(get->route->grpc_path, "/trainmesh.v1.JobService/GetJob");
  EXPECT_THAT(get->bindings, ElementsAre(Pair("id", "0b9e")));

  auto cancel = router_->Find("POST", "/v1/jobs/0b9e:cancel");
  ASSERT_TRUE(cancel.ok()) << cancel.status();
  EXPECT_EQ(cancel->route->method->name(), "CancelJob");
  auto watch = router_->Find("GET", "/v1/jobs/0b9e:watch");
  ASSERT_TRUE(watch.ok());
  EXPECT_TRUE(watch->route->method->server_streaming());
  auto escaped = router_->Find("GET", "/v1/recipes/lora%2Dlm");
  ASSERT_TRUE(escaped.ok());
  EXPECT_THAT(escaped->bindings, ElementsAre(Pair("name", "lora-lm")));

  EXPECT_EQ(router_->Find("DELETE", "/v1/jobs/0b9e").status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(router_->Find("GET", "/v1/nothing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(router_->Find("GET", "/v1/jobs/%zz").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RouterTest, RequestsComeFromPathQueryAndBodyByTheProto3JsonMapping) {
  auto create = router_->Find("POST", "/v1/jobs");
  ASSERT_TRUE(create.ok());
  v1::CreateJobRequest c;
  ASSERT_TRUE(BuildRequest(*create, "",
                           R"({"model": "mlp-policy", "datasetUrl": "synthetic://reach",
                               "hyperparameters": {"steps": 5}, "labels": {"team": "robots"}})",
                           &c)
                  .ok());
  EXPECT_EQ(c.job().model(), "mlp-policy");
  EXPECT_EQ(c.job().dataset_url(), "synthetic://reach");
  EXPECT_EQ(c.job().hyperparameters().fields().at("steps").number_value(), 5);
  EXPECT_EQ(c.job().labels().at("team"), "robots");

  absl::Status unknown = BuildRequest(*create, "", R"({"model": "x", "colour": "red"})", &c);
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(status::FieldViolationsOf(unknown).size(), 1u);
  EXPECT_EQ(status::FieldViolationsOf(unknown)[0].field, "job");
  EXPECT_THAT(status::FieldViolationsOf(unknown)[0].description, HasSubstr("colour"));
  EXPECT_EQ(BuildRequest(*create, "", "{not json", &c).code(), absl::StatusCode::kInvalidArgument);

  auto list = router_->Find("GET", "/v1/jobs");
  ASSERT_TRUE(list.ok());
  v1::ListJobsRequest l;
  ASSERT_TRUE(BuildRequest(*list, "pageSize=5&states=RUNNING&states=QUEUED&labels=team%3Drobots&retry_of=a+b", "", &l).ok());
  EXPECT_EQ(l.page_size(), 5);
  ASSERT_EQ(l.states_size(), 2);
  EXPECT_EQ(l.states(0), v1::Job::RUNNING);
  EXPECT_EQ(l.states(1), v1::Job::QUEUED);
  EXPECT_EQ(l.labels(0), "team=robots");
  EXPECT_EQ(l.retry_of(), "a b");

  absl::Status bad = BuildRequest(*list, "pageSize=many&colour=red&states=SLEEPING", "", &l);
  std::vector<std::string> fields;
  for (const auto& v : status::FieldViolationsOf(bad)) fields.push_back(v.field);
  EXPECT_THAT(fields, ElementsAre("pageSize", "colour", "states"));
  EXPECT_EQ(BuildRequest(*list, "", R"({"pageSize": 1})", &l).code(), absl::StatusCode::kInvalidArgument);

  // body "*": the path binding wins, the query carries nothing.
  auto cancel = router_->Find("POST", "/v1/jobs/j1:cancel");
  v1::CancelJobRequest x;
  ASSERT_TRUE(BuildRequest(*cancel, "", R"({"id": "other", "reason": "enough"})", &x).ok());
  EXPECT_EQ(x.id(), "j1");
  EXPECT_EQ(x.reason(), "enough");
  EXPECT_EQ(BuildRequest(*cancel, "reason=x", "", &x).code(), absl::StatusCode::kInvalidArgument);

  // A query parameter cannot set again what the path binds, by either name.
  auto metrics = router_->Find("GET", "/v1/jobs/a1/metrics:stream");
  ASSERT_TRUE(metrics.ok());
  v1::StreamMetricsRequest m;
  ASSERT_TRUE(BuildRequest(*metrics, "afterSeq=3", "", &m).ok());
  EXPECT_EQ(m.job_id(), "a1");
  for (const char* query : {"jobId=b2", "job_id=b2", "afterSeq=3&jobId=b2"}) {
    absl::Status twice = BuildRequest(*metrics, query, "", &m);
    EXPECT_EQ(twice.code(), absl::StatusCode::kInvalidArgument) << query;
    EXPECT_THAT(status::FieldViolationsOf(twice).back().description, HasSubstr("bound by the path")) << query;
  }
}

TEST_F(RouterTest, ResponsesAreProto3JsonAndStatusesMapLikeEnvoys) {
  auto get = router_->Find("GET", "/v1/jobs/j1");
  v1::Job job;
  job.set_id("j1");
  job.set_dataset_url("synthetic://reach");
  job.set_state(v1::Job::RUNNING);
  auto text = ResponseJson(*get->route, job);
  ASSERT_TRUE(text.ok());
  EXPECT_THAT(*text, HasSubstr(R"("datasetUrl":"synthetic://reach")"));
  EXPECT_THAT(*text, HasSubstr(R"("state":"RUNNING")"));

  EXPECT_EQ(HttpStatus(0), 200);
  EXPECT_EQ(HttpStatus(3), 400);
  EXPECT_EQ(HttpStatus(5), 404);
  EXPECT_EQ(HttpStatus(7), 403);
  EXPECT_EQ(HttpStatus(8), 429);
  EXPECT_EQ(HttpStatus(14), 503);
  EXPECT_EQ(HttpStatus(16), 401);

  std::string out;
  EXPECT_TRUE(PercentDecode("a%20b+c", true, &out));
  EXPECT_EQ(out, "a b c");
  EXPECT_TRUE(PercentDecode("a+b", false, &out));
  EXPECT_EQ(out, "a+b");
  EXPECT_FALSE(PercentDecode("%4", false, &out));
  EXPECT_FALSE(PercentDecode("%g0", false, &out));
}

}  // namespace
}  // namespace trainmesh::transcoding
