// Package httpstate stores state on a server speaking Terraform's HTTP
// backend protocol, so the state servers people already run for
// Terraform (GitLab's, Artifactory's, the many small ones) serve dstack
// unchanged.
//
// # Protocol
//
// As Terraform's http backend: GET address returns the state (404, 204,
// or an empty 200 when there is none; an empty 200 with an ETag is an
// empty stored object, read as a corrupt state); update_method (POST) stores it,
// with ?ID=<lock id> when the writer holds the lock; DELETE removes it.
// lock_method (LOCK) at lock_address takes the lock, with the lock info
// as JSON in the body (Terraform's keys: ID, Operation, Info, Who,
// Version, Created, Path), and is answered 200, or 423 Locked or 409
// Conflict with the holder's lock info; unlock_method (UNLOCK) at
// unlock_address releases it. Unlike Terraform, which runs without locks
// unless lock_address is set, dstack always locks: lock_address defaults
// to address and unlock_address to lock_address.
//
// Settings: address (required), update_method, lock_address,
// lock_method, unlock_address, unlock_method, username and password
// (HTTP basic auth; DSTACK_HTTP_USERNAME and DSTACK_HTTP_PASSWORD, then
// TF_HTTP_USERNAME and TF_HTTP_PASSWORD, when not set), skip_cert_verification,
// client_ca_certificate_pem, client_certificate_pem and
// client_private_key_pem (PEM text, as Terraform takes them), retry_max
// (2), retry_wait_min (1) and retry_wait_max (30) in seconds or as
// durations ("500ms"), lock_ttl (the lease when a caller gives none; two
// minutes) and workspaces_address.
//
// # Workspaces
//
// The protocol knows one state per address. When address contains
// {workspace} it is a template, the name (path-escaped) filling it in,
// and lock_address and unlock_address must contain it too. Without it
// only the "default" workspace exists and others are refused with
// ErrSingleWorkspace. Listing workspaces needs a server extension:
// workspaces_address, answering GET with a JSON array of names. Without
// it, Workspaces can only say whether "default" has state.
//
// # What holds with which server
//
// Writes are compare-and-swap on the Version read: the server's ETag
// when it sends one, otherwise the SHA-256 of the bytes. Every write
// first GETs the state and refuses (a *state.ConflictError) if it is not
// the revision read, then sends the state with If-Match: <ETag> (or
// If-None-Match: * for a first write).
//
//   - A server that honours If-Match and If-None-Match (answering 412,
//     read as a *state.ConflictError) makes the swap atomic: no write
//     replaces state it did not read, however writers race.
//   - A server without them (most Terraform state servers: the protocol
//     has no conditional write) leaves a window of one round trip between
//     the GET and the write, in which a writer that does not hold the lock
//     can overwrite another's write. Writers that hold the lock cannot
//     race each other, since the lock is exclusive, and a server that
//     checks the ?ID= of a write against the lock (GitLab's does) refuses
//     a writer whose lock was broken while another holds it.
//
// Locks are leases only where the server reads them. The lock body also
// carries Expires, the end of the lease; Renew repeats the lock request
// with the same ID and IntentHeader "renew"; LockInfo asks with
// IntentHeader "probe". A server announcing LeaseHeader (the test server
// in httpstatetest does) takes the lease as Expires − Created on its own
// clock, hands an expired lock to the next taker, extends a lease on
// renewal and answers probes without taking the lock: every guarantee of
// the state package holds.
//
// A plain Terraform-protocol server keeps a lock until UNLOCK: a holder
// that crashed or was killed keeps the state locked until someone runs
// dstack force-unlock, as with Terraform. On such a server Renew takes
// the 423 naming its own ID as "still held" (there is nothing to extend);
// a 200 means the lock had been broken and given back to the renewal,
// which releases it and reports a *state.LockLostError. LockInfo can only
// ask by taking the lock: a free lock is taken and released at once, and
// during those milliseconds others see it held by "dstack lock probe".
// ForceUnlock sends UNLOCK with the holder's lock info, as Terraform's
// force-unlock does; Unlock sends the lock info this client took the lock
// with. Both rely on the server checking the ID in the body, as
// Terraform's own force-unlock does.
//
// Requests that fail on the network or with 429 or 5xx (not 501) are
// retried, as by Terraform. A write whose earlier attempt may have
// landed, and whose retry then gets 412, reads the state back and counts
// the write as done if the stored bytes are its own.
package httpstate
