package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/dstackai/dstack-go/state/pg/pgtest"
	"github.com/dstackai/dstack-go/state/s3/s3test"
)

// TestSecretsRemoteBackends runs testdata/secrets-remote/*.txtar on
// shared state backends, each against its real server (versitygw for
// s3, PostgreSQL for pg): the team's key is given explicitly, secrets
// reach a job, and `rawstate` prints every byte the backend stores, so
// the script can check that no secret is among them in clear.
func TestSecretsRemoteBackends(t *testing.T) {
	type backend struct {
		name   string
		config func(t *testing.T) (map[string]string, func(ctx context.Context) ([]byte, error))
	}
	backends := []backend{
		{"s3", func(t *testing.T) (map[string]string, func(context.Context) ([]byte, error)) {
			srv := s3test.Start(t)
			return srv.Config(), func(ctx context.Context) ([]byte, error) { return s3Objects(ctx, srv) }
		}},
		{"pg", func(t *testing.T) (map[string]string, func(context.Context) ([]byte, error)) {
			cfg := pgtest.Config(t)
			return cfg, func(ctx context.Context) ([]byte, error) { return pgRows(ctx, cfg) }
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg, raw := b.config(t)
			testscript.Run(t, testscript.Params{
				Dir:           "testdata/secrets-remote",
				UpdateScripts: os.Getenv("UPDATE_SCRIPTS") == "1",
				Setup: func(env *testscript.Env) error {
					env.Defer(func() { killAgentAndJobs(filepath.Join(env.WorkDir, "agent")) })
					env.Setenv("BACKEND", b.name)
					var hcl strings.Builder
					fmt.Fprintf(&hcl, "dstack {\n  backend %q {\n", b.name)
					keys := make([]string, 0, len(cfg))
					for k := range cfg {
						keys = append(keys, k)
					}
					sort.Strings(keys)
					for _, k := range keys {
						fmt.Fprintf(&hcl, "    %s = %q\n", k, cfg[k])
					}
					hcl.WriteString("  }\n}\n")
					if err := os.MkdirAll(filepath.Join(env.WorkDir, "conf"), 0o755); err != nil {
						return err
					}
					return os.WriteFile(filepath.Join(env.WorkDir, "conf", "backend.dstack.hcl"), []byte(hcl.String()), 0o600)
				},
				Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
					"stopagent": cmdStopAgent,
					// rawstate prints every byte the backend stores.
					"rawstate": func(ts *testscript.TestScript, neg bool, args []string) {
						ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
						defer cancel()
						data, err := raw(ctx)
						ts.Check(err)
						if len(data) == 0 {
							ts.Fatalf("the backend stores nothing")
						}
						_, _ = ts.Stdout().Write(data)
					},
				},
			})
		})
	}
}

// s3Objects is every object in the server's bucket, concatenated.
func s3Objects(ctx context.Context, srv *s3test.Server) ([]byte, error) {
	list, err := srv.Client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(srv.Bucket)})
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for _, o := range list.Contents {
		obj, err := srv.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(srv.Bucket), Key: o.Key})
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(&out, obj.Body)
		obj.Body.Close()
		if err != nil {
			return nil, err
		}
		out.WriteByte('\n')
	}
	return out.Bytes(), nil
}

// pgRows is every column of every row in the backend's schema, as
// text (byte columns as their bytes).
func pgRows(ctx context.Context, cfg map[string]string) ([]byte, error) {
	c, err := pgx.Connect(ctx, cfg["conn_str"])
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`, cfg["schema_name"])
	if err != nil {
		return nil, err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for _, tbl := range tables {
		rs, err := c.Query(ctx, `SELECT * FROM `+pgx.Identifier{cfg["schema_name"], tbl}.Sanitize())
		if err != nil {
			return nil, err
		}
		for rs.Next() {
			vals, err := rs.Values()
			if err != nil {
				rs.Close()
				return nil, err
			}
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					out.Write(b)
				} else {
					fmt.Fprint(&out, v)
				}
				out.WriteByte('\t')
			}
			out.WriteByte('\n')
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return nil, err
		}
	}
	return out.Bytes(), nil
}
