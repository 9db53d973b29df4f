// The gRPC adapter of the scheduler.
#pragma once

#include "libs/identity/authenticator.h"
#include "libs/server/executor.h"
#include "libs/server/handler.h"
#include "services/scheduler/scheduler_service.h"
#include "services/scheduler/waiters.h"
#include "trainmesh/v1/scheduler.adapter.h"

namespace trainmesh::scheduler {

// The scheduler's RPCs: the generated adapter binds each to SchedulerService's
// method of the same name (the agents' reports authorised by the job token
// in their body); AcquireJob, a long poll, is written here.
class SchedulerServer final : public trainmesh::v1::SchedulerServiceAdapter<SchedulerService> {
 public:
  SchedulerServer(SchedulerService* service, server::Executor* executor,
                  const identity::Authenticator* authenticator, Waiters* waiters)
      : SchedulerServiceAdapter(service, executor, authenticator), waiters_(waiters) {}

  TM_UNARY_HANDLER(AcquireJob, AcquireJobRequest, AcquireJobResponse);

 private:
  Waiters* waiters_;
};

}  // namespace trainmesh::scheduler
