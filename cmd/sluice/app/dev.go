package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/examples"
	"github.com/sluicehq/sluice/source/generate"
)

// cmdDev runs a job on one machine: an in-process Kafka (kfake, the real
// protocol on a loopback port), a generator of firewall traffic into every
// topic the job reads, local checkpoints, and live progress.
func cmdDev(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("dev", flag.ContinueOnError)
	fl.SetOutput(stderr)
	rate := fl.Int("rate", 5000, "generated records per second, over all topics (0: none)")
	partitions := fl.Int("partitions", 6, "partitions of each generated topic")
	duration := fl.Duration("duration", 0, "stop (drain) after this long; 0 runs until interrupted")
	port := fl.Int("kafka-port", 0, "loopback port of the embedded Kafka (0: any free port)")
	listen := fl.String("metrics", "127.0.0.1:9090", "address of /metrics, /healthz, /readyz and the status page (off: none)")
	if code, ok := parseFlags(fl, args); !ok {
		return code
	}
	if fl.NArg() > 1 {
		fmt.Fprintln(stderr, "usage: sluice dev [flags] [JOB.yaml]")
		return 2
	}
	path := ""
	if fl.NArg() == 1 {
		path = fl.Arg(0)
	} else {
		var err error
		if path, err = unpackDefault(); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	cj, err := config.Load(path, nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	topics := kafkaTopics(cj)
	if len(topics) == 0 {
		fmt.Fprintln(stderr, "sluice dev: the job reads no kafka topics; run a bounded job with sluice run")
		return 1
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	cluster, err := kfake.NewCluster(kfake.Ports(*port), kfake.SeedTopics(int32(*partitions), topics...), kfake.AllowAutoTopicCreation())
	if err != nil {
		fmt.Fprintln(stderr, "sluice dev: embedded kafka:", err)
		return 1
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	fmt.Fprintf(stdout, "sluice dev: job %s from %s; embedded kafka on %s; topics %v × %d partitions\n", cj.Job, path, brokers[0], topics, *partitions)

	redact := cj.Redactor()
	log := newLogger(stderr, redact)
	tuneProcess(log, cj)
	reg := prometheus.NewRegistry()
	rt, svc, err := newWorker(ctx, cj, reg, Options{Pod: "dev-0", Logger: log, Brokers: brokers})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer svc.handleSignals(log)()
	if *listen != "off" {
		stop, err := svc.serve(endpoints{public: *listen, admin: "off"})
		if err != nil {
			log.Warn("status server not started", "error", err)
		} else {
			defer stop()
			fmt.Fprintf(stdout, "sluice dev: metrics and status on http://%s/\n", *listen)
		}
	}

	var produced atomic.Int64
	genCtx, stopGen := context.WithCancel(ctx)
	defer stopGen()
	genDone := make(chan error, 1)
	go func() { genDone <- produceTraffic(genCtx, brokers, topics, *rate, &produced) }()

	runDone := make(chan error, 1)
	go func() { runDone <- rt.Run(ctx) }()

	progress := time.NewTicker(time.Second)
	defer progress.Stop()
	start := time.Now()
	var lastOut int64
	for {
		select {
		case err := <-runDone:
			stopGen()
			printProgress(stdout, time.Since(start), produced.Load(), rt.Stats(), &lastOut)
			if err != nil {
				fmt.Fprintln(stderr, "sluice dev:", err)
				return 1
			}
			fmt.Fprintln(stdout, "sluice dev: drained; every record read is in the sinks and committed")
			return 0
		case err := <-genDone:
			if err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
				fmt.Fprintln(stderr, "sluice dev: generator:", err)
			}
			genDone = nil
		case <-progress.C:
			printProgress(stdout, time.Since(start), produced.Load(), rt.Stats(), &lastOut)
		}
	}
}

func printProgress(w io.Writer, elapsed time.Duration, produced int64, s *engine.Stats, lastOut *int64) {
	in, out := s.RecordsIn.Load(), s.RecordsOut.Load()
	ckpt := "none yet"
	if us := s.LastCheckpointUnixMicro.Load(); us > 0 {
		ckpt = fmt.Sprintf("#%d %s ago, %d B", s.Checkpoints.Load(), time.Since(time.UnixMicro(us)).Truncate(100*time.Millisecond), s.LastCheckpointBytes.Load())
	}
	fmt.Fprintf(w, "%6s  produced %9d  in %9d  out %8d (+%d/s)  lag %6d  dead letters %d  checkpoint %s\n",
		elapsed.Truncate(time.Second), produced, in, out, out-*lastOut, max(produced-in, 0), s.DeadLetters.Load(), ckpt)
	*lastOut = out
}

// produceTraffic produces generated traffic records (source/generate's
// Traffic, the generator of the job file's generate source) to topics at rate
// per second.
func produceTraffic(ctx context.Context, brokers, topics []string, rate int, produced *atomic.Int64) error {
	if rate <= 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	g := generate.NewTraffic(time.Now().UnixNano(), generate.WithStart(time.Now()))
	const tick = 50 * time.Millisecond
	perTick := max(rate*int(tick)/int(time.Second), 1)
	t := time.NewTicker(tick)
	defer t.Stop()
	var failed atomic.Value
	for i := 0; ; {
		select {
		case <-ctx.Done():
			cl.Flush(context.WithoutCancel(ctx))
			return ctx.Err()
		case <-t.C:
		}
		if err, _ := failed.Load().(error); err != nil {
			return err
		}
		for range perTick {
			topic := topics[i%len(topics)]
			i++
			value := g.AppendAvro(nil)
			cl.Produce(ctx, &kgo.Record{Topic: topic, Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						failed.Store(err)
					}
					return
				}
				produced.Add(1)
			})
		}
	}
}

func kafkaTopics(cj *config.Job) []string {
	var topics []string
	for _, p := range cj.Pipelines {
		if k := p.Source.Kafka; k != nil {
			for _, t := range k.Topics {
				if !slices.Contains(topics, t) {
					topics = append(topics, t)
				}
			}
		}
	}
	return topics
}

// unpackDefault writes the embedded default job and its schemas under
// .sluice/dev and returns the job file's path.
func unpackDefault() (string, error) {
	dir := filepath.Join(".sluice", "dev")
	err := fs.WalkDir(examples.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, p), 0o755)
		}
		b, err := examples.FS.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, p), b, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("sluice dev: unpack the default job: %w", err)
	}
	return filepath.Join(dir, "dev.yaml"), nil
}
