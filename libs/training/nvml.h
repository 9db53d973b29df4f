// GPU utilisation and memory from NVML, loaded at run time (dlopen) so the
// trainer runs on machines without the NVIDIA driver. Every call is a no-op
// returning nullopt when NVML is absent.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace trainmesh::training::nvml {

struct Usage {
  double gpu_utilization = 0;  // 0..1
  int64_t gpu_memory_used_bytes = 0;
  int64_t gpu_memory_total_bytes = 0;
};

struct Gpu {
  std::string name;
  int64_t memory_bytes = 0;
};

bool Available();
// nullopt for index < 0, without NVML, or when the query fails.
std::optional<Usage> Sample(int index);
std::optional<Gpu> Describe(int index);

}  // namespace trainmesh::training::nvml
