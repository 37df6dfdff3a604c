package tfplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6/tf6server"
)

// Serve runs the provider as a Terraform plugin until Terraform stops
// it. name is the provider's registry address
// ("registry.terraform.io/dstackai/dstack").
func Serve(name string, p *Provider) error {
	return tf6server.Serve(name, func() tfprotov6.ProviderServer { return NewServer(p) })
}

// NewServer returns the protocol 6 server of p.
func NewServer(p *Provider) tfprotov6.ProviderServer { return &server{p: p} }

type server struct {
	p *Provider
}

var _ tfprotov6.ProviderServer = (*server)(nil)

func diagErr(summary string, err error) []*tfprotov6.Diagnostic {
	return []*tfprotov6.Diagnostic{{Severity: tfprotov6.DiagnosticSeverityError, Summary: summary, Detail: err.Error()}}
}

func (b Block) tf() *tfprotov6.SchemaBlock {
	out := &tfprotov6.SchemaBlock{Description: b.Description, DescriptionKind: tfprotov6.StringKindMarkdown}
	for _, a := range b.Attributes {
		out.Attributes = append(out.Attributes, &tfprotov6.SchemaAttribute{Name: a.Name, Type: a.Type.tf(),
			Description: a.Description, DescriptionKind: tfprotov6.StringKindMarkdown, Required: a.Required,
			Optional: a.Optional, Computed: a.Computed, Sensitive: a.Sensitive,
			Deprecated: a.Deprecated != "", DeprecationMessage: a.Deprecated})
	}
	for _, nb := range b.Blocks {
		mode := tfprotov6.SchemaNestedBlockNestingModeSingle
		if nb.Nesting == ListNesting {
			mode = tfprotov6.SchemaNestedBlockNestingModeList
		}
		out.BlockTypes = append(out.BlockTypes, &tfprotov6.SchemaNestedBlock{TypeName: nb.Name, Block: nb.Block.tf(),
			Nesting: mode, MaxItems: int64(nb.MaxItems)})
	}
	return out
}

func (s Schema) tf() *tfprotov6.Schema {
	return &tfprotov6.Schema{Version: s.Version, Block: s.Block.tf()}
}

func (s *server) GetMetadata(context.Context, *tfprotov6.GetMetadataRequest) (*tfprotov6.GetMetadataResponse, error) {
	resp := &tfprotov6.GetMetadataResponse{ServerCapabilities: &tfprotov6.ServerCapabilities{GetProviderSchemaOptional: true}}
	for _, name := range sortedKeys(s.p.Resources) {
		resp.Resources = append(resp.Resources, tfprotov6.ResourceMetadata{TypeName: name})
	}
	for _, name := range sortedKeys(s.p.DataSources) {
		resp.DataSources = append(resp.DataSources, tfprotov6.DataSourceMetadata{TypeName: name})
	}
	return resp, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *server) GetProviderSchema(context.Context, *tfprotov6.GetProviderSchemaRequest) (*tfprotov6.GetProviderSchemaResponse, error) {
	resp := &tfprotov6.GetProviderSchemaResponse{
		ServerCapabilities: &tfprotov6.ServerCapabilities{GetProviderSchemaOptional: true},
		Provider:           s.p.Config.tf(),
		ResourceSchemas:    map[string]*tfprotov6.Schema{},
		DataSourceSchemas:  map[string]*tfprotov6.Schema{},
	}
	for name, r := range s.p.Resources {
		resp.ResourceSchemas[name] = r.Schema().tf()
	}
	for name, d := range s.p.DataSources {
		resp.DataSourceSchemas[name] = d.Schema().tf()
	}
	return resp, nil
}

func (s *server) GetResourceIdentitySchemas(context.Context, *tfprotov6.GetResourceIdentitySchemasRequest) (*tfprotov6.GetResourceIdentitySchemasResponse, error) {
	return &tfprotov6.GetResourceIdentitySchemasResponse{}, nil
}

func (s *server) ValidateProviderConfig(_ context.Context, req *tfprotov6.ValidateProviderConfigRequest) (*tfprotov6.ValidateProviderConfigResponse, error) {
	return &tfprotov6.ValidateProviderConfigResponse{PreparedConfig: req.Config}, nil
}

