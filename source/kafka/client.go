package kafka

import (
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sluicehq/sluice/engine/config"
)

// ClientOpts turns a job's `kafka:` block into the franz-go options that
// reach its cluster: the seed brokers, TLS and SASL. It is the one place a
// Kafka client's connection is built: the source, the Kafka sink, the Kafka
// dead-letter destination and the coordinator all start from it and add
// their own options (group, producer settings) after it.
//
// Secrets are read here, from the block's values (already expanded from
// ${NAME}) or its *_file paths; an error names the setting, never the secret.
func ClientOpts(k *config.Kafka) ([]kgo.Opt, error) {
	if k == nil || len(k.Brokers) == 0 {
		return nil, fmt.Errorf("kafka: no brokers")
	}
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}
	if k.TLS != nil {
		tc, err := k.TLS.Config()
		if err != nil {
			return nil, fmt.Errorf("kafka: %w", err)
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if s := k.SASL; s != nil {
		m, err := saslMechanism(s)
		if err != nil {
			return nil, fmt.Errorf("kafka: sasl: %w", err)
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// RegistryClient builds a Confluent schema registry client from the
// `schema_registry:` block of a job's `kafka:` block: URL, basic auth, TLS.
func RegistryClient(r *config.Registry) (*sr.Client, error) {
	opts := []sr.ClientOpt{sr.URLs(r.URL)}
	if r.Username != "" {
		pw, err := secret(r.Password, r.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("schema registry: password: %w", err)
		}
		opts = append(opts, sr.BasicAuth(r.Username, pw))
	}
	if r.TLS != nil {
		tc, err := r.TLS.Config()
		if err != nil {
			return nil, fmt.Errorf("schema registry: %w", err)
		}
		opts = append(opts, sr.DialTLSConfig(tc))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	return cl, nil
}

// secret is value, or the trimmed content of file when one is named.
func secret(value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func saslMechanism(s *config.SASL) (sasl.Mechanism, error) {
	switch s.Mechanism {
	case "PLAIN":
		pw, err := secret(s.Password, s.PasswordFile)
		if err != nil {
			return nil, err
		}
		return plain.Auth{User: s.Username, Pass: pw}.AsMechanism(), nil
	case "SCRAM-SHA-256", "SCRAM-SHA-512":
		pw, err := secret(s.Password, s.PasswordFile)
		if err != nil {
			return nil, err
		}
		a := scram.Auth{User: s.Username, Pass: pw}
		if s.Mechanism == "SCRAM-SHA-256" {
			return a.AsSha256Mechanism(), nil
		}
		return a.AsSha512Mechanism(), nil
	case "OAUTHBEARER":
		tok, err := secret(s.Token, s.TokenFile)
		if err != nil {
			return nil, err
		}
		return oauth.Auth{Token: tok}.AsMechanism(), nil
	}
	return nil, fmt.Errorf("unknown mechanism %q (expected PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)", s.Mechanism)
}
