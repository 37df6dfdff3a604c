package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"

	"github.com/google/uuid"
)

// FormatVersion is the version of the state document this binary writes.
// Documents with a lower version are upgraded in memory when read; a
// higher one is refused.
const FormatVersion = 1

// State is the state document.
type State struct {
	// Version is the document format version (FormatVersion).
	Version int `json:"version"`
	// Serial increases by one with every write.
	Serial uint64 `json:"serial"`
	// Lineage identifies one state through its whole life; it is fixed at
	// creation, so a state from elsewhere is never mistaken for this one.
	Lineage string `json:"lineage"`
	// ToolVersion is the dstack version that wrote the document.
	ToolVersion string `json:"dstack_version"`
	// Resources are sorted by address.
	Resources []*Resource `json:"resources"`
	// Outputs are values a configuration publishes.
	Outputs map[string]Output `json:"outputs,omitempty"`
	// Secrets are the team's secrets, encrypted (see Secrets).
	Secrets *Secrets `json:"secrets,omitempty"`
	// Tokens are the tokens that services with auth accept on the
	// gateway (dstack token create), kept as SHA-256 hashes only.
	Tokens []Token `json:"tokens,omitempty"`
	// Checksum is the SHA-256 of the document written with an empty
	// checksum; Decode refuses a document whose checksum does not match.
	// Encode writes it last.
	Checksum string `json:"checksum"`
}

// Resource is what exists for one address.
type Resource struct {
	// Address is `<kind>.<name>`.
	Address string `json:"address"`
	// ConfigHash is the hash of the configuration it was made from.
	ConfigHash string `json:"config_hash,omitempty"`
	// DependsOn lists addresses this resource needs, sorted.
	DependsOn []string `json:"depends_on,omitempty"`
	// Attributes are the resource's recorded values (not secret).
	Attributes map[string]any `json:"attributes,omitempty"`
	// Instances are the machines, replicas or jobs of the resource.
	Instances []*Instance `json:"instances,omitempty"`
}

// Instance is one machine, replica or job of a resource.
type Instance struct {
	// Index is the instance's position: fleet.trainers[1].
	Index int `json:"index"`
	// ProviderID is what the provider calls it (an instance ID, a job ID).
	ProviderID string `json:"provider_id,omitempty"`
	// Provider names the backend that made it.
	Provider string `json:"provider,omitempty"`
	// Token is the idempotency token recorded before create, so a crash
	// between create and record leaves a resource that refresh can adopt.
	Token string `json:"token,omitempty"`
	// Status is the last known status (provisioning, running, ...).
	Status string `json:"status,omitempty"`
	// Attributes are recorded values that are not secret.
	Attributes map[string]any `json:"attributes,omitempty"`
	// Secrets are sensitive values (agent tokens, SSH private keys,
	// registry passwords). They are stored but never shown: Masked
	// replaces them, and every command prints masked documents only.
	Secrets map[string]string `json:"secrets,omitempty"`
}

// Token is a service token: its name and its hash; the token itself is
// shown once, when it is made, and kept nowhere.
type Token struct {
	Name string `json:"name"`
	// Hash is the SHA-256 of the token, hex.
	Hash string `json:"sha256"`
	// Created is when it was made (RFC 3339).
	Created string `json:"created"`
}

// Output is a value a configuration publishes.
type Output struct {
	Value     any  `json:"value"`
	Sensitive bool `json:"sensitive,omitempty"`
}

// New returns an empty state with a fresh lineage.
func New(toolVersion string) *State {
	return &State{Version: FormatVersion, Lineage: uuid.NewString(), ToolVersion: toolVersion}
}

// Resource returns the resource at addr, or nil.
func (s *State) Resource(addr string) *Resource {
	i := sort.Search(len(s.Resources), func(i int) bool { return s.Resources[i].Address >= addr })
	if i < len(s.Resources) && s.Resources[i].Address == addr {
		return s.Resources[i]
	}
	return nil
}

// Put adds or replaces the resource at r.Address, keeping the order.
func (s *State) Put(r *Resource) {
	i := sort.Search(len(s.Resources), func(i int) bool { return s.Resources[i].Address >= r.Address })
	if i < len(s.Resources) && s.Resources[i].Address == r.Address {
		s.Resources[i] = r
		return
	}
	s.Resources = append(s.Resources, nil)
	copy(s.Resources[i+1:], s.Resources[i:])
	s.Resources[i] = r
}

// Remove deletes the resource at addr and reports whether it was there.
func (s *State) Remove(addr string) bool {
	i := sort.Search(len(s.Resources), func(i int) bool { return s.Resources[i].Address >= addr })
	if i < len(s.Resources) && s.Resources[i].Address == addr {
		s.Resources = append(s.Resources[:i], s.Resources[i+1:]...)
		return true
	}
	return false
}

// Clone returns a deep copy, through the document's own encoding.
func (s *State) Clone() *State {
	b, err := json.Marshal(s)
	if err != nil {
		panic(fmt.Sprintf("state: cloning: %v", err))
	}
	var c State
	if err := json.Unmarshal(b, &c); err != nil {
		panic(fmt.Sprintf("state: cloning: %v", err))
	}
	return &c
}

