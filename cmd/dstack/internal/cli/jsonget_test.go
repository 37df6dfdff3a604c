package cli

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdJSONGet parses the last command's stdout as JSON and checks one
// value: jsonget PATH WANT, where PATH is dotted keys and [i] indexes
// (runs[0].jobs[1].status) and WANT is the value as JSON would print it
// (a string unquoted). Negated, the path must not be there. A document
// that does not parse fails, so the check is on the parsed document, not
// its text.
func cmdJSONGet(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 && !(neg && len(args) == 1) {
		ts.Fatalf("usage: jsonget PATH WANT; ! jsonget PATH")
	}
	var doc any
	if err := json.Unmarshal([]byte(ts.ReadFile("stdout")), &doc); err != nil {
		ts.Fatalf("stdout is not JSON: %v", err)
	}
	v, err := jsonPath(doc, args[0])
	if neg {
		if err == nil {
			ts.Fatalf("%s is there: %v", args[0], v)
		}
		return
	}
	if err != nil {
		ts.Fatalf("%v", err)
	}
	got := fmt.Sprint(v)
	if b, ok := v.(bool); ok {
		got = strconv.FormatBool(b)
	}
	if got != args[1] {
		ts.Fatalf("%s = %q, want %q", args[0], got, args[1])
	}
}

func jsonPath(v any, path string) (any, error) {
	for _, part := range strings.FieldsFunc(path, func(r rune) bool { return r == '.' || r == '[' }) {
		if idx, ok := strings.CutSuffix(part, "]"); ok {
			i, err := strconv.Atoi(idx)
			arr, isArr := v.([]any)
			if err != nil || !isArr || i < 0 || i >= len(arr) {
				return nil, fmt.Errorf("%s: no element [%s]", path, idx)
			}
			v = arr[i]
			continue
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: %q is not in an object", path, part)
		}
		if v, ok = obj[part]; !ok {
			return nil, fmt.Errorf("%s: no key %q", path, part)
		}
	}
	return v, nil
}
