#include "libs/training/nvml.h"

#include <dlfcn.h>


namespace trainmesh::training::nvml {
namespace {

// The few NVML entry points used, with their C ABI (nvml.h is not needed).
using Device = void*;
struct Utilization {
  unsigned int gpu;
  unsigned int memory;
};
struct Memory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

struct Api {
  bool ok = false;
  int (*init)() = nullptr;
  int (*handle)(unsigned int, Device*) = nullptr;
  int (*utilization)(Device, Utilization*) = nullptr;
  int (*memory)(Device, Memory*) = nullptr;
  int (*name)(Device, char*, unsigned int) = nullptr;
};

const Api& Load() {
  static const Api* api = [] {
    auto* a = new Api;
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return a;
    a->init = reinterpret_cast<int (*)()>(dlsym(lib, "nvmlInit_v2"));
    a->handle = reinterpret_cast<int (*)(unsigned int, Device*)>(dlsym(lib, "nvmlDeviceGetHandleByIndex_v2"));
    a->utilization = reinterpret_cast<int (*)(Device, Utilization*)>(dlsym(lib, "nvmlDeviceGetUtilizationRates"));
    a->memory = reinterpret_cast<int (*)(Device, Memory*)>(dlsym(lib, "nvmlDeviceGetMemoryInfo"));
    a->name = reinterpret_cast<int (*)(Device, char*, unsigned int)>(dlsym(lib, "nvmlDeviceGetName"));
    a->ok = a->init != nullptr && a->handle != nullptr && a->utilization != nullptr &&
            a->memory != nullptr && a->name != nullptr && a->init() == 0;
    return a;
  }();
  return *api;
}

std::optional<Device> Handle(int index) {
  if (index < 0 || !Load().ok) return std::nullopt;
  Device d = nullptr;
  if (Load().handle(static_cast<unsigned int>(index), &d) != 0) return std::nullopt;
  return d;
}

}  // namespace

bool Available() { return Load().ok; }

std::optional<Usage> Sample(int index) {
  auto d = Handle(index);
  if (!d.has_value()) return std::nullopt;
  Utilization u{};
  Memory m{};
  if (Load().utilization(*d, &u) != 0 || Load().memory(*d, &m) != 0) return std::nullopt;
  return Usage{u.gpu / 100.0, static_cast<int64_t>(m.used), static_cast<int64_t>(m.total)};
}

std::optional<Gpu> Describe(int index) {
  auto d = Handle(index);
  if (!d.has_value()) return std::nullopt;
  char name[96] = {};
  Memory m{};
  if (Load().name(*d, name, sizeof(name)) != 0 || Load().memory(*d, &m) != 0) return std::nullopt;
  return Gpu{name, static_cast<int64_t>(m.total)};
}

}  // namespace trainmesh::training::nvml
