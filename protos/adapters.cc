// Compiles every generated adapter once on its own (a broken generator fails
// here, not in a service); the services include the ones they implement.
#include "trainmesh/v1/auth.adapter.h"
#include "trainmesh/v1/jobs.adapter.h"
#include "trainmesh/v1/metrics.adapter.h"
#include "trainmesh/v1/scheduler.adapter.h"