// Masked returns a copy with every secret and sensitive output replaced
// by "(sensitive value)", for showing to people.
func (s *State) Masked() *State {
	c := s.Clone()
	for _, r := range c.Resources {
		for _, in := range r.Instances {
			for k := range in.Secrets {
				in.Secrets[k] = Redacted
			}
		}
	}
	for k, o := range c.Outputs {
		if o.Sensitive {
			o.Value = Redacted
			c.Outputs[k] = o
		}
	}
	if c.Secrets != nil {
		for k := range c.Secrets.Values {
			c.Secrets.Values[k] = Redacted
		}
	}
	return c
}

// Redacted stands in for a sensitive value in anything shown.
const Redacted = "(sensitive value)"

// normalize sorts everything order may vary in, so equal states encode
// to equal bytes.
func (s *State) normalize() {
	sort.Slice(s.Resources, func(i, j int) bool { return s.Resources[i].Address < s.Resources[j].Address })
	for _, r := range s.Resources {
		sort.Strings(r.DependsOn)
		sort.Slice(r.Instances, func(i, j int) bool { return r.Instances[i].Index < r.Instances[j].Index })
	}
}

// Encode renders the document. The same state always gives the same
// bytes: resources sorted by address, one per line, so a diff of two state
// files shows the resources that changed, line by line. Compact lines
// rather than indented JSON keep the encoding of 10,000 resources at a
// third of the time.
//
// The checksum is the SHA-256 of the document as encoded with an empty
// checksum field. Checksum is the last field, so it is filled in place
// rather than by encoding twice.
func Encode(s *State) ([]byte, error) {
	if s.Version == 0 {
		s.Version = FormatVersion
	}
	s.normalize()
	s.Checksum = ""
	var buf bytes.Buffer
	buf.Grow(256 + 512*len(s.Resources))
	fmt.Fprintf(&buf, `{"version":%d,"serial":%d,"lineage":`, s.Version, s.Serial)
	if err := writeJSON(&buf, s.Lineage); err != nil {
		return nil, err
	}
	buf.WriteString(`,"dstack_version":`)
	if err := writeJSON(&buf, s.ToolVersion); err != nil {
		return nil, err
	}
	if len(s.Outputs) > 0 {
		buf.WriteString(`,"outputs":`)
		if err := writeJSON(&buf, s.Outputs); err != nil {
			return nil, err
		}
	}
	if s.Secrets != nil && len(s.Secrets.Values) > 0 {
		buf.WriteString(`,"secrets":`)
		if err := writeJSON(&buf, s.Secrets); err != nil {
			return nil, err
		}
	}
	if len(s.Tokens) > 0 {
		buf.WriteString(`,"tokens":`)
		if err := writeJSON(&buf, s.Tokens); err != nil {
			return nil, err
		}
	}
	buf.WriteString(`,"resources":[`)
	line := make([]byte, 0, 1024)
	for i, r := range s.Resources {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
		var err error
		if line, err = appendResource(line[:0], r); err != nil {
			return nil, fmt.Errorf("encoding %s: %w", r.Address, err)
		}
		buf.Write(line)
	}
	buf.WriteString("\n],")
	body := append(buf.Bytes(), emptyChecksum...)
	body = append(body, "}\n"...)
	sum := sha256.Sum256(body)
	s.Checksum = hex.EncodeToString(sum[:])
	i := len(body) - len(emptyChecksum) - 2
	out := make([]byte, 0, len(body)+len(s.Checksum))
	out = append(out, body[:i+len(checksumKey)]...)
	out = append(out, s.Checksum...)
	out = append(out, body[i+len(checksumKey):]...)
	return out, nil
}

var (
	checksumKey   = []byte(`"checksum":"`)
	emptyChecksum = []byte(`"checksum":""`)
)

// writeJSON appends v's compact JSON, without HTML escaping or newline.
func writeJSON(buf *bytes.Buffer, v any) error {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encoding state: %w", err)
	}
	buf.Truncate(buf.Len() - 1) // Encode's newline
	return nil
}

// CorruptError says a stored state cannot be read. Nothing is written
// over a corrupt state: a write needs the Version of a state that was
// read successfully.
type CorruptError struct {
	// Where names the object (a path, a bucket key, a table row).
	Where  string
	Reason string
	// Version is the stored revision that is corrupt, where the backend
	// knows it: a write naming it replaces the corrupt document (state
	// push -force), and nothing else does.
	Version Version
}

// WithVersion records in a *CorruptError the revision that is corrupt;
// other errors are returned as they are.
func WithVersion(err error, v Version) error {
	var ce *CorruptError
	if errors.As(err, &ce) {
		ce.Version = v
	}
	return err
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("state at %s is corrupt: %s; it was not changed. Restore it from a backup (a state pull -out copy; local: the .backup file beside it; object stores: an earlier object version; pg: a database backup) or remove it deliberately", e.Where, e.Reason)
}

// ErrNewerVersion is returned for a document written by a newer dstack.
var ErrNewerVersion = errors.New("state was written by a newer dstack")

