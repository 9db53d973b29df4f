#include "libs/scriptrun/bwrap.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace trainmesh::scriptrun {
namespace {

// Who the script is inside its user namespace: "nobody" in the bound
// /etc/passwd (the host uid it maps to is SandboxOptions' user).
constexpr char kInsideId[] = "65534";

// What scripts need of /etc: the dynamic linker's cache, alternatives (how
// python3-torch finds OpenBLAS), users and groups (getpwuid), time zone and
// CA certificates, Python's site configuration. Never the whole of /etc: it
// holds the host's secrets (shadow, ssh keys, the agent's config).
constexpr const char* kEtc[] = {
    "/etc/ld.so.cache",  "/etc/ld.so.conf", "/etc/ld.so.conf.d",    "/etc/alternatives",
    "/etc/passwd",       "/etc/group",      "/etc/nsswitch.conf",   "/etc/localtime",
    "/etc/timezone",     "/etc/ssl/certs",  "/etc/ssl/openssl.cnf", "/etc/mime.types",
    "/etc/matplotlibrc",
};
// Only with the network.
constexpr const char* kNetworkEtc[] = {"/etc/hosts", "/etc/resolv.conf", "/etc/host.conf",
                                       "/etc/gai.conf"};

}  // namespace

std::vector<std::string> BwrapArgs(const ScriptOptions& o, const Sources& from, int info_fd,
                                   int block_fd) {
  auto source = [&](const std::string& path) {
    auto it = from.find(path);
    return it == from.end() ? path : it->second;
  };
  const SandboxOptions& s = o.sandbox;
  std::vector<std::string> a = {s.bwrap,
                                "--unshare-all",
                                "--unshare-user",
                                "--disable-userns",
                                "--die-with-parent",
                                "--new-session",
                                "--uid",
                                kInsideId,
                                "--gid",
                                kInsideId,
                                "--hostname",
                                "sandbox"};
  if (s.network) a.push_back("--share-net");
  a.insert(a.end(), {"--ro-bind", "/usr", "/usr"});
  // Debian's merged /usr: /bin, /lib... are links into it; elsewhere folders.
  for (const char* top : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
    struct stat st;
    if (lstat(top, &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      const ssize_t n = readlink(top, target, sizeof(target) - 1);
      if (n > 0) a.insert(a.end(), {"--symlink", std::string(target, static_cast<size_t>(n)), top});
    } else if (S_ISDIR(st.st_mode)) {
      a.insert(a.end(), {"--ro-bind", top, top});
    }
  }
  for (const char* f : kEtc) a.insert(a.end(), {"--ro-bind-try", f, f});
  if (s.network) {
    for (const char* f : kNetworkEtc) a.insert(a.end(), {"--ro-bind-try", f, f});
  }
  // Python's site configuration (/etc/python3, /etc/python3.11).
  if (DIR* etc = opendir("/etc")) {
    while (dirent* e = readdir(etc)) {
      if (absl::StartsWith(e->d_name, "python3")) {
        const std::string path = absl::StrCat("/etc/", e->d_name);
        a.insert(a.end(), {"--ro-bind-try", path, path});
      }
    }
    closedir(etc);
  }
  const std::string tmp_bytes = absl::StrCat(std::max<int64_t>(s.limits.tmp_bytes, 1 << 20));
  a.insert(a.end(), {"--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", tmp_bytes,
                     "--tmpfs", "/dev/shm", "--remount-ro", "/dev", "--perms", "1777", "--size",
                     tmp_bytes, "--tmpfs", "/tmp"});
  for (const std::string& path : s.read_only) a.insert(a.end(), {"--ro-bind", source(path), path});
  a.insert(a.end(), {"--bind", source(o.workdir), o.workdir});
  if (!o.output_dir.empty() && o.output_dir != o.workdir) {
    a.insert(a.end(), {"--bind", source(o.output_dir), o.output_dir});
  }
  // The root and /etc are bwrap's own tmpfs: read-only once set up.
  a.insert(a.end(), {"--remount-ro", "/", "--chdir", o.workdir, "--info-fd", absl::StrCat(info_fd),
                     "--block-fd", absl::StrCat(block_fd), "--", o.command});
  a.insert(a.end(), o.args.begin(), o.args.end());
  return a;
}

}  // namespace trainmesh::scriptrun
