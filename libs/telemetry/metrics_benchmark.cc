// What the metrics of one RPC cost, in isolation: the updates of one unary
// call (started, received, sent, handled, latency histogram), looking each
// series up by its labels, and as the server interceptor makes them (series
// looked up once per method, then updated through pointers); on one thread
// and on several. Then a scrape of a registry holding 50 methods' series.
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "libs/telemetry/metrics.h"

namespace trainmesh::telemetry {
namespace {

struct Rpc {
  explicit Rpc(Registry& r)
      : started(r.AddCounter("grpc_server_started_total", "", {"grpc_type", "grpc_service", "grpc_method"})),
        handled(r.AddCounter("grpc_server_handled_total", "",
                             {"grpc_type", "grpc_service", "grpc_method", "grpc_code"})),
        received(r.AddCounter("grpc_server_msg_received_total", "", {"grpc_type", "grpc_service", "grpc_method"})),
        sent(r.AddCounter("grpc_server_msg_sent_total", "", {"grpc_type", "grpc_service", "grpc_method"})),
        seconds(r.AddHistogram("grpc_server_handling_seconds", "", {"grpc_type", "grpc_service", "grpc_method"})) {}
  Family<Counter>& started;
  Family<Counter>& handled;
  Family<Counter>& received;
  Family<Counter>& sent;
  Family<Histogram>& seconds;
};

Registry& Shared() {
  static auto* registry = new Registry();
  return *registry;
}

// One unary call's updates, each series found by its labels.
void BM_UnaryRpcByLabels(benchmark::State& state) {
  static Rpc* rpc = new Rpc(Shared());
  for (auto _ : state) {
    LabelValues labels = {"unary", "trainmesh.v1.JobService", "GetJob"};
    rpc->started.With(labels).Add();
    rpc->received.With(labels).Add();
    rpc->sent.With(labels).Add();
    rpc->seconds.With(labels).Observe(0.0012);
    labels.emplace_back("OK");
    rpc->handled.With(labels).Add();
  }
}
BENCHMARK(BM_UnaryRpcByLabels)->Threads(1)->Threads(2)->Threads(8);

// The same through series found once, as the interceptor does per method.
void BM_UnaryRpcCached(benchmark::State& state) {
  static Rpc* rpc = new Rpc(Shared());
  const LabelValues labels = {"unary", "trainmesh.v1.JobService", "GetJob"};
  Counter& started = rpc->started.With(labels);
  Counter& received = rpc->received.With(labels);
  Counter& sent = rpc->sent.With(labels);
  Histogram& seconds = rpc->seconds.With(labels);
  Counter& handled = rpc->handled.With({"unary", "trainmesh.v1.JobService", "GetJob", "OK"});
  for (auto _ : state) {
    started.Add();
    received.Add();
    sent.Add();
    seconds.Observe(0.0012);
    handled.Add();
  }
}
BENCHMARK(BM_UnaryRpcCached)->Threads(1)->Threads(2)->Threads(8);

void BM_Scrape50Methods(benchmark::State& state) {
  Registry registry;
  Rpc rpc(registry);
  for (int i = 0; i < 50; ++i) {
    const LabelValues labels = {"unary", "trainmesh.v1.JobService", "Method" + std::to_string(i)};
    rpc.started.With(labels).Add();
    rpc.seconds.With(labels).Observe(0.01);
    LabelValues with_code = labels;
    with_code.emplace_back("OK");
    rpc.handled.With(with_code).Add();
  }
  size_t bytes = 0;
  for (auto _ : state) bytes = registry.Render().size();
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_Scrape50Methods);

}  // namespace
}  // namespace trainmesh::telemetry

BENCHMARK_MAIN();
