// The gRPC adapter of the scheduler.
#pragma once

#include "libs/server/handler.h"

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

  TM_UNARY_HANDLER(Enqueue, EnqueueRequest, EnqueueResponse);
  TM_UNARY_HANDLER(CancelAssignment, CancelAssignmentRequest, CancelAssignmentResponse);
  TM_UNARY_HANDLER(RegisterAgent, RegisterAgentRequest, Agent);
  TM_UNARY_HANDLER(ListAgents, ListAgentsRequest, ListAgentsResponse);
  TM_UNARY_HANDLER(GetAgent, GetAgentRequest, Agent);
  TM_UNARY_HANDLER(AcquireJob, AcquireJobRequest, AcquireJobResponse);
  TM_UNARY_HANDLER(Heartbeat, HeartbeatRequest, HeartbeatResponse);
  TM_UNARY_HANDLER(CompleteJob, CompleteJobRequest, CompleteJobResponse);
  TM_UNARY_HANDLER(FailJob, FailJobRequest, FailJobResponse);
  TM_UNARY_HANDLER(ReleaseJob, ReleaseJobRequest, ReleaseJobResponse);
  TM_UNARY_HANDLER(GetQueuePosition, GetQueuePositionRequest, QueuePosition);

 private:
  SchedulerService* service_;
  server::Executor* executor_;
  const identity::Authenticator* auth_;
  Waiters* waiters_;
};

}  // namespace trainmesh::scheduler
