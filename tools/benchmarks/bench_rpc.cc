// Closed-loop load on one jobs RPC: N clients, each with one call in flight,
// for a fixed time. Prints one JSON line: calls/s and latency percentiles.
//   bench_rpc --rpc create|get [--job-id ID] --endpoint HOST:PORT [--credential C]
//             --clients N --seconds S [--warmup S] [--gateway HOST:PORT]
// With --gateway the same calls go over REST (HTTP/1.1 keep-alive, one
// connection per client) through the gateway instead of gRPC.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "libs/tls/tls.h"
#include "tools/cli/args.h"
#include "trainmesh/v1/jobs.grpc.pb.h"

int main(int argc, char** argv) {
  using namespace trainmesh;
  auto args = cli::Parse(std::vector<std::string>(argv + 1, argv + argc),
                         {"endpoint", "credential", "clients", "seconds", "warmup", "rpc",
                          "job-id", "gateway", "tls-ca"},
                         {}, {});
  if (!args.ok()) {
    std::fprintf(stderr, "%s\n", std::string(args.status().message()).c_str());
    return 2;
  }
  int clients = 8;
  double seconds = 10, warmup = 2;
  (void)absl::SimpleAtoi(args->Get("clients", "8"), &clients);
  (void)absl::SimpleAtod(args->Get("seconds", "10"), &seconds);
  (void)absl::SimpleAtod(args->Get("warmup", "2"), &warmup);
  const std::string credential = args->Get("credential");
  const std::string rpc = args->Get("rpc", "create");
  if (rpc != "create" && rpc != "get") {
    std::fprintf(stderr, "--rpc takes create or get\n");
    return 2;
  }
  v1::GetJobRequest get;
  get.set_id(args->Get("job-id"));

  // TLS when given the CA of the server's certificate (tools/bench tls).
  auto creds = tls::ChannelCredentials({.ca_file = args->Get("tls-ca")});
  if (!creds.ok()) {
    std::fprintf(stderr, "%s\n", std::string(creds.status().message()).c_str());
    return 2;
  }
  // One HTTP/2 connection per 8 clients, as a fleet of real clients would spread.
  std::vector<std::unique_ptr<v1::JobService::Stub>> stubs;
  for (int i = 0; i < (clients + 7) / 8; ++i) {
    grpc::ChannelArguments channel_args;
    channel_args.SetInt("grpc.channel_id", i);  // distinct channels, not a shared subchannel
    stubs.push_back(v1::JobService::NewStub(grpc::CreateCustomChannel(
        args->Get("endpoint"), *creds, channel_args)));
  }
  v1::CreateJobRequest request;
  request.mutable_job()->set_model("mlp-policy");
  request.mutable_job()->set_dataset_url("synthetic://reach?samples=20000");
  (*request.mutable_job()->mutable_hyperparameters()->mutable_fields())["steps"].set_number_value(
      200);

  // REST: the same request as JSON, over one keep-alive connection per client.
  const std::string gateway = args->Get("gateway");
  const std::string rest_body =
      R"({"model": "mlp-policy", "datasetUrl": "synthetic://reach?samples=20000", "hyperparameters": {"steps": 200}})";
  namespace http = boost::beast::http;
  struct Rest {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::socket socket{ioc};
    boost::beast::flat_buffer buffer;
  };
  auto rest_call = [&](Rest& c) -> grpc::Status {
    http::request<http::string_body> req(rpc == "create" ? http::verb::post : http::verb::get,
                                         rpc == "create" ? "/v1/jobs" : "/v1/jobs/" + get.id(), 11);
    req.set(http::field::host, "bench");
    if (!credential.empty()) req.set(http::field::authorization, "Bearer " + credential);
    if (rpc == "create") {
      req.set(http::field::content_type, "application/json");
      req.body() = rest_body;
    }
    req.prepare_payload();
    boost::beast::error_code ec;
    http::write(c.socket, req, ec);
    http::response<http::string_body> res;
    if (!ec) http::read(c.socket, c.buffer, res, ec);
    if (ec) return grpc::Status(grpc::StatusCode::UNAVAILABLE, ec.message());
    if (res.result_int() != 200) return grpc::Status(grpc::StatusCode::UNKNOWN, res.body());
    return grpc::Status::OK;
  };

  const absl::Time start = absl::Now();
  const absl::Time measure_from = start + absl::Seconds(warmup);
  const absl::Time end = measure_from + absl::Seconds(seconds);
  std::atomic<int64_t> errors{0};
  std::vector<std::vector<double>> latencies(clients);
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      auto& stub = *stubs[c / 8];
      std::unique_ptr<Rest> rest;
      if (!gateway.empty()) {
        rest = std::make_unique<Rest>();
        const size_t colon = gateway.rfind(':');
        rest->socket.connect({boost::asio::ip::make_address(gateway.substr(0, colon)),
                              static_cast<unsigned short>(std::stoi(gateway.substr(colon + 1)))});
        rest->socket.set_option(boost::asio::ip::tcp::no_delay(true));
      }
      while (true) {
        const absl::Time t0 = absl::Now();
        if (t0 >= end) break;
        grpc::ClientContext ctx;
        if (!credential.empty()) ctx.AddMetadata("authorization", "Bearer " + credential);
        ctx.set_deadline(absl::ToChronoTime(t0 + absl::Seconds(30)));
        v1::Job job;
        grpc::Status s = rest != nullptr    ? rest_call(*rest)
                         : rpc == "create" ? stub.CreateJob(&ctx, request, &job)
                                           : stub.GetJob(&ctx, get, &job);
        const absl::Time t1 = absl::Now();
        if (!s.ok()) {
          if (errors.fetch_add(1) < 3) {
            std::fprintf(stderr, "%s: %d %s\n", rpc.c_str(), s.error_code(),
                         s.error_message().c_str());
          }
          continue;
        }
        if (t0 >= measure_from && t1 <= end) {
          latencies[c].push_back(absl::ToDoubleMilliseconds(t1 - t0));
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<size_t>(p * all.size()))];
  };
  std::printf(
      "{\"clients\": %d, \"calls\": %zu, \"per_second\": %.1f, \"p50_ms\": %.2f, "
      "\"p99_ms\": %.2f, \"errors\": %lld}\n",
      clients, all.size(), all.size() / seconds, pct(0.5), pct(0.99),
      static_cast<long long>(errors.load()));
  return errors.load() == 0 ? 0 : 1;
}
