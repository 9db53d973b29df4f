#include "libs/netpolicy/address_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace trainmesh::netpolicy {
namespace {

struct Block {
  uint8_t bytes[16];
  int prefix_len;
  const char* kind;
};

// Inward IPv4 blocks (RFC 6890 and friends), most specific first so the
// broadcast address is named as such rather than as reserved.
constexpr Block kInwardV4[] = {
    {{255, 255, 255, 255}, 32, "broadcast"},
    {{0, 0, 0, 0}, 8, "unspecified (0.0.0.0/8 reaches this host)"},
    {{10, 0, 0, 0}, 8, "private"},
    {{100, 64, 0, 0}, 10, "shared address space (carrier-grade NAT)"},
    {{127, 0, 0, 0}, 8, "loopback"},
    {{169, 254, 0, 0}, 16, "link-local"},
    {{172, 16, 0, 0}, 12, "private"},
    {{192, 0, 0, 0}, 24, "reserved for protocol assignments"},
    {{192, 168, 0, 0}, 16, "private"},
    {{198, 18, 0, 0}, 15, "reserved for benchmarking"},
    {{224, 0, 0, 0}, 4, "multicast"},
    {{240, 0, 0, 0}, 4, "reserved"},
};

// Inward IPv6 blocks that do not wrap an IPv4 address.
constexpr Block kInwardV6[] = {
    {{}, 128, "unspecified"},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, "loopback"},
    {{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, "local-use NAT64"},
    {{0xfc}, 7, "private (unique local)"},
    {{0xfe, 0x80}, 10, "link-local"},
    {{0xfe, 0xc0}, 10, "site-local"},
    {{0xff}, 8, "multicast"},
};

bool PrefixMatches(const uint8_t* addr, const uint8_t* net, int prefix_len) {
  const int full = prefix_len / 8, rest = prefix_len % 8;
  if (std::memcmp(addr, net, static_cast<size_t>(full)) != 0) return false;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (addr[full] & mask) == (net[full] & mask);
}

const char* InwardKind(const uint8_t* addr, const Block* blocks, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (PrefixMatches(addr, blocks[i].bytes, blocks[i].prefix_len)) return blocks[i].kind;
  }
  return nullptr;
}

bool AllowedBlock(const Policy& policy, int family, const uint8_t* addr) {
  for (const Cidr& c : policy.allowed_cidrs) {
    if (c.family == family && PrefixMatches(addr, c.bytes.data(), c.prefix_len)) return true;
  }
  return false;
}

std::string Text(int family, const uint8_t* addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, addr, buf, sizeof(buf));
  return buf;
}

// The IPv4 addresses an IPv6 address stands for (a packet to it ends up at
// them): IPv4-mapped and -translated, IPv4-compatible, NAT64 (the well-known
// prefix), 6to4 (its relay), Teredo (server and client). Empty for others.
struct Wrapped {
  const char* form = nullptr;
  std::vector<std::array<uint8_t, 4>> v4;
};
Wrapped WrappedV4(const uint8_t* a) {
  static constexpr uint8_t kZero[10] = {};
  auto at = [&](int i) { return std::array<uint8_t, 4>{a[i], a[i + 1], a[i + 2], a[i + 3]}; };
  if (std::memcmp(a, kZero, 10) == 0 && a[10] == 0xff && a[11] == 0xff) {
    return {"IPv4-mapped", {at(12)}};
  }
  if (std::memcmp(a, kZero, 8) == 0 && a[8] == 0xff && a[9] == 0xff && a[10] == 0 && a[11] == 0) {
    return {"IPv4-translated", {at(12)}};
  }
  static constexpr uint8_t kZero12[12] = {};
  if (std::memcmp(a, kZero12, 12) == 0) return {"IPv4-compatible", {at(12)}};
  static constexpr uint8_t kNat64[12] = {0x00, 0x64, 0xff, 0x9b};
  if (std::memcmp(a, kNat64, 12) == 0) return {"NAT64", {at(12)}};
  if (a[0] == 0x20 && a[1] == 0x02) return {"6to4", {at(2)}};
  if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) {
    std::array<uint8_t, 4> client = at(12);
    for (uint8_t& b : client) b = static_cast<uint8_t>(~b);
    return {"Teredo", {at(4), client}};
  }
  return {};
}

absl::Status Refuse(const std::string& what, const char* kind, const Policy& policy) {
  std::string message = absl::StrCat("address ", what, " is ", kind);
  if (!policy.allow_hint.empty()) absl::StrAppend(&message, "; ", policy.allow_hint);
  return absl::PermissionDeniedError(message);
}

bool ValidHostName(absl::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  size_t label = 0;
  for (size_t i = 0; i < host.size(); ++i) {
    const char c = host[i];
    if (c == '.') {
      if (label == 0 || host[i - 1] == '-') return false;
      label = 0;
      continue;
    }
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
    if (label == 0 && c == '-') return false;
    if (++label > 63) return false;
  }
  return host.back() != '-';
}

std::string NormalizeHost(absl::string_view host) {
  return absl::AsciiStrToLower(absl::StripSuffix(host, "."));
}

}  // namespace

std::string Cidr::ToString() const {
  return absl::StrCat(Text(family, bytes.data()), "/", prefix_len);
}

