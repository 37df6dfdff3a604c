// Package repo builds what a run's `repos:` and `files:` deliver into its
// working directory: tar archives, each named by the SHA-256 of its bytes,
// which the provider uploads to a host's agent only when the agent does not
// hold that hash yet.
//
// A repository is two archives. Base is the tree of the commit (HEAD, or
// the branch or hash the configuration names), built with `git archive`
// and made byte-for-byte reproducible, so that every run of the same commit
// has the same hash and a large repository crosses the network once per
// host. Diff holds the uncommitted state on top of it, as dstack delivers
// it: tracked files modified (staged or not), added, and untracked files
// git does not ignore, whole and binary-safe, plus the list of tracked
// paths deleted (renames are a deletion and an addition). Files git
// ignores, untracked files a .dstackignore lists, dstack's own .dstack/
// directory (the local state) and the .git directory are never sent.
//
// A repository given by URL is cloned on this machine with the user's own
// git, its credential helpers and SSH agent, into a temporary directory;
// only the archive leaves the machine, and no credential is written into
// the archive, the job spec or the state.
//
// Options.CacheDir keeps the archives of recent commits' trees on this
// machine, so a run of a commit already packed builds only its diff.
//
// Where to start: Build for a repos entry, BuildFiles for a files entry.
// The agent unpacks the archives (agent.JobSpec's Repo and Files).
package repo
