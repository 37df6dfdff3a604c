package tfplugin

import (
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// EncodeValue encodes an object of block b as Terraform sends it, for
// tests that call the server's methods with real protocol values.
func EncodeValue(b Block, obj map[string]any) (*tfprotov6.DynamicValue, error) { return encode(b, obj) }

// DecodeValue decodes a value of block b as the server returns it.
func DecodeValue(b Block, dv *tfprotov6.DynamicValue) (map[string]any, error) { return decode(b, dv) }

// AttributePath converts a path, for tests that compare diagnostics.
func AttributePath(p Path) *tftypes.AttributePath { return p.tf() }
