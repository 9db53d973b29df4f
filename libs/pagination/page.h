// Keyset pages are read one row longer than they are: the extra row, never
// returned, says whether another page follows. The one place that knows it.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "libs/status/field_violations.h"

namespace trainmesh::pagination {

// How large a page may be, and how large it is when a request says 0.
struct PageSizes {
  int default_size = 50;
  int max = 1000;
};

// The size of the page a request asks for in `field`: `requested`, or the
// default when it is 0. Outside [0, max] it is a violation of `field`.
inline int PageSize(int requested, status::FieldViolations* violations, PageSizes sizes = {},
                    std::string field = "page_size") {
  if (requested < 0 || requested > sizes.max) {
    violations->Add(std::move(field), absl::StrCat("must be between 0 and ", sizes.max));
  }
  return requested == 0 ? sizes.default_size : requested;
}

// How many rows to read for a page of `page_size`.
inline int RowsToRead(int page_size) { return page_size + 1; }

// Cuts `rows`, read with RowsToRead(page_size), to the page. True when
// another page follows.
template <typename T>
bool CutToPage(std::vector<T>& rows, int page_size) {
  if (static_cast<int>(rows.size()) <= page_size) return false;
  rows.resize(static_cast<std::size_t>(page_size));
  return true;
}

// Cuts `rows` to the page and moves them into `out` (a repeated message
// field, e.g. response.mutable_jobs()). True when another page follows.
template <typename T, typename Repeated>
bool FillPage(std::vector<T>& rows, int page_size, Repeated* out) {
  const bool more = CutToPage(rows, page_size);
  for (T& row : rows) *out->Add() = std::move(row);
  return more;
}

}  // namespace trainmesh::pagination
