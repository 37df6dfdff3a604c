package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/renameio/v2"

	"github.com/dstackai/dstack-go/providers"
)

// Config is how a simulated cloud behaves. It lives in sim.json in the
// cloud's directory; its zero value (and a missing file) is a perfect
// cloud: no latency, unlimited capacity, no failures, no rate limit, and
// tasks that run until they are deleted.
//
// An example sim.json:
//
//	{
//	  "latency": "20ms",
//	  "capacity": {"*": 100, "aws/us-east-1/p5.48xlarge": 2, "aws/us-east-1/p5.48xlarge+spot": 0},
//	  "failures": [
//	    {"op": "create", "kind": "instance", "address": "fleet.gpu*", "code": "no-capacity", "times": 1},
//	    {"op": "describe", "code": "rate-limited", "probability": 0.1}
//	  ],
//	  "rate_limit": 50,
//	  "job_duration": "2s",
//	  "seed": 1
//	}
type Config struct {
	// Latency is added to every Offers, Create and Delete call, and once
	// to every Describe call (Describe is batched).
	Latency Duration `json:"latency,omitempty"`
	// Capacity is the most live machines (instances, and jobs on machines
	// of their own) of one offer. Keys are "backend/region/instance_type"
	// for an on-demand offer and "backend/region/instance_type+spot" for a
	// spot one (the two are separate pools); "*" is the limit of offers
	// without a key of their own. An offer with neither is unlimited.
	Capacity map[string]int `json:"capacity,omitempty"`
	// Failures are injected failures, tried in order; the first that
	// matches a call fires.
	Failures []Failure `json:"failures,omitempty"`
	// RateLimit is the most calls per second (all operations together)
	// that one process's Cloud accepts, with bursts of up to that many
	// calls (at least one); calls beyond it fail with
	// providers.RateLimited and a RetryAfter. Zero means no limit.
	RateLimit float64 `json:"rate_limit,omitempty"`
	// JobDuration is how long a job of a task (a resource whose spec has
	// "type": "task") runs: Describe reports it done once this long has
	// passed since it was created; zero means done at once. Nil (absent
	// in JSON) means tasks run until deleted. Services and dev
	// environments always run until deleted.
	JobDuration *Duration `json:"job_duration,omitempty"`
	// Seed seeds the draws of failures with a Probability, so that a run
	// is repeatable. Every process draws from its own generator.
	Seed uint64 `json:"seed,omitempty"`
}

// Ops that failures can be injected into.
const (
	OpCreate   = "create"
	OpDelete   = "delete"
	OpDescribe = "describe"
)

// CodeCrash is the code of a failure that crashes the process: the
// operation takes effect (Create makes and records the object, Delete
// terminates it), then [Cloud.Crash] is called instead of returning.
const CodeCrash providers.Code = "crash"

// Failure is an injected failure: a call of Op on an object of Kind whose
// address matches Address fails with Code.
type Failure struct {
	// Op is the operation it fires in: create, delete or describe.
	Op string `json:"op"`
	// Kind is the kind of object it fires for; empty means any.
	Kind providers.ObjectKind `json:"kind,omitempty"`
	// Address is a path.Match pattern on the object's address
	// ("fleet.gpu*"; write "fleet.gpu\\[0\\]" in JSON for a literal
	// index); empty means any. A Describe call matches when any object
	// it finds does; a Delete of an unknown ID has the address "".
	Address string `json:"address,omitempty"`
	// Code is what the call fails with: no-capacity, quota, rate-limited
	// (with a RetryAfter of 10ms), auth, or crash (see [CodeCrash]).
	Code providers.Code `json:"code"`
	// Times is how often it fires in all, across every process using the
	// directory (the count is kept there); zero means every time.
	Times int `json:"times,omitempty"`
	// Probability is the chance, from 0 to 1, that it fires when it
	// matches; zero means it always does.
	Probability float64 `json:"probability,omitempty"`
}

// RetryAfter is the wait a rate-limited injected failure asks for.
const RetryAfter = 10 * time.Millisecond

