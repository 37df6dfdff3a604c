// Package agent is the host agent: one per machine, it runs jobs (tasks,
// service replicas, dev environments) through a [Runtime] and serves them
// over an authenticated HTTP/JSON API.
//
// Where to start:
//
//   - api.go holds the wire types ([JobSpec], [Job], [Inventory], [Metrics]),
//     shared with the client in agent/client.
//   - runtime.go is the contract a runtime implements: agent/host runs
//     commands as host processes, agent/runtime/docker runs containers.
//   - [Manager] owns the jobs: it persists each one under its data dir,
//     drives the state machine pending → pulling → creating → running →
//     done | failed | stopped, keeps every job's output on disk under a size
//     cap, and after a restart re-attaches to the jobs that were running.
//   - [Server] is the HTTP API over a Manager; [Server.Routes] lists every
//     route in one place (the server registers them from that list and the
//     tests check each for authentication). agent/openapi.yaml documents it.
//
// The agent knows nothing of runs, replicas or clusters: the submitter
// passes multi-node settings (DSTACK_NODE_RANK, DSTACK_NODES_NUM,
// DSTACK_MASTER_NODE_IP, DSTACK_NODES_IPS, DSTACK_GPUS_NUM,
// DSTACK_GPUS_PER_NODE, DSTACK_RUN_NAME, ...) in [JobSpec.Env] and the agent
// hands them to the job unchanged.
//
// What it leaves to others: inventory collection (agent/inventory), the
// process and container mechanics (the runtimes), and dialling remote
// agents through SSH (the client takes any *http.Client).
package agent
