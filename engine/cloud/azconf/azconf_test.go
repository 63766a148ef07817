package azconf

import (
	"strings"
	"testing"
)

func TestClientSettings(t *testing.T) {
	// A syntactically valid key (base64), not a real one.
	const key = "c2x1aWNlLXRlc3Qta2V5LW5vdC1hLXJlYWwtb25lLTAwMDAwMDAwMDAwMDAwMDA="
	for _, tc := range []struct {
		name    string
		env     map[string]string
		opts    Options
		url     string // the client's URL, when no error
		wantErr string
	}{
		{name: "nothing", wantErr: "no storage account"},
		{name: "account from the environment with a key", env: map[string]string{AccountEnv: "acme", KeyEnv: key},
			url: "https://acme.blob.core.windows.net/"},
		{name: "account option wins", env: map[string]string{AccountEnv: "other", KeyEnv: key}, opts: Options{Account: "acme"},
			url: "https://acme.blob.core.windows.net/"},
		{name: "endpoint", env: map[string]string{KeyEnv: key}, opts: Options{Account: "devstoreaccount1", Endpoint: "http://127.0.0.1:10000/devstoreaccount1"},
			url: "http://127.0.0.1:10000/devstoreaccount1"},
		{name: "key without account", env: map[string]string{KeyEnv: key}, opts: Options{Endpoint: "http://127.0.0.1:10000/x"}, wantErr: "needs the account"},
		{name: "bad key is not quoted", env: map[string]string{AccountEnv: "acme", KeyEnv: "%%secret%%"}, wantErr: "not a valid account key"},
		{name: "bad connection string is not quoted", env: map[string]string{ConnectionStringEnv: "AccountKey=%%secret%%"}, wantErr: "not a valid connection string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{ConnectionStringEnv, AccountEnv, KeyEnv} {
				t.Setenv(k, tc.env[k])
			}
			c, err := Client(tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Client(%+v) = %v, want an error containing %q", tc.opts, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error quotes the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.URL(); got != tc.url {
				t.Errorf("URL = %q, want %q", got, tc.url)
			}
		})
	}
}
