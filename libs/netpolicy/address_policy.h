// Which network addresses an outbound request made on a user's behalf (a
// dataset download today, a webhook later) may reach. A user-supplied URL must
// not aim a service inward: at its own loopback, the private networks it sits
// in, link-local addresses (the cloud metadata service at 169.254.169.254),
// multicast, or the IPv6 forms that wrap such an IPv4 address (IPv4-mapped,
// NAT64, 6to4, Teredo). An operator can allow named hosts or address blocks.
//
// The check is made on the address a socket is about to connect to, after
// name resolution, so that a name resolving inward (or re-resolving inward
// later: DNS rebinding) is refused like a literal address.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace trainmesh::netpolicy {

// An IPv4 or IPv6 address block.
struct Cidr {
  int family = 0;                   // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};  // network order; IPv4 in the first 4
  int prefix_len = 0;

  std::string ToString() const;  // "10.0.0.0/8", "fc00::/7"
};

// Strictly "a.b.c.d/n" (n in 0..32) or "<IPv6 address>/n" (n in 0..128), host
// bits zero, no leading zeros in n. INVALID_ARGUMENT saying what is wrong.
absl::StatusOr<Cidr> ParseCidr(absl::string_view text);

struct Policy {
  // Host names (lowercase, no trailing dot) reached whatever they resolve to.
  std::vector<std::string> allowed_hosts;
  // Address blocks reached although they are inward. A block also allows the
  // IPv6 forms that wrap its IPv4 addresses.
  std::vector<Cidr> allowed_cidrs;
  // Appended to a refusal: how an operator allows more (the flags belong to
  // the binary, e.g. "an operator can allow it with --dataset_allow_cidrs").
  std::string allow_hint;
};

// A policy from operator lists. Host names must be DNS names (not addresses:
// those go in `cidrs`); INVALID_ARGUMENT naming the first bad entry.
absl::StatusOr<Policy> ParsePolicy(const std::vector<std::string>& hosts,
                                   const std::vector<std::string>& cidrs);

// Whether `host` (as in a URL; case and one trailing dot ignored) is allowed
// by name.
bool HostAllowed(const Policy& policy, absl::string_view host);

// OK when `address` (an AF_INET sockaddr_in or AF_INET6 sockaddr_in6: the
// storage behind the reference must be that large) may be connected to.
// PERMISSION_DENIED naming the address and what it is ("address 127.0.0.1 is
// loopback") when it is inward and no allowed block holds it;
// INVALID_ARGUMENT for another address family.
absl::Status CheckAddress(const sockaddr& address, const Policy& policy);

// The address as text: "127.0.0.1", "::1".
std::string AddressText(const sockaddr& address);

}  // namespace trainmesh::netpolicy
