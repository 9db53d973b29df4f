// Keyset page tokens: opaque to clients and tamper-evident. A token carries
// the position after the last item of a page and an HMAC-SHA256 over that
// position and the query it belongs to (owner and filters), so a token edited
// by hand, or replayed against another query or another user, is refused.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace trainmesh::pagination {

class PageTokenCodec {
 public:
  // `secret` keys the HMAC; every replica of a service must share it.
  explicit PageTokenCodec(std::string secret) : secret_(std::move(secret)) {}

  // `query` identifies the listing (owner + filters); `position` is the keyset
  // cursor in any encoding the caller likes.
  std::string Encode(absl::string_view query, absl::string_view position) const;

  // The position, or INVALID_ARGUMENT (field "page_token") when the token is
  // malformed, altered, or was issued for a different query.
  absl::StatusOr<std::string> Decode(absl::string_view query, absl::string_view token) const;

 private:
  std::string Mac(absl::string_view query, absl::string_view position) const;
  std::string secret_;
};

}  // namespace trainmesh::pagination
