package s3conf

import (
	"context"
	"strings"
	"testing"
)

func TestClientRegion(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		opts    Options
		region  string // want, when no error
		wantErr string
	}{
		{"no region anywhere", Options{}, "", "no region"},
		{"explicit", Options{Region: "eu-west-1"}, "eu-west-1", ""},
		{"endpoint signs with a default", Options{Endpoint: "http://127.0.0.1:9000"}, "us-east-1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Client(ctx, tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Client(%+v) = %v, want an error containing %q", tc.opts, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := c.Options()
			if o.Region != tc.region {
				t.Errorf("region = %q, want %q", o.Region, tc.region)
			}
			if pathStyle := tc.opts.Endpoint != ""; o.UsePathStyle != pathStyle {
				t.Errorf("path style = %v, want %v", o.UsePathStyle, pathStyle)
			}
		})
	}
	t.Run("env region", func(t *testing.T) {
		t.Setenv("AWS_REGION", "ap-south-1")
		c, err := Client(ctx, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Options().Region; got != "ap-south-1" {
			t.Errorf("region = %q, want ap-south-1", got)
		}
	})
}
