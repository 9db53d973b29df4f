"""A client we did not write: Python grpcio with stubs generated from the
mesh's protos. Submits a job, follows it with WatchJob until it ends, reads
its metrics back, and checks that errors carry their google.rpc.Status
details. Prints a JSON summary; exits non-zero on any mismatch.

  python3 grpc_client.py STUBS_DIR JOBS_ENDPOINT METRICS_ENDPOINT API_KEY STEPS [CA_FILE]

With CA_FILE the channels are TLS, verified against that CA (as tools/up runs
the mesh); without it, plaintext.
"""
import json
import sys

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
from google.protobuf import struct_pb2  # noqa: E402
from google.rpc import error_details_pb2, status_pb2  # noqa: E402
from trainmesh.v1 import jobs_pb2, jobs_pb2_grpc, metrics_pb2, metrics_pb2_grpc  # noqa: E402

jobs_endpoint, metrics_endpoint, key, steps = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
auth = [("authorization", "Bearer " + key)]


def fail(message):
    print("grpc_client: " + message, file=sys.stderr)
    sys.exit(1)


ca_file = sys.argv[6] if len(sys.argv) > 6 and sys.argv[6] else None


def channel(endpoint):
    if ca_file is None:
        return grpc.insecure_channel(endpoint)
    with open(ca_file, "rb") as f:
        return grpc.secure_channel(endpoint, grpc.ssl_channel_credentials(root_certificates=f.read()))


jobs = jobs_pb2_grpc.JobServiceStub(channel(jobs_endpoint))
metrics = metrics_pb2_grpc.MetricsServiceStub(channel(metrics_endpoint))

# A bad request: INVALID_ARGUMENT with field violations in the status details.
bad = jobs_pb2.Job(model="mlp-policy", dataset_url="ftp://nowhere")
try:
    jobs.CreateJob(jobs_pb2.CreateJobRequest(job=bad), metadata=auth, timeout=10)
    fail("an ftp:// dataset was accepted")
except grpc.RpcError as e:
    if e.code() != grpc.StatusCode.INVALID_ARGUMENT:
        fail("bad request: %s" % e.code())
    details = dict(e.trailing_metadata()).get("grpc-status-details-bin")
    status = status_pb2.Status.FromString(details)
    violations = []
    for any_detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if any_detail.Unpack(bad_request):
            violations += [v.field for v in bad_request.field_violations]
    if "job.dataset_url" not in violations:
        fail("violations: %s" % violations)

try:
    jobs.GetJob(jobs_pb2.GetJobRequest(id="00000000-0000-4000-8000-000000000000"), metadata=auth, timeout=10)
    fail("a missing job was found")
except grpc.RpcError as e:
    if e.code() != grpc.StatusCode.NOT_FOUND:
        fail("missing job: %s" % e.code())

hyper = struct_pb2.Struct()
hyper.update({"steps": steps})
job = jobs.CreateJob(
    jobs_pb2.CreateJobRequest(
        job=jobs_pb2.Job(model="mlp-policy", dataset_url="synthetic://reach", hyperparameters=hyper,
                         labels={"client": "grpcio"})),
    metadata=auth, timeout=10)
print("grpc_client: created %s" % job.id, file=sys.stderr)

states, steps_seen, last = [], [], None
for event in jobs.WatchJob(jobs_pb2.WatchJobRequest(id=job.id), metadata=auth, timeout=120):
    name = jobs_pb2.Job.State.Name(event.state)
    if not states or states[-1] != name:
        states.append(name)
    if event.progress.step:
        steps_seen.append(event.progress.step)
    last = event
if last is None or not last.terminal:
    fail("the watch ended before the terminal event; states %s" % states)
if jobs_pb2.Job.State.Name(last.state) != "COMPLETED":
    fail("final state %s (states %s)" % (jobs_pb2.Job.State.Name(last.state), states))

series = metrics.QueryMetrics(metrics_pb2.QueryMetricsRequest(job_id=job.id, names=["train/loss"]),
                              metadata=auth, timeout=10).series
points = [p for s in series for p in s.points] if series else []
if len(points) != steps:
    fail("%d train/loss points, want %d" % (len(points), steps))
if not points[-1].value < points[0].value:
    fail("loss did not fall: %s" % [p.value for p in points])

print(json.dumps({"job": job.id, "states": states, "steps_seen": steps_seen[-1:] and steps_seen[-1],
                  "points": len(points)}))
