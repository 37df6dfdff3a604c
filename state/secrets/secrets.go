// Package secrets seals the team's secrets into the state document and
// opens them again: AES-256-GCM under a 32-byte key that the team holds
// and the state never does.
//
// Each value is sealed with a fresh random nonce and the secret's name as
// additional data, so a sealed value moved to another name does not open.
// The document records the key's ID (a hash of the key) beside the
// values, so a wrong key is reported as such rather than as damage.
//
// Where the key comes from (Load): DSTACK_SECRETS_KEY (the key, base64),
// else the file DSTACK_SECRETS_KEY_FILE names, else ~/.dstack/secrets.key.
// Rotate re-seals every value under a new key in one write.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/dstackai/dstack-go/state"
)

// Cipher is the sealing this package writes and reads.
const Cipher = "aes-256-gcm"

// Key is a secrets key.
type Key [32]byte

// NewKey returns a random key.
func NewKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return Key{}, fmt.Errorf("making a secrets key: %w", err)
	}
	return k, nil
}

// ParseKey reads a key written as String writes it (standard base64 of
// the 32 bytes; spaces around it are ignored).
func ParseKey(text string) (Key, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil {
		return Key{}, errors.New("a secrets key is 32 bytes in base64 (dstack secret keygen makes one); this is not base64")
	}
	if len(b) != len(Key{}) {
		return Key{}, fmt.Errorf("a secrets key is 32 bytes in base64 (dstack secret keygen makes one); this is %d bytes", len(b))
	}
	var k Key
	copy(k[:], b)
	return k, nil
}

// String is the key in base64: what a key file or DSTACK_SECRETS_KEY
// holds.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// ID identifies the key without revealing it: the first 16 hex digits
// of a SHA-256 of it.
func (k Key) ID() string {
	h := sha256.New()
	h.Write([]byte("dstack secrets key id\x00"))
	h.Write(k[:])
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// ErrNotFound is returned for a secret that is not stored.
var ErrNotFound = errors.New("no such secret")

// KeyMismatchError says the stored secrets were sealed under another key.
type KeyMismatchError struct {
	Stored, Given string // key IDs
}

func (e *KeyMismatchError) Error() string {
	return fmt.Sprintf("the secrets in the state are sealed with key %s, and the key given is %s: use the team's key (DSTACK_SECRETS_KEY, DSTACK_SECRETS_KEY_FILE or ~/.dstack/secrets.key)", e.Stored, e.Given)
}

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,199}$`)

// ValidName checks a secret's name: what `${{ secrets.NAME }}` can
// reference (a letter or underscore, then letters, digits and
// underscores; at most 200).
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("invalid secret name %q: a name is a letter or underscore followed by letters, digits and underscores (what ${{ secrets.NAME }} can reference)", name)
	}
	return nil
}

func aead(k Key) cipher.AEAD {
	block, err := aes.NewCipher(k[:])
	if err != nil {
		panic(err) // a 32-byte key always makes a cipher
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return g
}

func additional(name string) []byte { return []byte("dstack secret\x00" + name) }

func seal(k Key, name, value string) (string, error) {
	g := aead(k)
	nonce := make([]byte, g.NonceSize(), g.NonceSize()+len(value)+g.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("sealing secret %s: %w", name, err)
	}
	return base64.StdEncoding.EncodeToString(g.Seal(nonce, nonce, []byte(value), additional(name))), nil
}

func open(k Key, name, sealed string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	g := aead(k)
	if err != nil || len(b) < g.NonceSize()+g.Overhead() {
		return "", fmt.Errorf("secret %s is damaged in the state: not a sealed value", name)
	}
	v, err := g.Open(nil, b[:g.NonceSize()], b[g.NonceSize():], additional(name))
	if err != nil {
		return "", fmt.Errorf("secret %s does not open with key %s: it was damaged or sealed under another name", name, k.ID())
	}
	return string(v), nil
}

// check refuses a key other than the one the state's secrets are sealed
// with.
func check(st *state.State, k Key) error {
	if st.Secrets == nil || len(st.Secrets.Values) == 0 {
		return nil
	}
	if st.Secrets.Cipher != Cipher {
		return fmt.Errorf("the state's secrets are sealed with %q, which this dstack does not know (it knows %s): upgrade dstack", st.Secrets.Cipher, Cipher)
	}
	if st.Secrets.KeyID != k.ID() {
		return &KeyMismatchError{Stored: st.Secrets.KeyID, Given: k.ID()}
	}
	return nil
}

// Set seals value under k and stores it as name, replacing any value of
// that name. A state whose secrets are sealed under another key is
// refused (*KeyMismatchError): rotate first.
func Set(st *state.State, k Key, name, value string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if err := check(st, k); err != nil {
		return err
	}
	sealed, err := seal(k, name, value)
	if err != nil {
		return err
	}
	if st.Secrets == nil || len(st.Secrets.Values) == 0 {
		st.Secrets = &state.Secrets{Cipher: Cipher, KeyID: k.ID(), Values: map[string]string{}}
	}
	st.Secrets.Values[name] = sealed
	return nil
}

// Get opens the secret name; ErrNotFound when it is not stored.
func Get(st *state.State, k Key, name string) (string, error) {
	if !st.HasSecret(name) {
		return "", fmt.Errorf("secret %s: %w", name, ErrNotFound)
	}
	if err := check(st, k); err != nil {
		return "", err
	}
	return open(k, name, st.Secrets.Values[name])
}

// Open opens the named secrets (all of them when names is nil); a name
// not stored is left out of the result.
func Open(st *state.State, k Key, names []string) (map[string]string, error) {
	if names == nil {
		names = st.SecretNames()
	}
	out := make(map[string]string, len(names))
	if len(names) == 0 || st.Secrets == nil {
		return out, nil
	}
	if err := check(st, k); err != nil {
		return nil, err
	}
	for _, n := range names {
		sealed, ok := st.Secrets.Values[n]
		if !ok {
			continue
		}
		v, err := open(k, n, sealed)
		if err != nil {
			return nil, err
		}
		out[n] = v
	}
	return out, nil
}

// Delete removes the secret name and reports whether it was stored.
func Delete(st *state.State, name string) bool {
	if !st.HasSecret(name) {
		return false
	}
	delete(st.Secrets.Values, name)
	if len(st.Secrets.Values) == 0 {
		st.Secrets = nil
	}
	return true
}

// Rotate re-seals every secret, opened with old, under next, and returns
// how many there are. Nothing changes unless every one opens.
func Rotate(st *state.State, old, next Key) (int, error) {
	all, err := Open(st, old, nil)
	if err != nil {
		return 0, err
	}
	if len(all) == 0 {
		return 0, nil
	}
	values := make(map[string]string, len(all))
	for n, v := range all {
		if values[n], err = seal(next, n, v); err != nil {
			return 0, err
		}
	}
	st.Secrets = &state.Secrets{Cipher: Cipher, KeyID: next.ID(), Values: values}
	return len(values), nil
}
