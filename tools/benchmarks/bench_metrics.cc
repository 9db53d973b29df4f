// Metrics benchmarks (tools/bench metrics runs them side by side):
//   --mode ingest   points/s acknowledged through ReportMetrics, S streams
//                   (one job each) sending batches of B points
//   --mode copy     the same rows COPYed straight into metrics.points, one
//                   transaction per batch, S connections
//   --mode latency  K StreamMetrics subscribers of one job; a batch of B
//                   points every --interval-ms, stamped at sending; prints
//                   ingest -> subscriber latency; with --gateway HOST:PORT
//                   the subscribers are Server-Sent Events streams through
//                   the REST gateway instead of gRPC streams
// Every mode prints one JSON line.
#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/grpcpp.h"
#include "pqxx/pqxx"
#include "tools/cli/args.h"
#include "trainmesh/v1/auth.grpc.pb.h"
#include "trainmesh/v1/metrics.grpc.pb.h"

namespace {

using namespace trainmesh;
using google::protobuf::util::TimeUtil;

// Job ids unique to this process, so runs never collide in one database.
std::string JobId(int i) {
  static const uint32_t run = static_cast<uint32_t>(absl::ToUnixMicros(absl::Now()));
  return absl::StrCat(absl::Hex(run, absl::kZeroPad8), "-0000-4000-8000-",
                      absl::Hex(100000000000 + i, absl::kZeroPad12));
}

std::string Mint(v1::AuthService::Stub& auth, const std::string& service_key,
                 const std::string& job, const std::string& owner) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + service_key);
  v1::MintJobTokenRequest mint;
  mint.set_job_id(job);
  mint.set_attempt(1);
  mint.set_owner(owner);
  mint.mutable_ttl()->set_seconds(3600);
  v1::JobToken token;
  grpc::Status s = auth.MintJobToken(&ctx, mint, &token);
  if (!s.ok()) {
    std::fprintf(stderr, "MintJobToken: %s\n", s.error_message().c_str());
    std::exit(1);
  }
  return token.token();
}

v1::ReportMetricsRequest MakeBatch(const std::string& job, int64_t batch, int size) {
  v1::ReportMetricsRequest b;
  b.set_job_id(job);
  b.set_batch_seq(batch);
  const auto now = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(absl::Now()));
  for (int i = 0; i < size; ++i) {
    auto* p = b.add_points();
    p->set_name(i % 2 == 0 ? "train_loss" : "val_loss");
    p->set_step(batch * size + i);
    p->set_value(1.0 / (batch * size + i + 1));
    *p->mutable_wall_time() = now;
  }
  return b;
}

