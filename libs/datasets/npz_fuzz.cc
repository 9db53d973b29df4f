// libFuzzer target for the .npz reader, as far as a downloaded archive's bytes
// go: the archive, each array in it, and the demonstrations made of them. Any
// input is an error or arrays that keep the parser's promises (shapes that
// match the data, no more floats than the input has bytes for), never a
// crash, an unbounded allocation or an error quoting the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "libs/datasets/formats.h"
#include "libs/datasets/fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace trainmesh::datasets;
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  NpzLimits limits;
  limits.max_arrays = 64;
  auto arrays = ParseNpz(input, limits);
  if (!arrays.ok()) {
    fuzzing::CheckError(arrays.status());
    return 0;
  }
  size_t floats = 0;
  for (const auto& [name, m] : *arrays) {
    if (m.rows < 0 || m.cols < 0) std::abort();
    if (m.data.size() != static_cast<size_t>(m.rows) * static_cast<size_t>(m.cols)) std::abort();
    floats += m.data.size();
  }
  if (floats * 4 > size) std::abort();  // each float came from at least 4 input bytes
  fuzzing::CheckDemonstrations(DemonstrationsFromArrays(std::move(*arrays)));
  return 0;
}
