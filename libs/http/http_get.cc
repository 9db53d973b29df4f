#include "libs/http/http_get.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/str_cat.h"

namespace trainmesh::httpd {

absl::StatusOr<GetResult> Get(const std::string& host, int port, const std::string& target) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  namespace net = boost::asio;
  net::io_context io;
  net::ip::tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  beast::error_code ec;
  auto endpoints = resolver.resolve(host, std::to_string(port), ec);
  if (!ec) stream.connect(endpoints, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("connect ", host, ":", port, ": ", ec.message()));
  http::request<http::empty_body> request{http::verb::get, target, 11};
  request.set(http::field::host, host);
  request.set(http::field::connection, "close");
  http::write(stream, request, ec);
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  if (!ec) http::read(stream, buffer, response, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("GET ", target, ": ", ec.message()));
  stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
  return GetResult{static_cast<int>(response.result_int()), std::string(response[http::field::content_type]),
                   std::move(response.body())};
}

}  // namespace trainmesh::httpd
