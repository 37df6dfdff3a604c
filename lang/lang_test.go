package lang_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dstackai/dstack-go/lang"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    lang.Duration
		str     string // canonical form
		wantErr bool
	}{
		{in: "0", want: 0, str: "0s"},
		{in: "90", want: 90, str: "1m30s"},
		{in: "30s", want: 30, str: "30s"},
		{in: "15m", want: 900, str: "15m"},
		{in: "2h", want: 7200, str: "2h"},
		{in: "1d", want: 86400, str: "1d"},
		{in: "1w", want: 604800, str: "1w"},
		{in: "1h30m", want: 5400, str: "1h30m"},
		{in: "1w2d3h4m5s", want: 788645, str: "1w2d3h4m5s"},
		{in: "120m", want: 7200, str: "2h"},
		{in: " 2H ", want: 7200, str: "2h"},
		{in: "off", want: lang.DurationOff, str: "off"},
		{in: "OFF", want: lang.DurationOff, str: "off"},
		{in: "", wantErr: true},
		{in: "2 hours", wantErr: true},
		{in: "1y", wantErr: true},
		{in: "-5", wantErr: true},
		{in: "h", wantErr: true},
		{in: "30m2h", wantErr: true}, // units largest first
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := lang.ParseDuration(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseDuration(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if got != tt.want {
				t.Errorf("ParseDuration(%q) = %d, want %d", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("String() = %q, want %q", s, tt.str)
			}
			back, err := lang.ParseDuration(got.String())
			if err != nil || back != got {
				t.Errorf("ParseDuration(String()) = %d, %v; want %d", back, err, got)
			}
		})
	}
}

func TestParsePort(t *testing.T) {
	tests := []struct {
		in      string
		want    string // String() of the result
		local   int    // 0 for any local port
		wantErr bool
	}{
		{in: "8080", want: "8080", local: 8080},
		{in: "80:8080", want: "80:8080", local: 80},
		{in: "*:8080", want: "*:8080"},
		{in: "8080:8080", want: "8080", local: 8080},
		{in: "0", wantErr: true},
		{in: "65536", wantErr: true},
		{in: "80:", wantErr: true},
		{in: ":80", wantErr: true},
		{in: "x:80", wantErr: true},
		{in: "http", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := lang.ParsePort(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParsePort(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if got.String() != tt.want {
				t.Errorf("ParsePort(%q) = %s, want %s", tt.in, got, tt.want)
			}
			local := 0
			if got.LocalPort != nil {
				local = *got.LocalPort
			}
			if local != tt.local {
				t.Errorf("LocalPort = %d, want %d", local, tt.local)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	fields := []string{"commands", "env", "image", "nodes", "ports", "python", "resources"}
	tests := []struct {
		name       string
		candidates []string
		want       string
	}{
		{"comands", fields, "commands"},
		{"Commands", fields, "commands"},
		{"port", fields, "ports"},
		{"imgae", fields, "image"},   // swapped neighbours
		{"pyhton", fields, "python"}, // swapped neighbours
		{"tsak", []string{"task", "service", "fleet"}, "task"},
		{"envs", fields, "env"},
		{"color", fields, ""},
		{"x", fields, ""},
		{"completely-unrelated", fields, ""},
		{"abc", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lang.Suggest(tt.name, tt.candidates); got != tt.want {
				t.Errorf("Suggest(%q) = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in      string
		want    lang.Address
		wantErr bool
	}{
		{in: "task.train", want: lang.Address{Kind: lang.KindTask, Name: "train"}},
		{in: "dev-environment.ide", want: lang.Address{Kind: lang.KindDevEnvironment, Name: "ide"}},
		{in: "fleet.a1-b2", want: lang.Address{Kind: lang.KindFleet, Name: "a1-b2"}},
		{in: "fleet.", wantErr: true},
		{in: "fleet.Trainers", wantErr: true},
		{in: "cluster.a", wantErr: true},
		{in: "train", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := lang.ParseAddress(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseAddress(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseAddress(%q) = %v, want %v", tt.in, got, tt.want)
			}
			if !tt.wantErr && got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got, tt.in)
			}
		})
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"a":                     true,
		"train-1":               true,
		strings.Repeat("a", 41): true,
		strings.Repeat("a", 42): false,
		"":                      false,
		"1train":                false,
		"train-":                false,
		"Train":                 false,
		"train_1":               false,
		"-train":                false,
		"tr.ain":                false,
	} {
		if got := lang.ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestEnvResolve(t *testing.T) {
	v := "x"
	env := lang.Env{{Name: "SET", Value: &v}, {Name: "FROM_ENV"}, {Name: "MISSING"}, {Name: "ALSO_MISSING"}}
	lookup := func(k string) (string, bool) {
		if k == "FROM_ENV" {
			return "y", true
		}
		return "", false
	}
	got, err := env.Resolve(lookup)
	if diff := cmp.Diff(map[string]string{"SET": "x", "FROM_ENV": "y"}, got); diff != "" {
		t.Errorf("Resolve (-want +got):\n%s", diff)
	}
	if err == nil || !strings.Contains(err.Error(), "MISSING, ALSO_MISSING") {
		t.Errorf("Resolve error = %v, want one naming MISSING, ALSO_MISSING", err)
	}
	if _, err := env[:2].Resolve(lookup); err != nil {
		t.Errorf("Resolve without missing variables: %v", err)
	}
}

func TestDiagnosticsSortAndErr(t *testing.T) {
	at := func(file string, line, byteOff int) lang.Range {
		return lang.Range{Filename: file, Start: lang.Pos{Line: line, Column: 1, Byte: byteOff}, End: lang.Pos{Line: line, Column: 2, Byte: byteOff + 1}}
	}
	diags := lang.Diagnostics{
		lang.Warnf(at("b.yml", 1, 0), "", "w b1", ""),
		lang.Errorf(at("a.yml", 2, 10), "", "e a2", ""),
		lang.Warnf(at("a.yml", 1, 0), "", "w a1", ""),
		lang.Errorf(at("a.yml", 1, 0), "", "e a1", ""),
		lang.Errorf(lang.Range{}, "", "e nowhere", "detail"),
	}
	diags.Sort()
	var got []string
	for _, d := range diags {
		got = append(got, d.Summary)
	}
	want := []string{"e nowhere", "e a1", "w a1", "e a2", "w b1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Sort order (-want +got):\n%s", diff)
	}
	if diags[0].Subject != nil {
		t.Errorf("a diagnostic built with an empty range has Subject %v, want nil", diags[0].Subject)
	}
	if !diags.HasErrors() || len(diags.Errs()) != 3 {
		t.Errorf("HasErrors = %v, len(Errs) = %d; want true, 3", diags.HasErrors(), len(diags.Errs()))
	}
	err := diags.Err()
	if err == nil || err.Error() != "e nowhere; detail (and 2 more errors)" {
		t.Errorf("Err() = %v", err)
	}
	if got := (lang.Diagnostics{diags[1]}).Err().Error(); got != "a.yml:1:1: e a1" {
		t.Errorf("single Err() = %q", got)
	}
	if err := (lang.Diagnostics{diags[2]}).Err(); err != nil {
		t.Errorf("warnings only: Err() = %v, want nil", err)
	}
}
