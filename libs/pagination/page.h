// Keyset pages are read one row longer than they are: the extra row, never
// returned, says whether another page follows. The one place that knows it.
#pragma once

#include <cstddef>
#include <vector>

namespace trainmesh::pagination {

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

}  // namespace trainmesh::pagination
