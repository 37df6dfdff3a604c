package state

import (
	"fmt"
	"strings"

	"github.com/agnivade/levenshtein"
)

// UnknownSetting is the error for a backend setting that does not exist.
// It names the known setting probably meant: one within two edits (a typo
// or a dropped underscore), or else one that contains it ("container" for
// container_name); and it lists them all.
func UnknownSetting(backend, key string, known []string) error {
	best, dist := "", 3
	for _, k := range known {
		if d := levenshtein.ComputeDistance(key, k); d < dist {
			best, dist = k, d
		}
	}
	if best == "" && len(key) >= 4 {
		for _, k := range known {
			if strings.Contains(k, key) {
				best = k
				break
			}
		}
	}
	hint := ""
	if best != "" {
		hint = fmt.Sprintf(" (did you mean %q?)", best)
	}
	return fmt.Errorf("%s backend: unknown setting %q%s (known: %s)", backend, key, hint, strings.Join(known, ", "))
}
