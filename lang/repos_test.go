package lang

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRepo(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Repo
		wantErr bool
	}{
		{in: ".", want: Repo{LocalPath: "."}},
		{in: "..:/workflow", want: Repo{LocalPath: "..", Path: "/workflow"}},
		{in: "~/src/app:app", want: Repo{LocalPath: "~/src/app", Path: "app"}},
		{in: `C:\src\app`, want: Repo{LocalPath: `C:\src\app`}},
		{in: `C:/src/app:/app`, want: Repo{LocalPath: `C:/src/app`, Path: "/app"}},
		{in: "https://github.com/dstackai/dstack", want: Repo{URL: "https://github.com/dstackai/dstack"}},
		{in: "https://github.com/dstackai/dstack:/src", want: Repo{URL: "https://github.com/dstackai/dstack", Path: "/src"}},
		{in: "https://git.example.com:8443/org/repo.git", want: Repo{URL: "https://git.example.com:8443/org/repo.git"}},
		{in: "https://user:pw@git.example.com/org/repo:~/r", want: Repo{URL: "https://user:pw@git.example.com/org/repo", Path: "~/r"}},
		{in: "https://host", want: Repo{URL: "https://host"}},
		{in: "git@github.com:org/repo.git", want: Repo{URL: "git@github.com:org/repo.git"}},
		{in: "git@github.com:org/repo.git:/repo", want: Repo{URL: "git@github.com:org/repo.git", Path: "/repo"}},
		{in: "git@github.com:org/repo.git:a:b", wantErr: true},
		{in: "a:b:c", wantErr: true},
		{in: ":x", wantErr: true},
		{in: "", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRepo(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestParseFileMapping(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    FileMapping
		wantErr bool
	}{
		{in: "requirements.txt", want: FileMapping{LocalPath: "requirements.txt", Path: "requirements.txt"}},
		{in: ".:examples", want: FileMapping{LocalPath: ".", Path: "examples"}},
		{in: "~/.ssh/id_rsa:/root/.ssh/id_rsa", want: FileMapping{LocalPath: "~/.ssh/id_rsa", Path: "/root/.ssh/id_rsa"}},
		{in: `C:\x\y:/y`, want: FileMapping{LocalPath: `C:\x\y`, Path: "/y"}},
		{in: "a:b:c", wantErr: true},
		{in: "a:", wantErr: true},
		{in: ":a", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseFileMapping(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// FuzzParseRepo: any text parses or fails without panicking; what
// parses names exactly one of a URL and a local path, and written back
// in the short form, reads the same again.
func FuzzParseRepo(f *testing.F) {
	for _, s := range []string{".", "..:/w", "https://h/r:/p", "git@h:o/r.git:/p", `C:\a:/b`, "https://u:p@h:1/r", "a:b:c", "~/x:~/y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRepo(s)
		if err != nil {
			return
		}
		if (r.URL == "") == (r.LocalPath == "") {
			t.Fatalf("ParseRepo(%q) = %+v: want exactly one of url and local_path", s, r)
		}
		short := r.URL + r.LocalPath
		if r.Path != "" {
			short += ":" + r.Path
		}
		again, err := ParseRepo(short)
		if err != nil || again != r {
			t.Fatalf("ParseRepo(%q) = %+v; written back as %q it reads %+v, %v", s, r, short, again, err)
		}
		m, err := ParseFileMapping(s)
		if err == nil && (m.LocalPath == "" || m.Path == "") {
			t.Fatalf("ParseFileMapping(%q) = %+v: empty side", s, m)
		}
	})
}
