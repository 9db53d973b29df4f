// The gRPC adapter of the scheduler.
#pragma once

#include "libs/identity/authenticator.h"
#include "libs/server/executor.h"
#include "services/scheduler/scheduler_service.h"
#include "services/scheduler/waiters.h"
#include "trainmesh/v1/scheduler.grpc.pb.h"

namespace trainmesh::scheduler {

class SchedulerServer final : public trainmesh::v1::SchedulerService::CallbackService {
 public:
  SchedulerServer(SchedulerService* service, server::Executor* executor,
                  const identity::Authenticator* authenticator, Waiters* waiters)
      : service_(service), executor_(executor), auth_(authenticator), waiters_(waiters) {}

#define TM_SCHEDULER_RPC(Method, Request, Response)                                     \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* context,                \
                                   const trainmesh::v1::Request* request,              \
                                   trainmesh::v1::Response* response) override;
  TM_SCHEDULER_RPC(Enqueue, EnqueueRequest, EnqueueResponse)
  TM_SCHEDULER_RPC(CancelAssignment, CancelAssignmentRequest, CancelAssignmentResponse)
  TM_SCHEDULER_RPC(RegisterAgent, RegisterAgentRequest, Agent)
  TM_SCHEDULER_RPC(ListAgents, ListAgentsRequest, ListAgentsResponse)
  TM_SCHEDULER_RPC(GetAgent, GetAgentRequest, Agent)
  TM_SCHEDULER_RPC(AcquireJob, AcquireJobRequest, AcquireJobResponse)
  TM_SCHEDULER_RPC(Heartbeat, HeartbeatRequest, HeartbeatResponse)
  TM_SCHEDULER_RPC(CompleteJob, CompleteJobRequest, CompleteJobResponse)
  TM_SCHEDULER_RPC(FailJob, FailJobRequest, FailJobResponse)
  TM_SCHEDULER_RPC(ReleaseJob, ReleaseJobRequest, ReleaseJobResponse)
  TM_SCHEDULER_RPC(GetQueuePosition, GetQueuePositionRequest, QueuePosition)
#undef TM_SCHEDULER_RPC

 private:
  SchedulerService* service_;
  server::Executor* executor_;
  const identity::Authenticator* auth_;
  Waiters* waiters_;
};

}  // namespace trainmesh::scheduler
