package secrets

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/state"
)

func mustKey(t *testing.T) Key {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSealedAtRest: the encoded state document, which is what every
// backend stores, holds neither the values nor their base64, only sealed
// bytes; decoded again, the values open with the key.
func TestSealedAtRest(t *testing.T) {
	k := mustKey(t)
	st := state.New("test")
	values := map[string]string{"hf_token": "hf_SeCrEt_value_42", "db_password": "pa55-w0rd-xyz"}
	for n, v := range values {
		if err := Set(st, k, n, v); err != nil {
			t.Fatal(err)
		}
	}
	data, err := state.Encode(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v)), base64.RawStdEncoding.EncodeToString([]byte(v))} {
			if bytes.Contains(data, []byte(form)) {
				t.Fatalf("the state document holds %q in clear:\n%s", form, data)
			}
		}
	}
	if bytes.Contains(data, []byte(k.String())) {
		t.Fatal("the state document holds the key")
	}
	back, err := state.Decode(data, "test")
	if err != nil {
		t.Fatal(err)
	}
	if got := back.SecretNames(); strings.Join(got, ",") != "db_password,hf_token" {
		t.Fatalf("names %v", got)
	}
	got, err := Open(back, k, nil)
	if err != nil {
		t.Fatal(err)
	}
	for n, v := range values {
		if got[n] != v {
			t.Fatalf("%s = %q, want %q", n, got[n], v)
		}
	}
	// Masked (what state pull and show print) shows no sealed bytes.
	m, _ := state.Encode(back.Masked())
	for _, sealed := range back.Secrets.Values {
		if bytes.Contains(m, []byte(sealed)) {
			t.Fatal("the masked state shows a sealed value")
		}
	}
	// Two seals of one value differ (a fresh nonce each).
	a, _ := seal(k, "x", "same")
	b, _ := seal(k, "x", "same")
	if a == b {
		t.Fatal("sealing twice gave the same bytes")
	}
}

func TestWrongKeyAndTampering(t *testing.T) {
	k, other := mustKey(t), mustKey(t)
	st := state.New("test")
	if err := Set(st, k, "a", "alpha"); err != nil {
		t.Fatal(err)
	}
	if err := Set(st, k, "b", "beta"); err != nil {
		t.Fatal(err)
	}
	var km *KeyMismatchError
	if _, err := Get(st, other, "a"); !errors.As(err, &km) || km.Stored != k.ID() {
		t.Fatalf("Get with another key: %v, want a *KeyMismatchError", err)
	}
	if err := Set(st, other, "c", "x"); !errors.As(err, &km) {
		t.Fatalf("Set with another key: %v, want a *KeyMismatchError", err)
	}
	// A sealed value moved to another name does not open.
	st.Secrets.Values["a"], st.Secrets.Values["b"] = st.Secrets.Values["b"], st.Secrets.Values["a"]
	if _, err := Get(st, k, "a"); err == nil || strings.Contains(err.Error(), "beta") {
		t.Fatalf("a swapped value opened: %v", err)
	}
	st.Secrets.Values["a"] = "bm90IHNlYWxlZA=="
	if _, err := Get(st, k, "a"); err == nil {
		t.Fatal("a damaged value opened")
	}
	if _, err := Get(st, k, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(nope) = %v, want ErrNotFound", err)
	}
	if err := Set(st, k, "pass-word", "x"); err == nil {
		t.Fatal("a name ${{ secrets.NAME }} cannot reference was accepted")
	}
}

func TestRotate(t *testing.T) {
	old, next := mustKey(t), mustKey(t)
	st := state.New("test")
	for _, n := range []string{"a", "b", "c"} {
		if err := Set(st, old, n, "v-"+n); err != nil {
			t.Fatal(err)
		}
	}
	before := st.Clone()
	if _, err := Rotate(st, next, old); err == nil {
		t.Fatal("rotating with the wrong old key worked")
	}
	if n, err := Rotate(st, old, next); err != nil || n != 3 {
		t.Fatalf("Rotate = %d, %v", n, err)
	}
	if st.Secrets.KeyID != next.ID() {
		t.Fatalf("key id %s after rotation, want %s", st.Secrets.KeyID, next.ID())
	}
	for _, n := range []string{"a", "b", "c"} {
		if v, err := Get(st, next, n); err != nil || v != "v-"+n {
			t.Fatalf("%s after rotation: %q, %v", n, v, err)
		}
		if st.Secrets.Values[n] == before.Secrets.Values[n] {
			t.Fatalf("%s was not re-sealed", n)
		}
	}
	if _, err := Get(st, old, "a"); err == nil {
		t.Fatal("the old key still opens a rotated secret")
	}
	if !Delete(st, "a") || Delete(st, "a") {
		t.Fatal("Delete")
	}
	Delete(st, "b")
	Delete(st, "c")
	if st.Secrets != nil {
		t.Fatal("an empty secrets section is kept")
	}
	// With none left, any key may start again.
	if err := Set(st, old, "z", "v"); err != nil {
		t.Fatal(err)
	}
}

func TestLoad(t *testing.T) {
	home := t.TempDir()
	k := mustKey(t)
	env := map[string]string{}
	lookup := func(n string) (string, bool) { v, ok := env[n]; return v, ok }

	if _, err := Load(lookup, home); !errors.Is(err, ErrNoKey) {
		t.Fatalf("Load with nothing = %v, want ErrNoKey", err)
	}
	p := DefaultKeyPath(home)
	if err := WriteKeyFile(p, k); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", fi.Mode())
	}
	if err := WriteKeyFile(p, mustKey(t)); err == nil {
		t.Fatal("WriteKeyFile replaced a key")
	}
	l, err := Load(lookup, home)
	if err != nil || l.Key != k || !l.Default {
		t.Fatalf("Load from the default file: %+v, %v", l, err)
	}
	os.Chmod(p, 0o644)
	if _, err := Load(lookup, home); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a key file others can read: %v", err)
	}
	os.Chmod(p, 0o600)

	k2 := mustKey(t)
	p2 := filepath.Join(t.TempDir(), "team.key")
	if err := WriteKeyFile(p2, k2); err != nil {
		t.Fatal(err)
	}
	env[EnvKeyFile] = p2
	if l, err := Load(lookup, home); err != nil || l.Key != k2 || l.Path != p2 {
		t.Fatalf("Load from DSTACK_SECRETS_KEY_FILE: %+v, %v", l, err)
	}
	k3 := mustKey(t)
	env[EnvKey] = k3.String()
	if l, err := Load(lookup, home); err != nil || l.Key != k3 || l.From != EnvKey {
		t.Fatalf("Load from DSTACK_SECRETS_KEY: %+v, %v", l, err)
	}
	env[EnvKey] = "c2hvcnQ="
	if _, err := Load(lookup, home); err == nil || !strings.Contains(err.Error(), "32 bytes") {
		t.Fatalf("a short key: %v", err)
	}
}