absl::StatusOr<Cidr> ParseCidr(absl::string_view text) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("CIDR \"", text, "\" ", why));
  };
  const size_t slash = text.find('/');
  if (slash == absl::string_view::npos) {
    return bad(absl::StrCat("has no prefix length (write ", text, "/32 or ", text, "/128)"));
  }
  const std::string address(text.substr(0, slash));
  const absl::string_view prefix = text.substr(slash + 1);
  Cidr c;
  int max_len = 0;
  if (inet_pton(AF_INET, address.c_str(), c.bytes.data()) == 1) {
    c.family = AF_INET;
    max_len = 32;
  } else if (inet_pton(AF_INET6, address.c_str(), c.bytes.data()) == 1) {
    c.family = AF_INET6;
    max_len = 128;
  } else {
    return bad("is not an IPv4 or IPv6 address with a prefix length");
  }
  const bool digits =
      !prefix.empty() && prefix.size() <= 3 &&
      std::all_of(prefix.begin(), prefix.end(), [](char ch) { return absl::ascii_isdigit(ch); });
  if (!digits || (prefix.size() > 1 && prefix[0] == '0') ||
      !absl::SimpleAtoi(prefix, &c.prefix_len) || c.prefix_len > max_len) {
    return bad(absl::StrCat("needs a prefix length from 0 to ", max_len));
  }
  Cidr net = c;
  const int bytes = max_len / 8;
  for (int i = 0; i < bytes; ++i) {
    const int keep = std::clamp(c.prefix_len - 8 * i, 0, 8);
    net.bytes[i] &= static_cast<uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
  }
  if (net.bytes != c.bytes) {
    return bad(absl::StrCat("has host bits set (did you mean ", net.ToString(), "?)"));
  }
  return c;
}

absl::StatusOr<Policy> ParsePolicy(const std::vector<std::string>& hosts,
                                   const std::vector<std::string>& cidrs) {
  Policy policy;
  for (const std::string& entry : hosts) {
    const std::string host = NormalizeHost(absl::StripAsciiWhitespace(entry));
    in6_addr scratch;
    if (inet_pton(AF_INET, host.c_str(), &scratch) == 1 ||
        inet_pton(AF_INET6,
                  std::string(absl::StripSuffix(absl::StripPrefix(host, "["), "]")).c_str(),
                  &scratch) == 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("allowed host \"", entry, "\" is an address: allow it as a CIDR instead"));
    }
    if (!ValidHostName(host)) {
      return absl::InvalidArgumentError(
          absl::StrCat("allowed host \"", entry, "\" is not a DNS host name"));
    }
    policy.allowed_hosts.push_back(host);
  }
  for (const std::string& entry : cidrs) {
    auto c = ParseCidr(absl::StripAsciiWhitespace(entry));
    if (!c.ok()) return c.status();
    policy.allowed_cidrs.push_back(*c);
  }
  return policy;
}

bool HostAllowed(const Policy& policy, absl::string_view host) {
  if (policy.allowed_hosts.empty()) return false;
  const std::string wanted = NormalizeHost(host);
  for (const std::string& h : policy.allowed_hosts) {
    if (h == wanted) return true;
  }
  return false;
}

absl::Status CheckAddress(const sockaddr& address, const Policy& policy) {
  if (address.sa_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(address);
    uint8_t a[4];
    std::memcpy(a, &in.sin_addr, 4);
    if (AllowedBlock(policy, AF_INET, a)) return absl::OkStatus();
    const char* kind = InwardKind(a, kInwardV4, std::size(kInwardV4));
    return kind == nullptr ? absl::OkStatus() : Refuse(Text(AF_INET, a), kind, policy);
  }
  if (address.sa_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
    uint8_t a[16];
    std::memcpy(a, &in6.sin6_addr, 16);
    if (AllowedBlock(policy, AF_INET6, a)) return absl::OkStatus();
    if (const char* kind = InwardKind(a, kInwardV6, std::size(kInwardV6)); kind != nullptr) {
      return Refuse(Text(AF_INET6, a), kind, policy);
    }
    // A wrapping form is as inward as what it wraps: refused when any IPv4
    // address it stands for is inward (and not allowed), reached otherwise
    // (an IPv6-only network reaches the IPv4 internet through NAT64).
    const Wrapped w = WrappedV4(a);
    for (const auto& v4 : w.v4) {
      if (AllowedBlock(policy, AF_INET, v4.data())) continue;
      if (const char* kind = InwardKind(v4.data(), kInwardV4, std::size(kInwardV4))) {
        return Refuse(
            absl::StrCat(Text(AF_INET6, a), " (", w.form, " ", Text(AF_INET, v4.data()), ")"), kind,
            policy);
      }
    }
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("address family ", address.sa_family, " is not IPv4 or IPv6"));
}

std::string AddressText(const sockaddr& address) {
  if (address.sa_family == AF_INET) {
    return Text(AF_INET, reinterpret_cast<const uint8_t*>(
                             &reinterpret_cast<const sockaddr_in&>(address).sin_addr));
  }
  if (address.sa_family == AF_INET6) {
    return Text(AF_INET6, reinterpret_cast<const uint8_t*>(
                              &reinterpret_cast<const sockaddr_in6&>(address).sin6_addr));
  }
  return absl::StrCat("(address family ", address.sa_family, ")");
}

}  // namespace trainmesh::netpolicy
