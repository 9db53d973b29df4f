#include "libs/netpolicy/address_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::netpolicy {
namespace {

using ::testing::HasSubstr;

// A sockaddr_in or sockaddr_in6 for a literal address.
sockaddr_storage Address(const std::string& text) {
  sockaddr_storage s{};
  auto* in = reinterpret_cast<sockaddr_in*>(&s);
  if (inet_pton(AF_INET, text.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    return s;
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&s);
  EXPECT_EQ(inet_pton(AF_INET6, text.c_str(), &in6->sin6_addr), 1) << text;
  in6->sin6_family = AF_INET6;
  return s;
}

absl::Status Check(const std::string& text, const Policy& policy = {}) {
  const sockaddr_storage s = Address(text);
  return CheckAddress(reinterpret_cast<const sockaddr&>(s), policy);
}

// Refused, and the message names the address and what it is.
void ExpectRefused(const std::string& text, const std::string& kind, const Policy& policy = {}) {
  const absl::Status s = Check(text, policy);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << text << ": " << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(kind)) << text;
  const sockaddr_storage a = Address(text);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("address " + AddressText(reinterpret_cast<const sockaddr&>(a))))
      << text;
}

TEST(AddressPolicyTest, EveryInwardIpv4BlockIsRefusedAtBothEnds) {
  const struct {
    const char* first;
    const char* last;
    const char* kind;
  } blocks[] = {
      {"0.0.0.0", "0.255.255.255", "unspecified"},
      {"10.0.0.0", "10.255.255.255", "private"},
      {"100.64.0.0", "100.127.255.255", "carrier-grade NAT"},
      {"127.0.0.0", "127.255.255.255", "loopback"},
      {"169.254.0.0", "169.254.255.255", "link-local"},
      {"172.16.0.0", "172.31.255.255", "private"},
      {"192.0.0.0", "192.0.0.255", "protocol assignments"},
      {"192.168.0.0", "192.168.255.255", "private"},
      {"198.18.0.0", "198.19.255.255", "benchmarking"},
      {"224.0.0.0", "239.255.255.255", "multicast"},
      {"240.0.0.0", "255.255.255.254", "reserved"},
      {"255.255.255.255", "255.255.255.255", "broadcast"},
  };
  for (const auto& b : blocks) {
    ExpectRefused(b.first, b.kind);
    ExpectRefused(b.last, b.kind);
  }
  ExpectRefused("169.254.169.254", "link-local");  // cloud metadata
}

TEST(AddressPolicyTest, Ipv4JustOutsideTheBlocksIsReached) {
  for (const char* a :
       {"1.1.1.1", "8.8.8.8", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0",
        "126.255.255.255", "128.0.0.0", "169.253.255.255", "169.255.0.0", "172.15.255.255",
        "172.32.0.0", "192.0.1.0", "192.167.255.255", "192.169.0.0", "198.17.255.255", "198.20.0.0",
        "223.255.255.255", "93.184.216.34"}) {
    EXPECT_TRUE(Check(a).ok()) << a << ": " << Check(a);
  }
}