func (s *server) ConfigureProvider(ctx context.Context, req *tfprotov6.ConfigureProviderRequest) (*tfprotov6.ConfigureProviderResponse, error) {
	cfg, err := decode(s.p.Config.Block, req.Config)
	if err != nil {
		return &tfprotov6.ConfigureProviderResponse{Diagnostics: diagErr("Invalid provider configuration", err)}, nil
	}
	if s.p.Configure == nil {
		return &tfprotov6.ConfigureProviderResponse{}, nil
	}
	return &tfprotov6.ConfigureProviderResponse{Diagnostics: s.p.Configure(ctx, cfg).tf()}, nil
}

func (s *server) StopProvider(context.Context, *tfprotov6.StopProviderRequest) (*tfprotov6.StopProviderResponse, error) {
	return &tfprotov6.StopProviderResponse{}, nil
}

func (s *server) resource(name string) (Resource, error) {
	r, ok := s.p.Resources[name]
	if !ok {
		return nil, fmt.Errorf("this provider has no resource type %q", name)
	}
	return r, nil
}

func (s *server) ValidateResourceConfig(ctx context.Context, req *tfprotov6.ValidateResourceConfigRequest) (*tfprotov6.ValidateResourceConfigResponse, error) {
	r, err := s.resource(req.TypeName)
	if err != nil {
		return &tfprotov6.ValidateResourceConfigResponse{Diagnostics: diagErr("Unknown resource type", err)}, nil
	}
	cfg, err := decode(r.Schema().Block, req.Config)
	if err != nil {
		return &tfprotov6.ValidateResourceConfigResponse{Diagnostics: diagErr("Invalid configuration value", err)}, nil
	}
	return &tfprotov6.ValidateResourceConfigResponse{Diagnostics: r.Validate(ctx, cfg).tf()}, nil
}

func (s *server) UpgradeResourceState(ctx context.Context, req *tfprotov6.UpgradeResourceStateRequest) (*tfprotov6.UpgradeResourceStateResponse, error) {
	r, err := s.resource(req.TypeName)
	if err != nil {
		return &tfprotov6.UpgradeResourceStateResponse{Diagnostics: diagErr("Unknown resource type", err)}, nil
	}
	if req.RawState == nil || len(req.RawState.JSON) == 0 {
		return &tfprotov6.UpgradeResourceStateResponse{Diagnostics: diagErr("Cannot upgrade the state",
			fmt.Errorf("the stored state of %s is not JSON (a flatmap state from Terraform 0.11 or older)", req.TypeName))}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(req.RawState.JSON))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return &tfprotov6.UpgradeResourceStateResponse{Diagnostics: diagErr("Cannot upgrade the state", fmt.Errorf("reading the stored state: %w", err))}, nil
	}
	obj, diags := r.Upgrade(ctx, req.Version, raw)
	resp := &tfprotov6.UpgradeResourceStateResponse{Diagnostics: diags.tf()}
	if diags.HasErrors() {
		return resp, nil
	}
	if resp.UpgradedState, err = encode(r.Schema().Block, obj); err != nil {
		resp.Diagnostics = append(resp.Diagnostics, diagErr("Cannot upgrade the state", err)...)
	}
	return resp, nil
}

func (s *server) ReadResource(ctx context.Context, req *tfprotov6.ReadResourceRequest) (*tfprotov6.ReadResourceResponse, error) {
	r, err := s.resource(req.TypeName)
	if err != nil {
		return &tfprotov6.ReadResourceResponse{Diagnostics: diagErr("Unknown resource type", err)}, nil
	}
	b := r.Schema().Block
	cur, err := decode(b, req.CurrentState)
	if err != nil {
		return &tfprotov6.ReadResourceResponse{Diagnostics: diagErr("Invalid state", err)}, nil
	}
	out := r.Read(ctx, ReadRequest{State: cur, Private: req.Private})
	resp := &tfprotov6.ReadResourceResponse{Private: out.Private, Diagnostics: out.Diagnostics.tf()}
	if resp.NewState, err = encode(b, out.State); err != nil {
		resp.Diagnostics = append(resp.Diagnostics, diagErr("Invalid refreshed state", err)...)
	}
	return resp, nil
}