// key identifies f, at index i of the failures, in the fired counts kept
// in the directory: editing a failure starts its count afresh.
func (f Failure) key(i int) string {
	data, _ := json.Marshal(f)
	sum := sha256.Sum256(data)
	return fmt.Sprintf("%d-%x", i, sum[:6])
}

// matches reports whether f applies to a call of op on an object of kind
// at address.
func (f Failure) matches(op string, kind providers.ObjectKind, address string) bool {
	if f.Op != op || f.Kind != "" && f.Kind != kind {
		return false
	}
	if f.Address == "" {
		return true
	}
	ok, _ := path.Match(f.Address, address) // validated when read
	return ok
}

// Duration is a time.Duration written in JSON as a string ("20ms").
type Duration time.Duration

// MarshalText formats d as time.Duration does ("1m30s").
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(time.Duration(d).String()), nil
}

// UnmarshalText parses a duration such as "20ms" or "0s".
func (d *Duration) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		return errors.New(`empty duration: write "0s", or leave the field out`)
	}
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// validate reports the first problem of c.
func (c Config) validate() error {
	if c.Latency < 0 {
		return fmt.Errorf("latency %s: must not be negative", time.Duration(c.Latency))
	}
	if c.JobDuration != nil && *c.JobDuration < 0 {
		return fmt.Errorf("job_duration %s: must not be negative", time.Duration(*c.JobDuration))
	}
	if c.RateLimit < 0 || math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) {
		return fmt.Errorf("rate_limit %v: want a number of calls per second, or 0 for none", c.RateLimit)
	}
	for k, n := range c.Capacity {
		if parts := strings.Split(k, "/"); k != "*" && (len(parts) != 3 || slices.Contains(parts, "")) {
			return fmt.Errorf("capacity %q: want backend/region/instance_type, with +spot for spot offers, or *", k)
		}
		if n < 0 {
			return fmt.Errorf("capacity %q: %d must not be negative", k, n)
		}
	}
	for i, f := range c.Failures {
		if err := f.validate(); err != nil {
			return fmt.Errorf("failures[%d]: %w", i, err)
		}
	}
	return nil
}

func (f Failure) validate() error {
	switch f.Op {
	case OpCreate, OpDelete, OpDescribe:
	default:
		return fmt.Errorf("op %q: want create, delete or describe", f.Op)
	}
	switch f.Kind {
	case "", providers.KindInstance, providers.KindVolume, providers.KindGateway, providers.KindJob:
	default:
		return fmt.Errorf("kind %q: want instance, volume, gateway, job, or none for any", f.Kind)
	}
	if _, err := path.Match(f.Address, ""); err != nil {
		return fmt.Errorf("address %q: %w", f.Address, err)
	}
	switch f.Code {
	case providers.NoCapacity, providers.Quota, providers.RateLimited, providers.Auth, CodeCrash:
	default:
		return fmt.Errorf("code %q: want no-capacity, quota, rate-limited, auth or crash", f.Code)
	}
	if f.Times < 0 {
		return fmt.Errorf("times %d: must not be negative", f.Times)
	}
	if !(f.Probability >= 0 && f.Probability <= 1) {
		return fmt.Errorf("probability %v: want a number from 0 to 1", f.Probability)
	}
	return nil
}

// WriteConfig validates c and writes it to dir/sim.json, creating dir if
// needed. Clouds read the file when they are opened, so a Cloud already
// open keeps the configuration it read.
func WriteConfig(dir string, c Config) error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("sim config: %w", err)
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("sim config: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sim config: %w", err)
	}
	if err := renameio.WriteFile(filepath.Join(dir, configFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("sim config: %w", err)
	}
	return nil
}

// readConfig reads dir/sim.json, or returns the zero Config when there
// is none. Unknown fields are errors, to catch misspellings.
func readConfig(dir string) (Config, error) {
	name := filepath.Join(dir, configFile)
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return Config{}, nil
	}
	if err != nil {
		return Config{}, err
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	if err := c.validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}
