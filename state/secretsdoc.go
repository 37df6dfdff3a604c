package state

import "sort"

// Secrets are the team's secrets as the state document stores them:
// each value sealed (encrypted and authenticated) under the team's key,
// which the state never holds. Keeping them in the state document, not
// beside it, gives them its lock, its compare-and-swap and every backend
// at once. Sealing and opening are state/secrets's; this package only
// carries the sealed bytes.
type Secrets struct {
	// Cipher names the sealing ("aes-256-gcm").
	Cipher string `json:"cipher"`
	// KeyID identifies the key the values are sealed with (a hash of it,
	// never the key), so a wrong key is named as such.
	KeyID string `json:"key_id"`
	// Values are the sealed values by secret name, base64.
	Values map[string]string `json:"values"`
}

// SecretNames lists the names of the stored secrets, sorted.
func (s *State) SecretNames() []string {
	if s.Secrets == nil {
		return nil
	}
	names := make([]string, 0, len(s.Secrets.Values))
	for n := range s.Secrets.Values {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// HasSecret reports whether a secret of that name is stored.
func (s *State) HasSecret(name string) bool {
	if s.Secrets == nil {
		return false
	}
	_, ok := s.Secrets.Values[name]
	return ok
}
