#include "libs/status/grpc_status.h"

#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "libs/status/field_violations.h"
#include "libs/status/status_macros.h"

namespace trainmesh::status {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(FieldViolationsTest, EmptyIsOk) {
  FieldViolations violations;
  EXPECT_TRUE(violations.ToStatus().ok());
}

TEST(FieldViolationsTest, CarriesEveryViolation) {
  FieldViolations violations;
  violations.Add("job.model", "unknown recipe \"nope\"");
  violations.Add("job.hyperparameters.steps", "must be >= 1");
  absl::Status status = violations.ToStatus();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("job.model: unknown recipe"));
  EXPECT_THAT(status.message(), HasSubstr("job.hyperparameters.steps: must be >= 1"));
  EXPECT_THAT(FieldViolationsOf(status),
              ElementsAre(FieldViolation{"job.model", "unknown recipe \"nope\""},
                          FieldViolation{"job.hyperparameters.steps", "must be >= 1"}));
}

TEST(GrpcStatusTest, OkMapsToOk) { EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok()); }

TEST(GrpcStatusTest, KeepsCodeAndMessage) {
  grpc::Status s = ToGrpcStatus(absl::NotFoundError("job 42 not found"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "job 42 not found");
  EXPECT_TRUE(s.error_details().empty());
  EXPECT_EQ(ToGrpcStatus(absl::FailedPreconditionError("x")).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(ToGrpcStatus(absl::ResourceExhaustedError("x")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST(GrpcStatusTest, FieldViolationsBecomeBadRequestDetails) {
  grpc::Status s = ToGrpcStatus(InvalidField("job.dataset_url", "scheme must be one of …"));
  ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::Status rich;
  ASSERT_TRUE(rich.ParseFromString(s.error_details()));
  EXPECT_EQ(rich.code(), 3);
  ASSERT_EQ(rich.details_size(), 1);
  google::rpc::BadRequest bad_request;
  ASSERT_TRUE(rich.details(0).UnpackTo(&bad_request));
  ASSERT_EQ(bad_request.field_violations_size(), 1);
  EXPECT_EQ(bad_request.field_violations(0).field(), "job.dataset_url");
}

TEST(GrpcStatusTest, RoundTripKeepsViolations) {
  absl::Status original = InvalidField("page_size", "must be <= 1000");
  absl::Status back = FromGrpcStatus(ToGrpcStatus(original));
  EXPECT_EQ(back.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(FieldViolationsOf(back),
              ElementsAre(FieldViolation{"page_size", "must be <= 1000"}));
}

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  TM_ASSIGN_OR_RETURN(int half, Half(x));
  TM_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

absl::Status CheckEven(int x) {
  TM_RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

// Messages and violations quote client bytes; what goes on the wire is UTF-8
// (a proto3 string, JSON at the gateway), each stray byte one U+FFFD.
TEST(GrpcStatusTest, TextsBecomeValidUtf8) {
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  for (const char* bad : {"\xFF", "\xC0\xAF" /* overlong '/' */, "\xED\xA0\x80" /* surrogate */,
                          "\xF4\x90\x80\x80" /* past U+10FFFF */, "\xE2\x82" /* cut short */}) {
    EXPECT_FALSE(IsValidUtf8(bad)) << bad;
  }
  EXPECT_EQ(ValidUtf8("a\xFF" "b\xC3\xA9"), "a\xEF\xBF\xBD" "b\xC3\xA9");
  EXPECT_EQ(ValidUtf8("\xE2\x82"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  FieldViolations v;
  v.Add("na\xFFme", "no route for /v1/\xC0\xAF");
  const absl::Status status = v.ToStatus("bad");
  const grpc::Status wire = ToGrpcStatus(absl::Status(status.code(), "path /v1/\x80 " + std::string(status.message())));
  EXPECT_TRUE(IsValidUtf8(wire.error_message()));
  for (const FieldViolation& f : FieldViolationsOf(status)) {
    EXPECT_TRUE(IsValidUtf8(f.field) && IsValidUtf8(f.description)) << f.field;
  }
  EXPECT_EQ(FieldViolationsOf(status).at(0).field, "na\xEF\xBF\xBDme");
}

TEST(StatusMacrosTest, PropagateErrorsAndValues) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(3).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace trainmesh::status
