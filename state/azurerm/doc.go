// Package azurerm stores state in Azure Blob Storage, configured like
// Terraform's azurerm backend (storage_account_name, container_name, key,
// access_key or sas_token; see New).
//
// Layout, in the container:
//
//	<key>                     the default workspace's state
//	<key>env:<workspace>      another workspace's state (Terraform's naming)
//	<key>.lock                the default workspace's lock (JSON LockInfo)
//	<key>.lockenv:<workspace> another workspace's lock
//
// A lock blob's name starts with "<key>." and a state blob's is "<key>"
// or starts with "<key>env:", so no workspace name, ".lock" suffix or not,
// can make a state blob and a lock blob collide.
//
// # Writes
//
// A state's Version is its blob's ETag. Write uploads with If-Match on the
// Version it was given, or If-None-Match "*" when there is none, so the
// compare-and-swap is done by the storage service itself: a writer whose
// lock lapsed, or that never locked, gets a *state.ConflictError and
// nothing changes.
//
// # Locks
//
// The dstack lock is a lease with a TTL the holder keeps renewing (two
// minutes by default, seconds in tests). An Azure blob lease cannot be that
// lock: its duration is 15 to 60 seconds or infinite, and a crashed
// holder's infinite lease (what Terraform uses) stays until someone breaks
// it by hand. So the lock is the lock blob, holding the JSON LockInfo and
// changed only conditionally on its ETag:
//
//   - Lock creates it with If-None-Match "*"; of racers, one create wins.
//     A lock whose Expires has passed is taken over with If-Match on the
//     ETag that was read, so of racers for an expired lock one wins too.
//   - Renew rewrites Expires with If-Match; Unlock and ForceUnlock delete
//     with If-Match. A lost race re-reads and decides again.
//
// Expiry is judged on the clocks of the machines involved, so they are
// assumed to be roughly in sync (NTP); a skew shifts when a crashed
// holder's lock may be taken over by that much.
//
// Writes under a lock are fenced with a real Azure blob lease: Write
// reads the lock blob, checks that no other holder's live lock is there
// (else *state.LockLostError), acquires a 15-second blob lease on the lock
// blob with If-Match on the ETag it checked, uploads the state, and
// releases the blob lease. While it is held nobody can take the lock over,
// so the check and the write are one atomic step: a holder never writes
// after its successor has started. The blob lease's ID is derived from the
// dstack lock ID, so the holder's own Renew and Unlock pass it and are not
// blocked by their own write. A writer killed between acquire and release
// leaves the blob lease for at most 15 seconds; takeover of its expired
// lock waits for that (Lock reports the lock as held meanwhile).
// ForceUnlock breaks such a blob lease.
package azurerm
