// Package state is dstack's record of what exists: the state document
// (what was created for each resource address, with provider IDs and the
// configuration hash it was created from), the Backend contract every
// storage implements, and the lease-based lock that lets several people
// and CI jobs share one state safely.
//
// Where to start: Backend is the contract; Encode and Decode are the only
// way a document becomes bytes and back (deterministic, checksummed,
// versioned); Hold takes a lock and keeps renewing it while work goes on.
//
// Safety rests on two rules that every backend implements and the shared
// suite in state/statetest checks:
//
//   - Every write is a compare-and-swap on the Version the writer last
//     read. A writer whose lock lapsed, or that never locked, cannot
//     replace newer state: it gets a *ConflictError and nothing changes.
//   - Locks are leases. The holder renews its lock while it works; a lock
//     whose holder stopped renewing (it crashed, was killed, lost its
//     network) expires after the lease TTL and may then be taken over,
//     without anyone running force-unlock.
//
// This package imports nothing of the project.
package state
