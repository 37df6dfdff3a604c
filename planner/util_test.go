package planner_test

import (
	"encoding/json"
	"strconv"
)

func ptr[T any](v T) *T { return &v }

func itoa(i int) string { return strconv.Itoa(i) }

func jsonOf(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