// Decode parses and checks a stored document: valid JSON, a matching
// checksum, a known format version, and a lineage. where names the
// object for error messages.
func Decode(data []byte, where string) (*State, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &CorruptError{Where: where, Reason: "it is empty"}
	}
	s, err := decodeLines(data)
	if err != nil {
		return nil, &CorruptError{Where: where, Reason: fmt.Sprintf("it is not a state document (%v); it may be truncated", err)}
	}
	if s.Version > FormatVersion {
		return nil, fmt.Errorf("%w: %s has format version %d and this dstack reads up to %d; upgrade dstack", ErrNewerVersion, where, s.Version, FormatVersion)
	}
	if s.Version < 1 {
		return nil, &CorruptError{Where: where, Reason: fmt.Sprintf("format version %d is not valid", s.Version)}
	}
	if s.Lineage == "" {
		return nil, &CorruptError{Where: where, Reason: "it has no lineage"}
	}
	if s.Checksum == "" {
		return nil, &CorruptError{Where: where, Reason: "it has no checksum"}
	}
	// The checksum covers the exact bytes Encode produced, with the
	// checksum emptied; any other byte change, even one that keeps the JSON
	// valid, is damage or a hand edit.
	i := bytes.LastIndex(data, checksumKey)
	if i < 0 || !bytes.HasPrefix(data[i+len(checksumKey):], []byte(s.Checksum+`"`)) {
		return nil, &CorruptError{Where: where, Reason: "its checksum field is not where dstack writes it (edited by hand?)"}
	}
	body := make([]byte, 0, len(data))
	body = append(body, data[:i+len(checksumKey)]...)
	body = append(body, data[i+len(checksumKey)+len(s.Checksum):]...)
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != s.Checksum {
		return nil, &CorruptError{Where: where, Reason: "its checksum does not match its content (edited by hand or damaged)"}
	}
	upgrade(s)
	return s, nil
}

var (
	resourcesOpen  = []byte(`"resources":[` + "\n")
	resourcesClose = []byte("\n],")
)

// decodeLines decodes a document. One that Encode wrote holds one
// resource per line; those lines are decoded in parallel, which on a
// large state is most of the work. Anything else is decoded as a whole.
func decodeLines(data []byte) (*State, error) {
	open := bytes.Index(data, resourcesOpen)
	end := bytes.LastIndex(data, resourcesClose)
	if open < 0 || end < open+len(resourcesOpen) || runtime.GOMAXPROCS(0) == 1 {
		return decodeWhole(data)
	}
	body := data[open+len(resourcesOpen) : end]
	head := make([]byte, 0, open+64+len(data)-end)
	head = append(head, data[:open]...)
	head = append(head, `"resources":[]`...)
	head = append(head, data[end+len(resourcesClose)-1:]...)
	s, err := decodeWhole(head)
	if err != nil || len(s.Resources) != 0 {
		return decodeWhole(data)
	}
	lines := bytes.Split(body, []byte("\n"))
	s.Resources = make([]*Resource, len(lines))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(lines)/64))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		// Each worker decodes a run of lines with one decoder, as a
		// stream of values (a decoder per line cost a buffer per line).
		lo, hi := w*len(lines)/workers, (w+1)*len(lines)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = decodeRun(lines[lo:hi], s.Resources[lo:hi], lo)
		}()
	}
	wg.Wait()
	if errors.Join(errs...) != nil {
		// Not the layout Encode writes after all: read it as a whole,
		// which says what is wrong with it.
		return decodeWhole(data)
	}
	return s, nil
}

// decodeRun decodes lines, one resource each (the comma that ends a line
// dropped), into out; first is the index of lines[0], for messages. A line
// that does not hold exactly one value is an error.
func decodeRun(lines [][]byte, out []*Resource, first int) error {
	size := 0
	for _, l := range lines {
		size += len(l) + 1
	}
	buf := make([]byte, 0, size)
	ends := make([]int64, len(lines)) // where each line's text ends in buf
	for i, l := range lines {
		buf = append(buf, bytes.TrimSuffix(l, []byte(","))...)
		ends[i] = int64(len(buf))
		buf = append(buf, '\n')
	}
	dec := json.NewDecoder(bytes.NewReader(buf))
	dec.UseNumber()
	for i := range lines {
		var r Resource
		if err := dec.Decode(&r); err != nil {
			return fmt.Errorf("resource %d: %w", first+i+1, err)
		}
		if off := dec.InputOffset(); off > ends[i] || len(bytes.TrimSpace(buf[off:ends[i]])) != 0 {
			return fmt.Errorf("resource %d: not one value on its line", first+i+1)
		}
		out[i] = &r
	}
	return nil
}

func decodeWhole(data []byte) (*State, error) {
	var s State
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&s); err != nil {
		return nil, err
	}
	return &s, nil
}

// upgrade brings an older document to FormatVersion in memory. Version 1
// is the first, so there is nothing to do yet; each later version adds a
// step here.
func upgrade(s *State) {
	s.Version = FormatVersion
}
