#include "services/scheduler/scheduler_server.h"

#include <atomic>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "libs/log/log.h"
#include "libs/server/handler.h"
#include "libs/status/grpc_status.h"
#include "services/scheduler/scheduler_metrics.h"

namespace trainmesh::scheduler {
namespace {

using trainmesh::v1::Principal;

const google::protobuf::MethodDescriptor& Method(const char* name) {
  return identity::MethodOf("trainmesh.v1.SchedulerService", name);
}

// A long poll: answered by a claim, an error, its deadline or the caller
// leaving. State shared with the attempts that may still run after the
// reactor is gone.
class AcquireReactor : public grpc::ServerUnaryReactor {
 public:
  struct State {
    absl::Mutex mu;
    AcquireReactor* reactor ABSL_GUARDED_BY(mu);
    trainmesh::v1::AcquireJobResponse* response ABSL_GUARDED_BY(mu);
    bool finished ABSL_GUARDED_BY(mu) = false;
    uint64_t waiter = 0;
  };

  AcquireReactor(grpc::CallbackServerContext* context,
                 const trainmesh::v1::AcquireJobRequest* request,
                 trainmesh::v1::AcquireJobResponse* response, SchedulerService* service,
                 server::Executor* executor, const identity::Authenticator* auth, Waiters* waiters)
      : state_(std::make_shared<State>()), service_(service), waiters_(waiters) {
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = this;
      state_->response = response;
    }
    const absl::Time start = absl::Now();
    auto state = state_;
    const bool queued = executor->Submit([state, context, request, service, auth, waiters, start] {
      static const auto& method = Method("AcquireJob");
      absl::StatusOr<Principal> caller = auth->Authorize(*context, method);
      absl::StatusOr<trainmesh::v1::Agent> agent =
          caller.ok() ? service->CheckAcquire(*caller, *request) : caller.status();
      server::LogCall(method, agent.status(), absl::Now() - start,
                      caller.ok() ? caller->subject() : "");
      if (!agent.ok()) {
        End(state, agent.status(), nullptr, service);
        return;
      }
      const absl::Time deadline = absl::Now() + service->Wait(*request);
      // Registered before the first attempt: a job queued meanwhile wakes it.
      state->waiter = waiters->Add(
          deadline,
          {.attempt =
               [state, service, agent = *agent]() {
                 absl::StatusOr<std::optional<trainmesh::v1::Assignment>> got =
                     service->TryAcquire(agent);
                 if (!got.ok()) return End(state, got.status(), nullptr, service), true;
                 if (!got->has_value()) return false;
                 End(state, absl::OkStatus(), &**got, service);
                 return true;
               },
           .expire = [state, service] { End(state, absl::OkStatus(), nullptr, service); }});
    });
    if (!queued) Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
  }

  void OnCancel() override {
    waiters_->Cancel(state_->waiter);
    End(state_, absl::CancelledError("the agent went away"), nullptr, service_);
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = nullptr;
      state_->response = nullptr;
    }
    delete this;
  }

 private:
  // Answers the poll once. A job claimed for a caller that already left is
  // given back at once (no lease has to run out).
  static void End(const std::shared_ptr<State>& state, const absl::Status& status,
                  trainmesh::v1::Assignment* assignment, SchedulerService* service) {
    AcquireReactor* reactor = nullptr;
    {
      absl::MutexLock lock(&state->mu);
      if (!state->finished && state->reactor != nullptr) {
        state->finished = true;
        reactor = state->reactor;
        if (assignment != nullptr) *state->response->mutable_assignment() = std::move(*assignment);
      }
    }
    if (reactor != nullptr) {
      if (assignment != nullptr) ClaimsCounter().Add();  // the agent gets it
      reactor->Finish(status::ToGrpcStatus(status));
    } else if (assignment != nullptr) {
      service->Unclaim(*assignment);
    }
  }

  std::shared_ptr<State> state_;
  SchedulerService* service_;
  Waiters* waiters_;
};

}  // namespace

grpc::ServerUnaryReactor* SchedulerServer::AcquireJob(
    grpc::CallbackServerContext* context, const trainmesh::v1::AcquireJobRequest* request,
    trainmesh::v1::AcquireJobResponse* response) {
  return new AcquireReactor(context, request, response, service_, executor_, auth_, waiters_);
}

}  // namespace trainmesh::scheduler
