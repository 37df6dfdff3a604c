package pg

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"

	"github.com/dstackai/dstack-go/state"
)

// pieces is an encoded document cut at its resources: the document is
// head, the resources joined by sep, then tail.
type pieces struct {
	head, sep, tail []byte
	// addrs and docs are in document order, which is address order.
	addrs []string
	docs  [][]byte
	// hashes are the docs' SHA-256, filled in by Write.
	hashes [][sha256.Size]byte
}

// whole is the document stored in one piece, with no resource rows.
func whole(doc []byte) pieces { return pieces{head: doc, sep: []byte{}, tail: []byte{}} }

// cut splits doc, which state.Encode produced from s (so s.Resources is
// in document order), into pieces. It reads the JSON structure rather
// than assuming Encode's layout (indentation, one resource per line), so
// a change of layout keeps partial writes working; only the top-level
// "resources" array and the sameness of the separators between its
// elements are assumed. When the document does not have that shape, two
// resources share an address, or an element does not name the address
// expected at its place, it returns the whole document as head: storing
// that is always correct, only not partial.
func cut(doc []byte, s *state.State) pieces {
	n := len(s.Resources)
	for i := 1; i < n; i++ {
		if s.Resources[i-1].Address >= s.Resources[i].Address {
			return whole(doc)
		}
	}
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return whole(doc)
	}
	i++
	for { // top-level keys up to "resources"
		i = skipSpace(doc, i)
		if i >= len(doc) || doc[i] != '"' {
			return whole(doc)
		}
		end := skipString(doc, i)
		if end < 0 {
			return whole(doc)
		}
		key := doc[i:end]
		i = skipSpace(doc, end)
		if i >= len(doc) || doc[i] != ':' {
			return whole(doc)
		}
		i = skipSpace(doc, i+1)
		if string(key) == `"resources"` {
			break
		}
		if i = skipValue(doc, i); i < 0 {
			return whole(doc)
		}
		if i = skipSpace(doc, i); i >= len(doc) || doc[i] != ',' {
			return whole(doc)
		}
		i++
	}
	if i >= len(doc) || doc[i] != '[' {
		return whole(doc) // null
	}
	i = skipSpace(doc, i+1)
	if n == 0 {
		return whole(doc)
	}
	p := pieces{head: doc[:i], sep: []byte{}, addrs: make([]string, 0, n), docs: make([][]byte, 0, n)}
	var quoted []byte
	for {
		if len(p.docs) == n || i >= len(doc) || doc[i] != '{' {
			return whole(doc)
		}
		end := skipValue(doc, i)
		if end < 0 {
			return whole(doc)
		}
		addr := s.Resources[len(p.docs)].Address
		quoted = appendJSONString(quoted[:0], addr)
		if !bytes.Contains(doc[i:end], quoted) {
			return whole(doc)
		}
		p.addrs = append(p.addrs, addr)
		p.docs = append(p.docs, doc[i:end])
		j := skipSpace(doc, end)
		switch {
		case j < len(doc) && doc[j] == ',':
			next := skipSpace(doc, j+1)
			if len(p.docs) == 1 {
				p.sep = doc[end:next]
			} else if !bytes.Equal(doc[end:next], p.sep) {
				return whole(doc)
			}
			i = next
		case j < len(doc) && doc[j] == ']':
			if len(p.docs) != n {
				return whole(doc)
			}
			p.tail = doc[end:]
			return p
		default:
			return whole(doc)
		}
	}
}

// join puts a document back together from its pieces, docs in address
// order.
func join(head, sep, tail []byte, docs [][]byte) []byte {
	size := len(head) + len(tail)
	for _, d := range docs {
		size += len(d) + len(sep)
	}
	out := make([]byte, 0, size)
	out = append(out, head...)
	for i, d := range docs {
		if i > 0 {
			out = append(out, sep...)
		}
		out = append(out, d...)
	}
	return append(out, tail...)
}

// appendJSONString appends s as a JSON string, without HTML escaping, as
// the document carries it. Addresses are nearly always plain ASCII, which
// needs no escaping and no encoder.
func appendJSONString(buf []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\'
	}
	if plain {
		buf = append(buf, '"')
		buf = append(buf, s...)
		return append(buf, '"')
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(buf, bytes.TrimSuffix(b.Bytes(), []byte("\n"))...)
}

func skipSpace(doc []byte, i int) int {
	for i < len(doc) && (doc[i] == ' ' || doc[i] == '\n' || doc[i] == '\t' || doc[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the end of the JSON string starting at doc[i] (a
// quote), or -1. It jumps from quote to quote, so long strings cost
// little.
func skipString(doc []byte, i int) int {
	i++
	for {
		k := bytes.IndexByte(doc[i:], '"')
		if k < 0 {
			return -1
		}
		q := i + k
		backslashes := 0
		for p := q - 1; p >= i && doc[p] == '\\'; p-- {
			backslashes++
		}
		i = q + 1
		if backslashes%2 == 0 {
			return i
		}
	}
}

// skipValue returns the end of the JSON value starting at doc[i], or -1.
// It checks structure only as far as cutting needs: strings and nesting.
func skipValue(doc []byte, i int) int {
	depth := 0
	for i < len(doc) {
		switch doc[i] {
		case '"':
			if i = skipString(doc, i); i < 0 {
				return -1
			}
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
			if depth < 0 {
				return -1
			}
		case ',', ' ', '\n', '\t', '\r', ':':
			if depth == 0 {
				return i // the end of a number, true, false or null
			}
		}
		i++
	}
	if depth == 0 {
		return i
	}
	return -1
}