int Ingest(const cli::Args& args, int streams, int batches, int size) {
  auto channel = grpc::CreateChannel(args.Get("endpoint"), grpc::InsecureChannelCredentials());
  auto auth = v1::AuthService::NewStub(
      grpc::CreateChannel(args.Get("auth-endpoint"), grpc::InsecureChannelCredentials()));
  std::vector<std::string> tokens;
  for (int s = 0; s < streams; ++s) {
    tokens.push_back(Mint(*auth, args.Get("service-key"), JobId(s), args.Get("owner")));
  }
  std::atomic<int64_t> points{0};
  std::atomic<int> failures{0};
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int s = 0; s < streams; ++s) {
    threads.emplace_back([&, s] {
      auto stub = v1::MetricsService::NewStub(channel);
      grpc::ClientContext ctx;
      ctx.AddMetadata("authorization", "Bearer " + tokens[s]);
      auto stream = stub->ReportMetrics(&ctx);
      for (int b = 0; b < batches; ++b) {
        v1::ReportMetricsResponse ack;
        if (!stream->Write(MakeBatch(JobId(s), b, size)) || !stream->Read(&ack)) {
          ++failures;
          break;
        }
        points += ack.points_stored();
      }
      stream->WritesDone();
      grpc::Status status = stream->Finish();
      if (!status.ok()) {
        std::fprintf(stderr, "ReportMetrics: %s\n", status.error_message().c_str());
        ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::printf("{\"mode\": \"ingest\", \"points\": %lld, \"seconds\": %.3f, \"per_second\": %.0f}\n",
              static_cast<long long>(points.load()), seconds, points.load() / seconds);
  return failures.load() == 0 ? 0 : 1;
}

std::string Float(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

int Copy(const cli::Args& args, int streams, int batches, int size) {
  std::atomic<int64_t> points{0};
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int s = 0; s < streams; ++s) {
    threads.emplace_back([&, s] {
      pqxx::connection conn(args.Get("dsn"));
      const std::string job = JobId(1000 + s);
      int64_t seq = 0;
      for (int b = 0; b < batches; ++b) {
        pqxx::work tx(conn);
        pqxx::stream_to copy(tx, "metrics.points",
                             std::vector<std::string>{"job_id", "seq", "name", "run", "step",
                                                      "value", "wall_time", "attempt"});
        const std::string now = absl::FormatTime("%Y-%m-%d %H:%M:%E6S+00", absl::Now(),
                                                 absl::UTCTimeZone());
        for (int i = 0; i < size; ++i) {
          const int64_t step = static_cast<int64_t>(b) * size + i;
          copy << std::make_tuple(job, ++seq, i % 2 == 0 ? "train_loss" : "val_loss", "", step,
                                  Float(1.0 / (step + 1)), now, "1");
        }
        copy.complete();
        tx.commit();
        points += size;
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::printf("{\"mode\": \"copy\", \"points\": %lld, \"seconds\": %.3f, \"per_second\": %.0f}\n",
              static_cast<long long>(points.load()), seconds, points.load() / seconds);
  return 0;
}

// One subscriber: records, for every item, now - the wall time of its points.
class Subscriber : public grpc::ClientReadReactor<v1::MetricsStreamItem> {
 public:
  Subscriber(v1::MetricsService::Stub* stub, const std::string& token, const std::string& job,
             std::atomic<int>* ready, std::vector<double>* latencies, absl::Mutex* mu)
      : ready_(ready), latencies_(latencies), mu_(mu) {
    ctx_.AddMetadata("authorization", "Bearer " + token);
    request_.set_job_id(job);
    stub->async()->StreamMetrics(&ctx_, &request_, this);
    StartRead(&item_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    const int64_t now = absl::ToUnixMicros(absl::Now());
    if (!first_) {
      first_ = true;
      ++*ready_;  // the warm-up batch arrived: subscribed
    } else if (item_.points_size() > 0) {
      const int64_t sent = TimeUtil::TimestampToMicroseconds(item_.points(0).wall_time());
      absl::MutexLock lock(mu_);
      latencies_->push_back((now - sent) / 1000.0);
    }
    StartRead(&item_);
  }
  void OnDone(const grpc::Status&) override { done_.Notify(); }
  void Cancel() {
    ctx_.TryCancel();
    done_.WaitForNotification();
  }

 private:
  grpc::ClientContext ctx_;
  v1::StreamMetricsRequest request_;
  v1::MetricsStreamItem item_;
  bool first_ = false;
  std::atomic<int>* ready_;
  std::vector<double>* latencies_;
  absl::Mutex* mu_;
  absl::Notification done_;
};

// K Server-Sent Events subscribers on one thread (asynchronous sockets), each
// recording, per event, now - the wall time of its first point.
class SseFleet {
 public:
  SseFleet(const std::string& gateway, const std::string& token, const std::string& job, int count,
           std::atomic<int>* ready, std::vector<double>* latencies, absl::Mutex* mu)
      : ready_(ready), latencies_(latencies), mu_(mu) {
    const size_t colon = gateway.rfind(':');
    const boost::asio::ip::tcp::endpoint endpoint(boost::asio::ip::make_address(gateway.substr(0, colon)),
                                                  static_cast<unsigned short>(std::stoi(gateway.substr(colon + 1))));
    request_ = absl::StrCat("GET /v1/jobs/", job, "/metrics:stream HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer ",
                            token, "\r\nAccept: text/event-stream\r\n\r\n");
    for (int i = 0; i < count; ++i) {
      auto sub = std::make_unique<Sub>(ioc_);
      Sub* raw = sub.get();
      subs_.push_back(std::move(sub));
      raw->socket.async_connect(endpoint, [this, raw](boost::system::error_code ec) {
        if (ec) return Fail(ec);
        boost::asio::async_write(raw->socket, boost::asio::buffer(request_),
                                 [this, raw](boost::system::error_code ec, size_t) {
                                   if (ec) return Fail(ec);
                                   Read(raw);
                                 });
      });
    }
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~SseFleet() {
    boost::asio::post(ioc_, [this] {
      for (auto& sub : subs_) {
        boost::system::error_code ec;
        sub->socket.close(ec);
      }
    });
    thread_.join();
  }

 private:
  struct Sub {
    explicit Sub(boost::asio::io_context& ioc) : socket(ioc) {}
    boost::asio::ip::tcp::socket socket;
    std::array<char, 16384> buffer;
    std::string raw, events;
    bool head = false, first = false;
  };

  void Fail(boost::system::error_code ec) {
    if (ec != boost::asio::error::operation_aborted && failures_++ < 3) {
      std::fprintf(stderr, "sse subscriber: %s\n", ec.message().c_str());
    }
  }

  void Read(Sub* sub) {
    sub->socket.async_read_some(boost::asio::buffer(sub->buffer), [this, sub](boost::system::error_code ec, size_t n) {
      if (ec) return Fail(ec);
      const int64_t now = absl::ToUnixMicros(absl::Now());
      sub->raw.append(sub->buffer.data(), n);
      Decode(sub, now);
      Read(sub);
    });
  }

  // De-chunks what arrived, then handles each complete event.
  void Decode(Sub* sub, int64_t now) {
    if (!sub->head) {
      const size_t end = sub->raw.find("\r\n\r\n");
      if (end == std::string::npos) return;
      sub->raw.erase(0, end + 4);
      sub->head = true;
    }
    while (true) {
      const size_t line = sub->raw.find("\r\n");
      if (line == std::string::npos) break;
      const size_t size = std::stoul(sub->raw.substr(0, line), nullptr, 16);
      if (sub->raw.size() < line + 2 + size + 2) break;
      sub->events.append(sub->raw, line + 2, size);
      sub->raw.erase(0, line + 2 + size + 2);
    }
    for (size_t end; (end = sub->events.find("\n\n")) != std::string::npos;) {
      const std::string event = sub->events.substr(0, end);
      sub->events.erase(0, end + 2);
      const size_t at = event.find("\"wallTime\":\"");
      if (event.find("data: ") == std::string::npos || at == std::string::npos) continue;
      if (!sub->first) {
        sub->first = true;
        ++*ready_;  // the warm-up batch arrived: subscribed
        continue;
      }
      const size_t from = at + 12;
      absl::Time sent;
      std::string error;
      if (!absl::ParseTime(absl::RFC3339_full, event.substr(from, event.find('"', from) - from), &sent, &error)) continue;
      absl::MutexLock lock(mu_);
      latencies_->push_back((now - absl::ToUnixMicros(sent)) / 1000.0);
    }
  }

  boost::asio::io_context ioc_;
  std::string request_;
  std::vector<std::unique_ptr<Sub>> subs_;
  std::thread thread_;
  std::atomic<int> failures_{0};
  std::atomic<int>* ready_;
  std::vector<double>* latencies_;
  absl::Mutex* mu_;
};

int Latency(const cli::Args& args, int subscribers, int batches, int size, int interval_ms) {
  auto channel = grpc::CreateChannel(args.Get("endpoint"), grpc::InsecureChannelCredentials());
  auto stub = v1::MetricsService::NewStub(channel);
  auto auth = v1::AuthService::NewStub(
      grpc::CreateChannel(args.Get("auth-endpoint"), grpc::InsecureChannelCredentials()));
  const std::string job = JobId(5000 + subscribers);
  const std::string token = Mint(*auth, args.Get("service-key"), job, args.Get("owner"));
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + token);
  auto stream = stub->ReportMetrics(&ctx);
  v1::ReportMetricsResponse ack;
  stream->Write(MakeBatch(job, 0, size));  // warm-up: every subscriber sees it first
  stream->Read(&ack);
  std::atomic<int> ready{0};
  absl::Mutex mu;
  std::vector<double> latencies;
  std::vector<std::unique_ptr<Subscriber>> subs;
  std::unique_ptr<SseFleet> sse;
  if (!args.Get("gateway").empty()) {
    sse = std::make_unique<SseFleet>(args.Get("gateway"), args.Get("user-token"), job, subscribers, &ready,
                                     &latencies, &mu);
  } else {
    for (int i = 0; i < subscribers; ++i) {
      subs.push_back(std::make_unique<Subscriber>(stub.get(), args.Get("user-token"), job, &ready,
                                                  &latencies, &mu));
    }
  }
  const absl::Time subscribing = absl::Now();
  absl::Time deadline = subscribing + absl::Seconds(120);
  while (ready.load() < subscribers && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  const double subscribe_ms = absl::ToDoubleMilliseconds(absl::Now() - subscribing);
  deadline = absl::Now() + absl::Seconds(120);
  std::vector<double> acks;
  for (int b = 1; b <= batches; ++b) {
    const absl::Time sent = absl::Now();
    stream->Write(MakeBatch(job, b, size));
    stream->Read(&ack);
    acks.push_back(absl::ToDoubleMilliseconds(absl::Now() - sent));
    absl::SleepFor(absl::Milliseconds(interval_ms));
  }
  std::sort(acks.begin(), acks.end());
  const size_t want = static_cast<size_t>(subscribers) * batches;
  while (absl::Now() < deadline) {
    {
      absl::MutexLock lock(&mu);
      if (latencies.size() >= want) break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  stream->WritesDone();
  stream->Finish();
  for (auto& s : subs) s->Cancel();
  sse.reset();
  absl::MutexLock lock(&mu);
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double p) {
    return latencies.empty() ? 0.0 : latencies[std::min(latencies.size() - 1, static_cast<size_t>(p * latencies.size()))];
  };
  std::printf("{\"mode\": \"latency\", \"subscribers\": %d, \"deliveries\": %zu, \"expected\": %zu, "
              "\"p50_ms\": %.2f, \"p99_ms\": %.2f, \"max_ms\": %.2f, \"ack_p50_ms\": %.2f, "
              "\"subscribe_ms\": %.0f}\n",
              subscribers, latencies.size(), want, pct(0.5), pct(0.99),
              latencies.empty() ? 0.0 : latencies.back(), acks[acks.size() / 2], subscribe_ms);
  return latencies.size() >= want ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  auto args = cli::Parse(std::vector<std::string>(argv + 1, argv + argc),
                         {"mode", "endpoint", "auth-endpoint", "service-key", "owner", "user-token",
                          "dsn", "streams", "batches", "batch-size", "subscribers", "interval-ms", "gateway"},
                         {}, {});
  if (!args.ok()) {
    std::fprintf(stderr, "%s\n", std::string(args.status().message()).c_str());
    return 2;
  }
  int streams = 1, batches = 100, size = 1000, subscribers = 1, interval_ms = 100;
  (void)absl::SimpleAtoi(args->Get("streams", "1"), &streams);
  (void)absl::SimpleAtoi(args->Get("batches", "100"), &batches);
  (void)absl::SimpleAtoi(args->Get("batch-size", "1000"), &size);
  (void)absl::SimpleAtoi(args->Get("subscribers", "1"), &subscribers);
  (void)absl::SimpleAtoi(args->Get("interval-ms", "100"), &interval_ms);
  const std::string mode = args->Get("mode");
  if (mode == "ingest") return Ingest(*args, streams, batches, size);
  if (mode == "copy") return Copy(*args, streams, batches, size);
  if (mode == "latency") return Latency(*args, subscribers, batches, size, interval_ms);
  std::fprintf(stderr, "--mode takes ingest, copy or latency\n");
  return 2;
}
