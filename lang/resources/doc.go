// Package resources implements the grammar of dstack's resources spec: the
// strings users write under `resources:` in a configuration.
//
//	resources:
//	  gpu: A100:40GB:2
//	  cpu: x86:16..
//	  memory: 64GB..
//	  disk: 100GB..
//	  shm_size: 16GB
//
// # Grammar
//
// Memory sizes are a number, an optional space and a unit MB, GB or TB
// (case-insensitive, binary: 1GB is 1024MB). A bare number is in gigabytes.
// Fractions are allowed as long as the result is a whole number of
// megabytes ("1.5TB", "0.5GB").
//
// Ranges are inclusive: "N" (exactly N), "MIN..", "..MAX", "MIN..MAX", or
// ".." (anything). Counts are non-negative integers; memory ranges use
// memory sizes as bounds ("24GB..80GB").
//
// A cpu spec is up to two tokens separated by ':' in any order: an
// architecture (x86 or arm) and a count range ("x86:16..", "8:arm", "4").
//
// A gpu spec is up to four tokens separated by ':' in any order:
//
//   - a vendor: nvidia, amd, google, intel or tenstorrent; "tpu" means google
//   - names: a token starting with a letter, with ',' between alternatives
//     ("H100,H200", "v5p-1024", "tpu-v5litepod-8"); each name starts with a
//     letter and holds only letters, digits and "-_.+"
//   - memory per GPU: a memory range, told from a count by its unit ("40GB..")
//   - count: a count range ("2", "1..4", "0..")
//
// For example "A100", "A100:40GB:2", "24GB..80GB:2", "H100,H200:8",
// "tpu:v5p-1024" and "nvidia:A100:80GB:1..2". A vendor written next to a
// well-known name of another vendor ("A100:amd") is an error; unknown names
// are accepted as they are.
//
// A disk spec is a memory range for the size ("100GB..").
//
// Every type with a string form implements [encoding.TextMarshaler] and
// [encoding.TextUnmarshaler]; the mapping forms ({name: A100, count: 2})
// decode through the struct fields' json tags. Parse errors are [*Error]
// values that name the offending token and its byte offset.
//
// # Defaults
//
// A gpu spec that does not give a count asks for exactly one GPU ("A100" is
// "A100:1"); a cpu spec without a count asks for "2..". The mapping forms
// get the same defaults: a decoder that fills in the fields of a mapping
// calls SetDefaults first (UnmarshalJSON does), and Validate after, as a
// mapping bypasses the grammar. [Default] holds the defaults of a whole
// block: cpu "2..", memory "8GB..", gpu "0.." and disk "100GB..".
package resources
