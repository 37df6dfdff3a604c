package planner

import (
	"path/filepath"

	"github.com/dstackai/dstack-go/lang"
)

// configDir is the absolute directory of the file r is written in, where
// a run's repos and files local paths start (as dstack resolves them);
// empty for resources that deliver neither, and for those from no file.
func configDir(r *lang.Resource) string {
	if r == nil || r.Range.Filename == "" {
		return ""
	}
	var rc *lang.RunConfig
	switch s := r.Spec.(type) {
	case *lang.Task:
		rc = &s.RunConfig
	case *lang.Service:
		rc = &s.RunConfig
	case *lang.DevEnvironment:
		rc = &s.RunConfig
	}
	if rc == nil || len(rc.Repos)+len(rc.Files) == 0 {
		return ""
	}
	dir, err := filepath.Abs(filepath.Dir(r.Range.Filename))
	if err != nil {
		return filepath.Dir(r.Range.Filename)
	}
	return dir
}