TEST(AddressPolicyTest, EveryInwardIpv6BlockIsRefused) {
  ExpectRefused("::", "unspecified");
  ExpectRefused("::1", "loopback");
  ExpectRefused("fc00::", "unique local");
  ExpectRefused("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "unique local");
  ExpectRefused("fe80::1", "link-local");
  ExpectRefused("febf:ffff::1", "link-local");
  ExpectRefused("fec0::1", "site-local");
  ExpectRefused("ff02::1", "multicast");
  ExpectRefused("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "multicast");
  ExpectRefused("64:ff9b:1::a00:1", "local-use NAT64");
  for (const char* a : {"2606:4700::1111", "2001:4860:4860::8888", "fbff:ffff::1", "fe7f::1",
                        "2001:db8::1", "100::1"}) {
    EXPECT_TRUE(Check(a).ok()) << a << ": " << Check(a);
  }
}

TEST(AddressPolicyTest, Ipv6FormsWrappingAnInwardIpv4AreRefused) {
  // IPv4-mapped: what a dual-stack socket really connects to.
  ExpectRefused("::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1) is loopback");
  ExpectRefused("::ffff:169.254.169.254", "link-local");
  ExpectRefused("::ffff:10.1.2.3", "private");
  ExpectRefused("::ffff:0.0.0.0", "unspecified");
  ExpectRefused("::ffff:0:192.168.1.1", "(IPv4-translated 192.168.1.1) is private");
  ExpectRefused("::127.0.0.1", "IPv4-compatible 127.0.0.1) is loopback");
  ExpectRefused("64:ff9b::7f00:1", "NAT64 127.0.0.1) is loopback");
  ExpectRefused("64:ff9b::a9fe:a9fe", "NAT64 169.254.169.254) is link-local");
  ExpectRefused("2002:7f00:1::1", "6to4 127.0.0.1) is loopback");
  ExpectRefused("2002:c0a8:101::", "6to4 192.168.1.1) is private");
  // Teredo: the server in the clear, the client inverted.
  ExpectRefused("2001:0:a00:1::", "Teredo 10.0.0.1) is private");
  ExpectRefused("2001:0:808:808::80ff:fffe", "Teredo 127.0.0.1) is loopback");
  // The same forms around a public address are reached.
  for (const char* a :
       {"::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "2001:0:808:808::f7f7:f7f7"}) {
    EXPECT_TRUE(Check(a).ok()) << a << ": " << Check(a);
  }
}

TEST(AddressPolicyTest, OperatorBlocksAllowAddressesAndTheirWrappedForms) {
  auto policy = ParsePolicy({}, {"127.0.0.0/8", "fd00:1::/32", "169.254.169.254/32"});
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(Check("127.0.0.1", *policy).ok());
  EXPECT_TRUE(Check("127.200.0.9", *policy).ok());
  EXPECT_TRUE(Check("::ffff:127.0.0.1", *policy).ok());
  EXPECT_TRUE(Check("64:ff9b::7f00:1", *policy).ok());
  EXPECT_TRUE(Check("fd00:1:ffff::1", *policy).ok());
  EXPECT_TRUE(Check("169.254.169.254", *policy).ok());
  // Only what was allowed.
  ExpectRefused("169.254.169.253", "link-local", *policy);
  ExpectRefused("::1", "loopback", *policy);  // an IPv4 block says nothing of IPv6 loopback
  ExpectRefused("fd00:2::1", "unique local", *policy);
  ExpectRefused("10.0.0.1", "private", *policy);
  auto narrow = ParsePolicy({}, {"127.0.0.2/32"});
  ASSERT_TRUE(narrow.ok());
  EXPECT_TRUE(Check("127.0.0.2", *narrow).ok());
  ExpectRefused("127.0.0.1", "loopback", *narrow);
  auto everything = ParsePolicy({}, {"0.0.0.0/0", "::/0"});
  ASSERT_TRUE(everything.ok());
  EXPECT_TRUE(Check("10.0.0.1", *everything).ok());
  EXPECT_TRUE(Check("::1", *everything).ok());
}

TEST(AddressPolicyTest, RefusalsCarryTheOperatorHint) {
  Policy p;
  p.allow_hint = "an operator can allow it with --dataset_allow_cidrs";
  EXPECT_EQ(Check("127.0.0.1", p).message(),
            "address 127.0.0.1 is loopback; an operator can allow it with --dataset_allow_cidrs");
}

TEST(AddressPolicyTest, CidrsParseStrictly) {
  auto v4 = ParseCidr("10.0.0.0/8");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->family, AF_INET);
  EXPECT_EQ(v4->ToString(), "10.0.0.0/8");
  auto v6 = ParseCidr("fc00::/7");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->family, AF_INET6);
  EXPECT_EQ(v6->ToString(), "fc00::/7");
  EXPECT_TRUE(ParseCidr("0.0.0.0/0").ok());
  EXPECT_TRUE(ParseCidr("::1/128").ok());
  const struct {
    const char* text;
    const char* why;
  } bad[] = {
      {"127.0.0.1", "no prefix length"},
      {"127.0.0.1/8", "host bits set (did you mean 127.0.0.0/8?)"},
      {"fc00::1/7", "host bits set"},
      {"10.0.0.0/33", "from 0 to 32"},
      {"::/129", "from 0 to 128"},
      {"10.0.0.0/", "prefix length"},
      {"10.0.0.0/08", "prefix length"},
      {"10.0.0.0/+8", "prefix length"},
      {"10.0.0.0/8/8", "prefix length"},
      {"10.0.0.0/-1", "prefix length"},
      {"10.0.0/8", "not an IPv4 or IPv6 address"},
      {"010.0.0.0/8", "not an IPv4 or IPv6 address"},
      {"0x7f.0.0.0/8", "not an IPv4 or IPv6 address"},
      {"localhost/8", "not an IPv4 or IPv6 address"},
      {"/8", "not an IPv4 or IPv6 address"},
      {"", "no prefix length"},
  };
  for (const auto& b : bad) {
    auto c = ParseCidr(b.text);
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << b.text;
    EXPECT_THAT(std::string(c.status().message()), HasSubstr(b.why)) << b.text;
  }
}

TEST(AddressPolicyTest, PoliciesParseStrictly) {
  auto p = ParsePolicy({"Data.Example.", "localhost"}, {" 10.0.0.0/8"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->allowed_hosts, ::testing::ElementsAre("data.example", "localhost"));
  EXPECT_TRUE(HostAllowed(*p, "DATA.example"));
  EXPECT_TRUE(HostAllowed(*p, "localhost."));
  EXPECT_FALSE(HostAllowed(*p, "example"));
  EXPECT_FALSE(HostAllowed(*p, "evil.data.example"));
  EXPECT_FALSE(HostAllowed(Policy{}, "localhost"));
  EXPECT_THAT(std::string(ParsePolicy({"127.0.0.1"}, {}).status().message()),
              HasSubstr("is an address: allow it as a CIDR"));
  EXPECT_THAT(std::string(ParsePolicy({"[::1]"}, {}).status().message()), HasSubstr("address"));
  for (const char* host : {"", "a..b", "-a.b", "a-.b", "a b", "a/b", "a:80", "*.example"}) {
    EXPECT_EQ(ParsePolicy({host}, {}).status().code(), absl::StatusCode::kInvalidArgument) << host;
  }
  EXPECT_EQ(ParsePolicy({}, {""}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ParsePolicy({}, {"10.0.0.1/8"}).status().message()),
              HasSubstr("10.0.0.1/8"));
}

TEST(AddressPolicyTest, OtherFamiliesAreNotAddresses) {
  sockaddr_storage s{};
  s.ss_family = AF_UNIX;
  EXPECT_EQ(CheckAddress(reinterpret_cast<const sockaddr&>(s), {}).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace trainmesh::netpolicy