func (s *server) PlanResourceChange(ctx context.Context, req *tfprotov6.PlanResourceChangeRequest) (*tfprotov6.PlanResourceChangeResponse, error) {
	r, err := s.resource(req.TypeName)
	if err != nil {
		return &tfprotov6.PlanResourceChangeResponse{Diagnostics: diagErr("Unknown resource type", err)}, nil
	}
	b := r.Schema().Block
	var in PlanRequest
	for _, x := range []struct {
		dst *map[string]any
		dv  *tfprotov6.DynamicValue
	}{{&in.Prior, req.PriorState}, {&in.Proposed, req.ProposedNewState}, {&in.Config, req.Config}} {
		if *x.dst, err = decode(b, x.dv); err != nil {
			return &tfprotov6.PlanResourceChangeResponse{Diagnostics: diagErr("Invalid plan request", err)}, nil
		}
	}
	in.PriorPrivate = req.PriorPrivate
	out := r.Plan(ctx, in)
	resp := &tfprotov6.PlanResourceChangeResponse{PlannedPrivate: out.PlannedPrivate, Diagnostics: out.Diagnostics.tf()}
	if out.Diagnostics.HasErrors() {
		return resp, nil
	}
	for _, p := range out.RequiresReplace {
		resp.RequiresReplace = append(resp.RequiresReplace, p.tf())
	}
	if resp.PlannedState, err = encode(b, out.Planned); err != nil {
		resp.Diagnostics = append(resp.Diagnostics, diagErr("Invalid planned state", err)...)
	}
	return resp, nil
}

func (s *server) ApplyResourceChange(ctx context.Context, req *tfprotov6.ApplyResourceChangeRequest) (*tfprotov6.ApplyResourceChangeResponse, error) {
	r, err := s.resource(req.TypeName)
	if err != nil {
		return &tfprotov6.ApplyResourceChangeResponse{Diagnostics: diagErr("Unknown resource type", err)}, nil
	}
	b := r.Schema().Block
	var in ApplyRequest
	for _, x := range []struct {
		dst *map[string]any
		dv  *tfprotov6.DynamicValue
	}{{&in.Prior, req.PriorState}, {&in.Planned, req.PlannedState}, {&in.Config, req.Config}} {
		if *x.dst, err = decode(b, x.dv); err != nil {
			return &tfprotov6.ApplyResourceChangeResponse{Diagnostics: diagErr("Invalid apply request", err)}, nil
		}
	}
	in.PlannedPrivate = req.PlannedPrivate
	out := r.Apply(ctx, in)
	resp := &tfprotov6.ApplyResourceChangeResponse{Private: out.Private, Diagnostics: out.Diagnostics.tf()}
	// The new state goes back even after an error: what was made is
	// recorded, and the next plan picks up from it.
	if resp.NewState, err = encode(b, out.State); err != nil {
		resp.Diagnostics = append(resp.Diagnostics, diagErr("Invalid new state", err)...)
	}
	return resp, nil
}

func (s *server) ImportResourceState(ctx context.Context, req *tfprotov6.ImportResourceStateRequest) (*tfprotov6.ImportResourceStateResponse, error) {
	r, err := s.resource(req.TypeName)
	if err != nil {
		return &tfprotov6.ImportResourceStateResponse{Diagnostics: diagErr("Unknown resource type", err)}, nil
	}
	out := r.Import(ctx, req.ID)
	resp := &tfprotov6.ImportResourceStateResponse{Diagnostics: out.Diagnostics.tf()}
	if out.Diagnostics.HasErrors() {
		return resp, nil
	}
	st, err := encode(r.Schema().Block, out.State)
	if err != nil {
		resp.Diagnostics = append(resp.Diagnostics, diagErr("Invalid imported state", err)...)
		return resp, nil
	}
	resp.ImportedResources = []*tfprotov6.ImportedResource{{TypeName: req.TypeName, State: st, Private: out.Private}}
	return resp, nil
}

