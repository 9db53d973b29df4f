#include "libs/pg/ids.h"

#include "gtest/gtest.h"

namespace trainmesh::pg {
namespace {

TEST(IdsTest, OnlyTheTextualFormOfAUuid) {
  EXPECT_TRUE(IsUuid("123e4567-e89b-12d3-a456-426614174000"));
  EXPECT_TRUE(IsUuid("123E4567-E89B-12D3-A456-426614174000"));
  EXPECT_FALSE(IsUuid(""));
  EXPECT_FALSE(IsUuid("123e4567e89b12d3a456426614174000"));        // no dashes
  EXPECT_FALSE(IsUuid("123e4567-e89b-12d3-a456-42661417400"));     // short
  EXPECT_FALSE(IsUuid("123e4567-e89b-12d3-a456-4266141740000"));   // long
  EXPECT_FALSE(IsUuid("123e4567-e89b-12d3-a456-42661417400g"));    // not hex
  EXPECT_FALSE(IsUuid("123e4567-e89b-12d3-a456_426614174000"));    // dash misplaced
  EXPECT_FALSE(IsUuid("' OR 1=1 --                         "));
}

}  // namespace
}  // namespace trainmesh::pg
