#include "services/jobs/state_machine.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::jobs {
namespace {

using ::testing::HasSubstr;
using trainmesh::v1::Job;

const State kAll[] = {Job::PENDING,   Job::QUEUED, Job::INITIALIZING, Job::RUNNING,
                      Job::COMPLETED, Job::FAILED, Job::CANCELLED};

TEST(StateMachineTest, HappyPath) {
  EXPECT_TRUE(IsLegalTransition(Job::PENDING, Job::QUEUED));
  EXPECT_TRUE(IsLegalTransition(Job::QUEUED, Job::INITIALIZING));
  EXPECT_TRUE(IsLegalTransition(Job::INITIALIZING, Job::RUNNING));
  EXPECT_TRUE(IsLegalTransition(Job::RUNNING, Job::COMPLETED));
  EXPECT_TRUE(IsLegalTransition(Job::RUNNING, Job::FAILED));
}

TEST(StateMachineTest, EveryNonTerminalStateCanBeCancelled) {
  for (State s : kAll) {
    EXPECT_EQ(IsLegalTransition(s, Job::CANCELLED), !IsTerminal(s)) << StateName(s);
  }
}

TEST(StateMachineTest, LeaseExpiryRequeuesOnlyClaimedJobs) {
  EXPECT_TRUE(IsLegalTransition(Job::RUNNING, Job::QUEUED));
  EXPECT_TRUE(IsLegalTransition(Job::INITIALIZING, Job::QUEUED));
  EXPECT_FALSE(IsLegalTransition(Job::COMPLETED, Job::QUEUED));
  EXPECT_FALSE(IsLegalTransition(Job::QUEUED, Job::QUEUED));
}

TEST(StateMachineTest, TerminalStatesAreFinal) {
  for (State from : kAll) {
    if (!IsTerminal(from)) continue;
    for (State to : kAll) EXPECT_FALSE(IsLegalTransition(from, to));
  }
  absl::Status s = CheckTransition(Job::COMPLETED, Job::CANCELLED);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("COMPLETED, a final state"));
}

TEST(StateMachineTest, NoGoingBackwards) {
  EXPECT_FALSE(IsLegalTransition(Job::RUNNING, Job::PENDING));
  EXPECT_FALSE(IsLegalTransition(Job::QUEUED, Job::PENDING));
  EXPECT_FALSE(IsLegalTransition(Job::PENDING, Job::RUNNING));
  EXPECT_FALSE(IsLegalTransition(Job::PENDING, Job::COMPLETED));
  EXPECT_THAT(CheckTransition(Job::PENDING, Job::RUNNING).message(),
              HasSubstr("cannot go from PENDING to RUNNING"));
}

TEST(StateMachineTest, NamesRoundTrip) {
  for (State s : kAll) EXPECT_EQ(StateFromName(StateName(s)), s);
  EXPECT_EQ(StateFromName("BOGUS"), Job::STATE_UNSPECIFIED);
}

}  // namespace
}  // namespace trainmesh::jobs
