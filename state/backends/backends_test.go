package backends

import (
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	if got := strings.Join(Names(), ","); got != "azurerm,gcs,http,local,pg,s3" {
		t.Fatalf("names %s", got)
	}
	if _, err := New("s4", nil); err == nil || !strings.Contains(err.Error(), `unknown backend "s4"`) || !strings.Contains(err.Error(), "s3") {
		t.Fatalf("unknown backend: %v", err)
	}
	if _, err := New("local", map[string]string{"path": t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if _, err := New("s3", map[string]string{}); err == nil || !strings.Contains(err.Error(), "configuring the s3 backend") {
		t.Fatalf("s3 without a bucket: %v", err)
	}
}