func (s *server) MoveResourceState(context.Context, *tfprotov6.MoveResourceStateRequest) (*tfprotov6.MoveResourceStateResponse, error) {
	return &tfprotov6.MoveResourceStateResponse{Diagnostics: diagErr("Moving state is not supported", fmt.Errorf("dstack resources cannot be moved between resource types"))}, nil
}

func (s *server) UpgradeResourceIdentity(context.Context, *tfprotov6.UpgradeResourceIdentityRequest) (*tfprotov6.UpgradeResourceIdentityResponse, error) {
	return &tfprotov6.UpgradeResourceIdentityResponse{Diagnostics: diagErr("Resource identity is not supported", fmt.Errorf("dstack resources have no identity schema"))}, nil
}

func (s *server) GenerateResourceConfig(context.Context, *tfprotov6.GenerateResourceConfigRequest) (*tfprotov6.GenerateResourceConfigResponse, error) {
	return &tfprotov6.GenerateResourceConfigResponse{Diagnostics: diagErr("Generating configuration is not supported", fmt.Errorf("write the resource's configuration by hand"))}, nil
}

func (s *server) ValidateDataResourceConfig(context.Context, *tfprotov6.ValidateDataResourceConfigRequest) (*tfprotov6.ValidateDataResourceConfigResponse, error) {
	return &tfprotov6.ValidateDataResourceConfigResponse{}, nil
}

func (s *server) ReadDataSource(ctx context.Context, req *tfprotov6.ReadDataSourceRequest) (*tfprotov6.ReadDataSourceResponse, error) {
	d, ok := s.p.DataSources[req.TypeName]
	if !ok {
		return &tfprotov6.ReadDataSourceResponse{Diagnostics: diagErr("Unknown data source", fmt.Errorf("this provider has no data source %q", req.TypeName))}, nil
	}
	b := d.Schema().Block
	cfg, err := decode(b, req.Config)
	if err != nil {
		return &tfprotov6.ReadDataSourceResponse{Diagnostics: diagErr("Invalid configuration value", err)}, nil
	}
	out, diags := d.Read(ctx, cfg)
	resp := &tfprotov6.ReadDataSourceResponse{Diagnostics: diags.tf()}
	if diags.HasErrors() {
		return resp, nil
	}
	if resp.State, err = encode(b, out); err != nil {
		resp.Diagnostics = append(resp.Diagnostics, diagErr("Invalid data source state", err)...)
	}
	return resp, nil
}

func (s *server) CallFunction(context.Context, *tfprotov6.CallFunctionRequest) (*tfprotov6.CallFunctionResponse, error) {
	return &tfprotov6.CallFunctionResponse{Error: &tfprotov6.FunctionError{Text: "this provider has no functions"}}, nil
}

func (s *server) GetFunctions(context.Context, *tfprotov6.GetFunctionsRequest) (*tfprotov6.GetFunctionsResponse, error) {
	return &tfprotov6.GetFunctionsResponse{Functions: map[string]*tfprotov6.Function{}}, nil
}

func (s *server) ValidateEphemeralResourceConfig(context.Context, *tfprotov6.ValidateEphemeralResourceConfigRequest) (*tfprotov6.ValidateEphemeralResourceConfigResponse, error) {
	return &tfprotov6.ValidateEphemeralResourceConfigResponse{}, nil
}

func (s *server) OpenEphemeralResource(context.Context, *tfprotov6.OpenEphemeralResourceRequest) (*tfprotov6.OpenEphemeralResourceResponse, error) {
	return &tfprotov6.OpenEphemeralResourceResponse{Diagnostics: diagErr("No ephemeral resources", fmt.Errorf("this provider has no ephemeral resources"))}, nil
}

func (s *server) RenewEphemeralResource(context.Context, *tfprotov6.RenewEphemeralResourceRequest) (*tfprotov6.RenewEphemeralResourceResponse, error) {
	return &tfprotov6.RenewEphemeralResourceResponse{}, nil
}

func (s *server) CloseEphemeralResource(context.Context, *tfprotov6.CloseEphemeralResourceRequest) (*tfprotov6.CloseEphemeralResourceResponse, error) {
	return &tfprotov6.CloseEphemeralResourceResponse{}, nil
}
