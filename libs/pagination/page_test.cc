#include "libs/pagination/page.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::pagination {
namespace {

TEST(PageTest, TheExtraRowSaysWhetherMoreFollow) {
  EXPECT_EQ(RowsToRead(50), 51);
  std::vector<int> rows = {1, 2, 3, 4};  // read for a page of 3
  EXPECT_TRUE(CutToPage(rows, 3));
  EXPECT_THAT(rows, ::testing::ElementsAre(1, 2, 3));
  std::vector<int> last = {1, 2, 3};  // exactly a page: nothing follows
  EXPECT_FALSE(CutToPage(last, 3));
  EXPECT_THAT(last, ::testing::ElementsAre(1, 2, 3));
  std::vector<int> none;
  EXPECT_FALSE(CutToPage(none, 3));
  EXPECT_TRUE(none.empty());
}

}  // namespace
}  // namespace trainmesh::pagination
